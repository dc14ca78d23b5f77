-- `herald_jobs_by_status (status, job)` already finds the running runs of a job (the
-- concurrency cap's count): a second index of them only cost a write on every claim and
-- every finished run.
DROP INDEX herald_jobs_running;

-- The job claim orders due runs by (run_at, id): an index in that very order lets it read the
-- first runs of its batch and stop, whatever the table's statistics say, instead of sorting the
-- whole backlog when they are missing or stale.
DROP INDEX herald_jobs_due;
CREATE INDEX herald_jobs_due ON herald_jobs (pool, run_at, id) WHERE status = 'pending';

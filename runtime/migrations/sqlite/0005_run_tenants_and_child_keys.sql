-- A run belongs to the tenant of the event that triggered it, or of the run that spawned it.
ALTER TABLE herald_jobs ADD COLUMN tenant_id TEXT;
-- A child run is keyed within its parent: a parent retried after spawning gets the child it
-- spawned before instead of a second one.
ALTER TABLE herald_jobs ADD COLUMN child_key TEXT;
CREATE UNIQUE INDEX herald_jobs_child_key ON herald_jobs (parent_id, child_key)
    WHERE child_key IS NOT NULL;
CREATE INDEX herald_jobs_by_tenant ON herald_jobs (tenant_id, status) WHERE tenant_id IS NOT NULL;

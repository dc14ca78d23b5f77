-- Herald durable jobs, PostgreSQL. A run is a row.
CREATE TABLE herald_jobs (
    id               UUID        PRIMARY KEY,
    job              TEXT        NOT NULL,
    pool             TEXT        NOT NULL,
    status           TEXT        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'timed_out', 'canceled')),
    input            JSONB       NOT NULL,
    output           JSONB,
    -- Attempts started so far; every write of an attempt is fenced on it.
    attempt          INTEGER     NOT NULL DEFAULT 0,
    max_attempts     INTEGER     NOT NULL CHECK (max_attempts >= 1),
    run_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    dedupe_key       TEXT,
    scope_type       TEXT,
    scope_id         TEXT,
    event_id         UUID,
    parent_id        UUID REFERENCES herald_jobs (id) ON DELETE CASCADE,
    root_id          UUID        NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);

CREATE UNIQUE INDEX herald_jobs_dedupe ON herald_jobs (job, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX herald_jobs_due ON herald_jobs (pool, run_at) WHERE status = 'pending';
CREATE INDEX herald_jobs_running ON herald_jobs (job) WHERE status = 'running';
CREATE INDEX herald_jobs_leases ON herald_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX herald_jobs_by_root ON herald_jobs (root_id);
CREATE INDEX herald_jobs_by_parent ON herald_jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX herald_jobs_by_scope ON herald_jobs (scope_type, scope_id) WHERE scope_id IS NOT NULL;
CREATE INDEX herald_jobs_by_status ON herald_jobs (status, job);

CREATE TABLE herald_job_steps (
    run_id     UUID        NOT NULL REFERENCES herald_jobs (id) ON DELETE CASCADE,
    step       TEXT        NOT NULL,
    output     JSONB       NOT NULL,
    attempt    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

-- Wake workers when runs are enqueued: transactional like the outbox's NOTIFY.
CREATE FUNCTION herald_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER herald_jobs_notify AFTER INSERT ON herald_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_jobs();

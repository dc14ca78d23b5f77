-- Herald durable jobs, SQLite. A run is a row; timestamps are Unix microseconds.
CREATE TABLE herald_jobs (
    id               BLOB    PRIMARY KEY,
    job              TEXT    NOT NULL,
    pool             TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'timed_out', 'canceled')),
    input            TEXT    NOT NULL,
    output           TEXT,
    -- Attempts started so far; every write of an attempt is fenced on it.
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    dedupe_key       TEXT,
    scope_type       TEXT,
    scope_id         TEXT,
    event_id         BLOB,
    parent_id        BLOB REFERENCES herald_jobs (id) ON DELETE CASCADE,
    root_id          BLOB    NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);

-- Dedupe: one live run per (job, key), enforced by the database, not by a lookup that races.
CREATE UNIQUE INDEX herald_jobs_dedupe ON herald_jobs (job, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX herald_jobs_due ON herald_jobs (pool, run_at) WHERE status = 'pending';
CREATE INDEX herald_jobs_running ON herald_jobs (job) WHERE status = 'running';
CREATE INDEX herald_jobs_leases ON herald_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX herald_jobs_by_root ON herald_jobs (root_id);
CREATE INDEX herald_jobs_by_parent ON herald_jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX herald_jobs_by_scope ON herald_jobs (scope_type, scope_id) WHERE scope_id IS NOT NULL;
CREATE INDEX herald_jobs_by_status ON herald_jobs (status, job);

-- Memoized steps: a retried run skips the steps it finished.
CREATE TABLE herald_job_steps (
    run_id     BLOB    NOT NULL REFERENCES herald_jobs (id) ON DELETE CASCADE,
    step       TEXT    NOT NULL,
    output     TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step)
);

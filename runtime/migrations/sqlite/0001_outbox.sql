-- Herald outbox, SQLite. Timestamps are Unix microseconds (UTC); ids are 16-byte UUID blobs.
CREATE TABLE herald_events (
    -- Global position: the order of ordered replay.
    position          INTEGER PRIMARY KEY AUTOINCREMENT,
    id                BLOB    NOT NULL UNIQUE,
    event_type        TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    tier              TEXT    NOT NULL CHECK (tier IN ('domain', 'audit')),
    direction         TEXT    CHECK (direction IN ('inbound', 'change', 'outbound')),
    pool              TEXT,
    aggregate_type    TEXT,
    aggregate_id      TEXT,
    aggregate_sequence INTEGER,
    tenant_id         TEXT,
    correlation_id    BLOB,
    causation_id      BLOB,
    payload           TEXT    NOT NULL,
    occurred_at       INTEGER NOT NULL,
    recorded_at       INTEGER NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'processed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    processed_at      INTEGER,
    -- An audit event is never routed: it has neither pool nor direction; a domain event has both.
    CHECK ((tier = 'audit' AND pool IS NULL AND direction IS NULL)
        OR (tier = 'domain' AND pool IS NOT NULL AND direction IS NOT NULL)),
    UNIQUE (aggregate_type, aggregate_id, aggregate_sequence)
);

-- Claims scan one lane in position order among the rows not yet processed.
CREATE INDEX herald_events_claim ON herald_events (pool, position) WHERE status <> 'processed';
-- "Is an earlier event of this aggregate in this pool still open?" — the per-aggregate ordering check.
CREATE INDEX herald_events_open_by_aggregate
    ON herald_events (pool, aggregate_type, aggregate_id, position) WHERE status <> 'processed';
CREATE INDEX herald_events_processed_at ON herald_events (processed_at) WHERE status = 'processed';

-- Per-subscriber deliveries that did not succeed on the first fan-out: retries, dead letters,
-- and deliveries queued behind an earlier open delivery of the same aggregate.
CREATE TABLE herald_deliveries (
    event_id          BLOB    NOT NULL REFERENCES herald_events (id) ON DELETE CASCADE,
    subscriber        TEXT    NOT NULL,
    event_position    INTEGER NOT NULL,
    pool              TEXT,
    aggregate_type    TEXT,
    aggregate_id      TEXT,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'processing', 'failed')),
    attempts          INTEGER NOT NULL,
    next_attempt_at   INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    last_error        TEXT,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (event_id, subscriber)
);

CREATE INDEX herald_deliveries_open ON herald_deliveries (pool, event_position) WHERE status <> 'failed';
CREATE INDEX herald_deliveries_open_by_aggregate
    ON herald_deliveries (pool, subscriber, aggregate_type, aggregate_id, event_position) WHERE status <> 'failed';

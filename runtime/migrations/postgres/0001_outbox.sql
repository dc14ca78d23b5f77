-- Herald outbox, PostgreSQL.
CREATE TABLE herald_events (
    -- Global position: the order of ordered replay. Positions come from a sequence, so they
    -- become visible out of order when transactions commit out of order.
    position           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 UUID        NOT NULL UNIQUE,
    event_type         TEXT        NOT NULL,
    version            INTEGER     NOT NULL,
    tier               TEXT        NOT NULL CHECK (tier IN ('domain', 'audit')),
    direction          TEXT        CHECK (direction IN ('inbound', 'change', 'outbound')),
    pool               TEXT,
    aggregate_type     TEXT,
    aggregate_id       TEXT,
    aggregate_sequence BIGINT,
    tenant_id          TEXT,
    correlation_id     UUID,
    causation_id       UUID,
    payload            JSONB       NOT NULL,
    occurred_at        TIMESTAMPTZ NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    status             TEXT        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'processed')),
    attempts           INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner        TEXT,
    lease_expires_at   TIMESTAMPTZ,
    processed_at       TIMESTAMPTZ,
    -- An audit event is never routed: it has neither pool nor direction; a domain event has both.
    CHECK ((tier = 'audit' AND pool IS NULL AND direction IS NULL)
        OR (tier = 'domain' AND pool IS NOT NULL AND direction IS NOT NULL)),
    UNIQUE (aggregate_type, aggregate_id, aggregate_sequence)
);

CREATE INDEX herald_events_claim ON herald_events (pool, position) WHERE status <> 'processed';
CREATE INDEX herald_events_open_by_aggregate
    ON herald_events (pool, aggregate_type, aggregate_id, position) WHERE status <> 'processed';
CREATE INDEX herald_events_processed_at ON herald_events (processed_at) WHERE status = 'processed';

CREATE TABLE herald_deliveries (
    event_id          UUID        NOT NULL REFERENCES herald_events (id) ON DELETE CASCADE,
    subscriber        TEXT        NOT NULL,
    event_position    BIGINT      NOT NULL,
    pool              TEXT,
    aggregate_type    TEXT,
    aggregate_id      TEXT,
    status            TEXT        NOT NULL CHECK (status IN ('pending', 'processing', 'failed')),
    attempts          INTEGER     NOT NULL,
    next_attempt_at   TIMESTAMPTZ NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    last_error        TEXT,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, subscriber)
);

CREATE INDEX herald_deliveries_open ON herald_deliveries (pool, event_position) WHERE status <> 'failed';
CREATE INDEX herald_deliveries_open_by_aggregate
    ON herald_deliveries (pool, subscriber, aggregate_type, aggregate_id, event_position) WHERE status <> 'failed';

-- Wake every listening drain when events commit: NOTIFY is transactional, so a rolled-back
-- publish wakes nobody, and one notification per statement (not per row) keeps batches cheap.
CREATE FUNCTION herald_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER herald_events_notify AFTER INSERT ON herald_events
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_events();

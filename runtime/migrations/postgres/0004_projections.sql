-- Read-model projections. Positions come from a sequence, and transactions commit out of
-- order: a reader at position 10 may later see position 9 commit. So each event records the
-- transaction that wrote it, projections read only events of transactions older than every
-- transaction still running (`pg_snapshot_xmin`), in (transaction, position) order, and the
-- checkpoint is that pair.
ALTER TABLE herald_events
    ADD COLUMN tx_id BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX herald_events_by_transaction ON herald_events (tx_id, position);

CREATE TABLE herald_projections (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL,
    tx_id      BIGINT      NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

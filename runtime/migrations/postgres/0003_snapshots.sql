-- Snapshots of event-sourced aggregates: the state after `sequence`, as JSON.
CREATE TABLE herald_snapshots (
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    sequence       BIGINT      NOT NULL,
    state          JSONB       NOT NULL,
    taken_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

CREATE INDEX herald_events_stream ON herald_events (aggregate_type, aggregate_id, aggregate_sequence)
    WHERE aggregate_sequence IS NOT NULL;

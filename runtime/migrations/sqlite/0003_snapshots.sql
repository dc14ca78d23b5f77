-- Snapshots of event-sourced aggregates: the state after `sequence`, as JSON.
CREATE TABLE herald_snapshots (
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    taken_at       INTEGER NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Loading an aggregate reads its stream in sequence order.
CREATE INDEX herald_events_stream ON herald_events (aggregate_type, aggregate_id, aggregate_sequence)
    WHERE aggregate_sequence IS NOT NULL;

-- One index keeps an aggregate's stream unique and reads it in order. The table's UNIQUE
-- constraint indexed every event, most of which belong to no stream, and a second, partial
-- index of the stream events duplicated it: every published event paid one index write for
-- nothing, and every completed event (a non-HOT update) another. A partial unique index holds
-- the stream events only, and answers both.
CREATE UNIQUE INDEX herald_events_stream_sequence
    ON herald_events (aggregate_type, aggregate_id, aggregate_sequence)
    WHERE aggregate_sequence IS NOT NULL;
ALTER TABLE herald_events
    DROP CONSTRAINT herald_events_aggregate_type_aggregate_id_aggregate_sequenc_key;
DROP INDEX herald_events_stream;

-- The table's UNIQUE (aggregate_type, aggregate_id, aggregate_sequence) already indexes an
-- aggregate's stream in order (SQLite cannot drop a table constraint without rebuilding the
-- table, so that one stays): the partial index of the same columns only cost a second write
-- for every stream event.
DROP INDEX herald_events_stream;

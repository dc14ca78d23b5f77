-- Read-model projections: how far each has folded the outbox, written in the same transaction
-- as the read model itself. SQLite commits one writer at a time and assigns positions under
-- its write lock, so positions become visible in order and the position alone is the
-- checkpoint.
CREATE TABLE herald_projections (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    tx_id      INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

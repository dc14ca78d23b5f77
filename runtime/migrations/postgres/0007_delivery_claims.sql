-- How many times the retry lane claimed a delivery since its last recorded attempt: a claim
-- that never records one was lost (a crash, a stall past the lease), and once lost claims
-- spend the delivery's attempts it is dead-lettered instead of claimed for ever.
ALTER TABLE herald_deliveries ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;

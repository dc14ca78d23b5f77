-- PostgreSQL's events notification names the lanes it wakes from this version on; SQLite
-- wakes the lanes of the committing process from its commit hook and has nothing to change.
SELECT 1;

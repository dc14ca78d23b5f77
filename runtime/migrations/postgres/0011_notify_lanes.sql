-- The events notification names the lanes the statement wrote to (its event pools, `audit` for
-- audit events), so that a commit wakes the lanes that have something to claim instead of
-- every lane of every worker: one event in one pool was a claim in each of the four lanes.
-- Nothing is notified when the statement inserted nothing (a publish retried with the same id).
CREATE OR REPLACE FUNCTION herald_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lanes TEXT;
BEGIN
    SELECT string_agg(DISTINCT coalesce(pool, 'audit'), ',') INTO lanes FROM herald_new_events;
    IF lanes IS NOT NULL THEN
        PERFORM pg_notify('herald_events', lanes);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER herald_events_notify ON herald_events;
CREATE TRIGGER herald_events_notify AFTER INSERT ON herald_events
    REFERENCING NEW TABLE AS herald_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_events();

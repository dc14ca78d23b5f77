-- The W3C trace context (traceparent, tracestate) an event was published in or a run enqueued
-- in: the parent of the spans that deliver the event or run the job, on whichever worker.
ALTER TABLE herald_events ADD COLUMN traceparent TEXT;
ALTER TABLE herald_events ADD COLUMN tracestate TEXT;
ALTER TABLE herald_jobs ADD COLUMN traceparent TEXT;
ALTER TABLE herald_jobs ADD COLUMN tracestate TEXT;

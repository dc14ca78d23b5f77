//! The headers of a relayed message: the contract that consumers in other languages read. A
//! header is absent when the event has no such value (no aggregate, no tenant, no causation).
//! Names and formats are stable; new headers may be added, none will change meaning.

/// The event id (a UUID, hyphenated lower case). JetStream drops a message whose id it stored
/// within the stream's duplicate window; consumers deduplicate on it beyond that.
pub const MESSAGE_ID: &str = "Nats-Msg-Id";
/// The event type, e.g. `contact_created`.
pub const TYPE: &str = "Herald-Type";
/// The payload's schema version, a positive integer in decimal.
pub const VERSION: &str = "Herald-Version";
/// The aggregate type, e.g. `contact`.
pub const AGGREGATE_TYPE: &str = "Herald-Aggregate-Type";
/// The aggregate id, exactly as published.
pub const AGGREGATE_ID: &str = "Herald-Aggregate-Id";
/// The tenant.
pub const TENANT: &str = "Herald-Tenant";
/// The id shared by a chain of events caused by one another (a UUID).
pub const CORRELATION_ID: &str = "Herald-Correlation-Id";
/// The id of the event that caused this one (a UUID).
pub const CAUSATION_ID: &str = "Herald-Causation-Id";
/// When the fact happened: RFC 3339 in UTC with microseconds, e.g.
/// `2026-01-31T09:30:00.123456Z`.
pub const OCCURRED_AT: &str = "Herald-Occurred-At";
/// The W3C trace context the event was published in (<https://www.w3.org/TR/trace-context/>),
/// under the header name the specification gives: a consumer continues the publisher's trace.
/// Read on inbound messages too, so that their deliveries join the sender's trace.
pub const TRACEPARENT: &str = "traceparent";
/// The vendors' part of the trace context, beside [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";
/// On a dead-lettered inbound message only: why it was refused.
pub const REJECT_REASON: &str = "Herald-Reject-Reason";
/// On a dead-lettered inbound message only: the subject it arrived on.
pub const ORIGINAL_SUBJECT: &str = "Herald-Original-Subject";
/// On a dead-lettered inbound message only: its sequence in the stream it was read from.
pub const ORIGINAL_SEQUENCE: &str = "Herald-Original-Sequence";

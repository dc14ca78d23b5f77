//! A stored event as its consumers see it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A delivered event: the payload with everything publishing stamped on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    /// The event's id, also its idempotency key: a subscriber that must act once per event
    /// dedupes on it.
    pub id: Uuid,
    /// The event's type, e.g. `contact_created`.
    pub event_type: String,
    /// The payload version it was stored with.
    pub version: u32,
    /// Global position in the outbox.
    pub position: i64,
    /// When the fact happened.
    pub occurred_at: DateTime<Utc>,
    /// The aggregate the event concerns, if any.
    pub aggregate_type: Option<String>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<String>,
    /// The id shared by a chain of events caused by one another, if set.
    pub correlation_id: Option<Uuid>,
    /// The id of the event that caused this one, if set (see [`crate::Publish::caused_by`]).
    pub causation_id: Option<Uuid>,
    /// 1 on the first delivery to this subscriber, then 2, 3, ...
    pub attempt: u32,
    /// The payload, decoded as `E`.
    pub payload: E,
}

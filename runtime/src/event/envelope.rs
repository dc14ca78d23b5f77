//! A stored event as its consumers see it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A delivered event: the payload with everything publishing stamped on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    pub id: Uuid,
    pub event_type: String,
    pub version: u32,
    /// Global position in the outbox.
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// 1 on the first delivery to this subscriber, then 2, 3, ...
    pub attempt: u32,
    pub payload: E,
}

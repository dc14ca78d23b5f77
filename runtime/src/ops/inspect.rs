//! What a person on call reads: each lane's backlog and lag, each job's runs by status, each
//! projection's checkpoint, and the outbox's events one by one with what they still owe.
//! The `herald` admin CLI and the dashboard are views of these.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ProjectionLag, RunInfo};
use crate::trace::TraceContext;

/// One drain lane of the outbox: the domain events of a pool, or the audit events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaneStats {
    /// The pool, e.g. `events_change`; `audit` for the audit events, which have no pool.
    pub lane: String,
    /// Events not processed yet, claimed ones included.
    pub pending: u64,
    /// When the oldest of them was committed: how far the lane is behind is now minus this.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Events processed in the minute before the stats were read: the lane's current rate.
    pub processed_last_minute: u64,
    /// Deliveries owed after the first fan-out and not dead-lettered.
    pub retrying: u64,
    /// Deliveries that ran out of attempts, until re-driven.
    pub dead_letters: u64,
}

impl LaneStats {
    /// The stats of `lane` in `lanes`, zero until counted: the backends add up each lane's rows
    /// into these.
    pub(crate) fn entry(
        lanes: &mut std::collections::BTreeMap<String, LaneStats>,
        lane: String,
    ) -> &mut LaneStats {
        lanes.entry(lane.clone()).or_insert_with(|| LaneStats {
            lane,
            pending: 0,
            oldest_pending_at: None,
            processed_last_minute: 0,
            retrying: 0,
            dead_letters: 0,
        })
    }

    /// How long the oldest pending event has waited at `now`; zero when nothing waits.
    pub fn lag(&self, now: DateTime<Utc>) -> std::time::Duration {
        self.oldest_pending_at
            .and_then(|oldest| (now - oldest).to_std().ok())
            .unwrap_or_default()
    }
}

/// The runs of one job in one pool, by status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStats {
    /// The pool that runs the job.
    pub pool: String,
    /// The job's name.
    pub job: String,
    /// Pending runs that are due: waiting for a worker now.
    pub due: u64,
    /// Pending runs scheduled for later or backing off between attempts.
    pub scheduled: u64,
    /// Runs a worker holds under a lease.
    pub running: u64,
    /// Runs whose last attempt succeeded (until pruned).
    pub completed: u64,
    /// Runs out of attempts, timed out or canceled (until pruned).
    pub failed: u64,
    /// When the longest-waiting due run became due: the job's queue lag is now minus this.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// The earliest lease expiry among the running runs: a lease in the past is a worker that
    /// stopped heartbeating, whose run the next rescue puts back.
    pub earliest_lease_expiry: Option<DateTime<Utc>>,
}

/// A projection's checkpoint and how far it is behind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// The outbox position of the last event it folded.
    pub position: i64,
    /// When it last saved its checkpoint.
    pub updated_at: DateTime<Utc>,
    /// What it has yet to fold.
    pub lag: ProjectionLag,
}

/// Where an event stands in its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Committed, waiting for its lane.
    Pending,
    /// Claimed by a drain, which is delivering it under a lease.
    Processing,
    /// Every subscriber was called once; retries it still owes are its deliveries.
    Processed,
}

impl EventStatus {
    /// The status as stored, e.g. `processing`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Processing => "processing",
            EventStatus::Processed => "processed",
        }
    }

    /// The inverse of [`EventStatus::as_str`].
    pub fn parse(status: &str) -> Option<Self> {
        Some(match status {
            "pending" => EventStatus::Pending,
            "processing" => EventStatus::Processing,
            "processed" => EventStatus::Processed,
            _ => return None,
        })
    }
}

/// Which events to list; every set field must match.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only events of this aggregate type, and of this aggregate id when it is given.
    pub aggregate: Option<(String, Option<String>)>,
    /// Only events of this tenant.
    pub tenant: Option<String>,
    /// Only events with this status.
    pub status: Option<EventStatus>,
    /// Only events committed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events committed before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events after this outbox position, oldest first: what following the outbox reads.
    /// Without it the newest events come first.
    pub after_position: Option<i64>,
    /// At most this many events (100 by default).
    pub limit: u32,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self {
            event_type: None,
            aggregate: None,
            tenant: None,
            status: None,
            since: None,
            until: None,
            after_position: None,
            limit: 100,
        }
    }
}

/// An event as the outbox holds it, without its payload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventSummary {
    /// Its position in the outbox: the order lanes deliver in.
    pub position: i64,
    /// The event's id.
    pub id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The payload version it was stored with.
    pub version: u32,
    /// The lane that delivers it: its pool, or `audit`.
    pub lane: String,
    /// The aggregate type it concerns, if any.
    pub aggregate_type: Option<String>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<String>,
    /// The id shared by a chain of events caused by one another.
    pub correlation_id: Option<Uuid>,
    /// The id of the event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Where it stands in its lane.
    pub status: EventStatus,
    /// How many times a drain has claimed it.
    pub claims: u32,
    /// When the fact happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was committed to the outbox.
    pub recorded_at: DateTime<Utc>,
    /// When a drain finished its first fan-out.
    pub processed_at: Option<DateTime<Utc>>,
    /// The trace it was published in: find its spans in the tracing backend by
    /// [`TraceContext::trace_id`].
    pub trace: Option<TraceContext>,
}

/// Where a delivery that the first fan-out did not complete stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or behind an earlier open delivery of its aggregate).
    Retrying,
    /// Being attempted by a drain now.
    Delivering,
    /// Out of attempts: a dead letter, until re-driven.
    DeadLetter,
}

impl DeliveryStatus {
    /// A word for people and scripts: `retrying`, `delivering`, `dead_letter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::DeadLetter => "dead_letter",
        }
    }
}

/// A delivery an event still owes, or a dead letter. A delivery that succeeded leaves no row:
/// a processed event with no deliveries reached every subscriber.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryInfo {
    /// The subscriber, by the name it was registered under.
    pub subscriber: String,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is next due (for a dead letter: when it ran out).
    pub next_attempt_at: DateTime<Utc>,
    /// The error of the last attempt.
    pub last_error: Option<String>,
}

/// One event whole: its envelope, payload, the deliveries it still owes and the job runs it
/// triggered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventDetail {
    /// The envelope and where it stands.
    pub event: EventSummary,
    /// The payload as stored: JSON, or the text when the row holds something else.
    pub payload: serde_json::Value,
    /// Deliveries owed after the first fan-out, and dead letters.
    pub deliveries: Vec<DeliveryInfo>,
    /// Runs the event enqueued (its triggers, or the decision it was part of).
    pub runs: Vec<RunInfo>,
}

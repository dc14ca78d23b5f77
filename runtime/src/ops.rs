//! What operators look at and act on: outbox totals, dead letters and their re-drive, and job
//! runs as the query API shows them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::trace::TraceContext;

mod inspect;

pub use inspect::{
    DeliveryInfo, DeliveryStatus, EventDetail, EventFilter, EventStatus, EventSummary, JobStats,
    LaneStats, ProjectionStatus,
};

/// A delivery that ran out of attempts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// The event whose delivery failed: with `subscriber`, what [`Redrive`] names.
    pub event_id: Uuid,
    /// The event's type, e.g. `contact_created`.
    pub event_type: String,
    /// The subscriber whose handler kept failing, by the name it was registered under.
    pub subscriber: String,
    /// The aggregate of the event, if it has one.
    pub aggregate_type: Option<String>,
    /// The aggregate's id, if the event has an aggregate.
    pub aggregate_id: Option<String>,
    /// Attempts made, all failed: the event's `max_attempts`.
    pub attempts: u32,
    /// The error of the last attempt, as the handler returned it (or the panic message).
    pub last_error: String,
    /// The lane it was delivered in: its pool, or `audit`.
    pub lane: String,
    /// When its last attempt failed.
    pub failed_at: DateTime<Utc>,
}

/// Which dead letters to re-drive (or to list, with [`crate::Store::dead_letters_of`]); every
/// set field must match.
#[derive(Debug, Clone, Default)]
pub struct Redrive {
    /// Only the dead letters of this event (`None`: of every event).
    pub event_id: Option<Uuid>,
    /// Only those of this subscriber (`None`: of every subscriber).
    pub subscriber: Option<String>,
    /// Only those of events of this type (`None`: of every type).
    pub event_type: Option<String>,
    /// Only those of events of this tenant (`None`: of every tenant, and of none).
    pub tenant: Option<String>,
}

impl Redrive {
    /// Every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// The dead letters of one event, for every subscriber unless narrowed with
    /// [`Redrive::subscriber`].
    pub fn event(event_id: Uuid) -> Self {
        Self {
            event_id: Some(event_id),
            ..Self::default()
        }
    }

    /// The dead letters of every event of one type.
    pub fn event_type(event_type: impl Into<String>) -> Self {
        Self {
            event_type: Some(event_type.into()),
            ..Self::default()
        }
    }

    /// Narrows to the dead letters of one subscriber.
    pub fn subscriber(mut self, subscriber: impl Into<String>) -> Self {
        self.subscriber = Some(subscriber.into());
        self
    }

    /// Whether it narrows the dead letters at all (every field unset re-drives them all).
    pub fn is_narrowed(&self) -> bool {
        self.event_id.is_some()
            || self.subscriber.is_some()
            || self.event_type.is_some()
            || self.tenant.is_some()
    }

    /// Narrows to the dead letters of one tenant's events: what an operator of a multi-tenant
    /// application shows or re-drives for one customer.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

/// Counts of the outbox rows, for dashboards and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// Events not yet processed by a drain, claimed ones included: the backlog.
    pub pending_events: u64,
    /// Processed events not yet pruned (see [`crate::Store::prune`]).
    pub processed_events: u64,
    /// Deliveries owed after the first fan-out and not dead-lettered: waiting for a retry (or
    /// queued behind an earlier event of their aggregate), or being retried now.
    pub retrying_deliveries: u64,
    /// Deliveries that ran out of attempts, until re-driven: see [`crate::Store::dead_letters`].
    pub dead_letters: u64,
}

/// How far a projection is behind the outbox: see [`crate::Projector::lag`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionLag {
    /// Committed events after the projection's checkpoint: what it has yet to fold.
    pub behind: u64,
    /// Of those, the ones it cannot read yet. On PostgreSQL a projection reads only events of
    /// transactions older than every transaction still open, so that it never skips one that
    /// commits later at a smaller position; a long-running transaction therefore holds it back
    /// (by design, until that transaction ends), and this counts what it holds. Always 0 on
    /// SQLite and in memory, whose writers take turns.
    pub held_back: u64,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker; with a future `run_at` it is scheduled (or backing off).
    Pending,
    /// Claimed by a worker, which is running an attempt under a lease.
    Running,
    /// Its last attempt succeeded; the output is stored.
    Completed,
    /// Out of attempts, with its last error.
    Failed,
    /// An attempt ran longer than the job's `TIMEOUT`; a timeout is not retried.
    TimedOut,
    /// Canceled with [`crate::JobClient::cancel`] (itself or an ancestor) before it ended.
    Canceled,
}

impl RunStatus {
    /// The status as stored in the `status` column, e.g. `timed_out`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Canceled => "canceled",
        }
    }

    /// The status stored as `status`, the inverse of [`RunStatus::as_str`]; `None` for a string
    /// that is no status.
    pub fn parse(status: &str) -> Option<Self> {
        Some(match status {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "timed_out" => RunStatus::TimedOut,
            "canceled" => RunStatus::Canceled,
            _ => return None,
        })
    }

    /// Completed, failed, timed out or canceled: nothing will happen to it any more (unless it
    /// is retried by hand).
    pub const fn is_final(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// A run as the query API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunInfo {
    /// The run's id: what [`crate::JobClient`]'s `get`, `cancel` and `retry` take.
    pub id: Uuid,
    /// The job's [`crate::Job::NAME`].
    pub job: String,
    /// The worker pool that runs it.
    pub pool: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// The job's input, as stored.
    pub input: serde_json::Value,
    /// The job's output, once completed.
    pub output: Option<serde_json::Value>,
    /// Attempts started so far: 0 until first claimed, and again after a retry by hand.
    pub attempt: u32,
    /// Attempts allowed, from the job's retry policy when the run was enqueued.
    pub max_attempts: u32,
    /// When the run is (or was) due: its enqueue time unless scheduled, later while it backs off.
    pub run_at: DateTime<Utc>,
    /// The job's dedupe key for this input: while the run is live, enqueues with the same key
    /// collapse onto it.
    pub dedupe_key: Option<String>,
    /// The type of the aggregate the run concerns, if any: what [`RunFilter::scope`] matches.
    pub scope_type: Option<String>,
    /// The id of the aggregate the run concerns, with `scope_type`.
    pub scope_id: Option<String>,
    /// The event that enqueued it: its trigger, or the first event of the aggregate decision that
    /// queued it.
    pub event_id: Option<Uuid>,
    /// The run that spawned it with [`crate::JobContext::spawn_child`].
    pub parent_id: Option<Uuid>,
    /// The top-level run of its tree (its own id when it has no parent): what [`RunFilter::root`]
    /// matches.
    pub root_id: Uuid,
    /// The error of its latest attempt, if that one failed or stalled (`None` once an attempt
    /// completes); kept by a retry by hand.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it reached its final status; cleared by a retry by hand.
    pub finished_at: Option<DateTime<Utc>>,
    /// The tenant it belongs to: that of the event that triggered it, of the command that
    /// decided it, or of the run that spawned it.
    pub tenant_id: Option<String>,
    /// Until when the worker running it holds it (while running): a lease in the past is a
    /// worker that stopped heartbeating.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The trace it was enqueued in: find its spans in the tracing backend by
    /// [`TraceContext::trace_id`].
    pub trace: Option<TraceContext>,
}

/// Which runs to list; every set field must match. Newest first.
#[derive(Debug, Clone)]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this job, by [`crate::Job::NAME`].
    pub job: Option<String>,
    /// The aggregate (type, id) the run concerns: its trigger event's aggregate.
    pub scope: Option<(String, String)>,
    /// Only the runs of the tree under this top-level run (itself included).
    pub root: Option<Uuid>,
    /// Only the runs of this tenant.
    pub tenant: Option<String>,
    /// At most this many runs (100 by default).
    pub limit: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        Self {
            status: None,
            job: None,
            scope: None,
            root: None,
            tenant: None,
            limit: 100,
        }
    }
}

impl RunFilter {
    /// Only the runs of this tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Only runs with this status.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs of the job with this [`crate::Job::NAME`].
    pub fn job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// Only runs concerning the aggregate (`scope_type`, `scope_id`).
    pub fn scope(mut self, scope_type: impl Into<String>, scope_id: impl Into<String>) -> Self {
        self.scope = Some((scope_type.into(), scope_id.into()));
        self
    }

    /// Only runs of the tree whose top-level run is `root`.
    pub fn root(mut self, root: Uuid) -> Self {
        self.root = Some(root);
        self
    }

    /// At most `limit` runs.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// Pending runs of one job in one pool that were due before a given time: what waits for a
/// worker. A job with due runs that no running worker knows shows up here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueRuns {
    /// The pool the runs wait in.
    pub pool: String,
    /// The job they are runs of.
    pub job: String,
    /// How many are waiting.
    pub runs: u64,
    /// When the longest-waiting one became due.
    pub oldest_due_at: DateTime<Utc>,
}

/// How long [`crate::Store::prune`] keeps what is finished. Events of an aggregate's stream
/// (appended by [`crate::AggregateStore`]) are the source of truth and are never pruned, nor is
/// an event with a retry or dead letter outstanding, nor a run whose tree still has a live run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Processed events older than this go.
    pub events: std::time::Duration,
    /// Completed runs (and their steps) older than this go.
    pub completed_runs: std::time::Duration,
    /// Failed, timed-out and canceled runs, kept for inspection, go after this.
    pub failed_runs: std::time::Duration,
}

impl Retention {
    /// The same age for everything.
    pub fn all(age: std::time::Duration) -> Self {
        Self {
            events: age,
            completed_runs: age,
            failed_runs: age,
        }
    }

    /// Keeps failed, timed-out and canceled runs this long instead.
    pub fn failed_runs(mut self, age: std::time::Duration) -> Self {
        self.failed_runs = age;
        self
    }
}

/// What [`crate::Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Processed events.
    pub events: u64,
    /// Finished runs (their steps go with them).
    pub runs: u64,
}

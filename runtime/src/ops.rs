//! What operators look at and act on: outbox totals, dead letters and their re-drive, and job
//! runs as the query API shows them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A delivery that ran out of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event_id: Uuid,
    pub event_type: String,
    pub subscriber: String,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub attempts: u32,
    pub last_error: String,
}

/// Which dead letters to re-drive.
#[derive(Debug, Clone, Default)]
pub struct Redrive {
    pub event_id: Option<Uuid>,
    pub subscriber: Option<String>,
}

impl Redrive {
    /// Every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn event(event_id: Uuid) -> Self {
        Self {
            event_id: Some(event_id),
            subscriber: None,
        }
    }

    pub fn subscriber(mut self, subscriber: impl Into<String>) -> Self {
        self.subscriber = Some(subscriber.into());
        self
    }
}

/// Counts of the outbox rows, for dashboards and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending_events: u64,
    pub processed_events: u64,
    pub retrying_deliveries: u64,
    pub dead_letters: u64,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Waiting for a worker; with a future `run_at` it is scheduled (or backing off).
    Pending,
    Running,
    Completed,
    /// Out of attempts, with its last error.
    Failed,
    TimedOut,
    Canceled,
}

impl RunStatus {
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
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: Uuid,
    pub job: String,
    pub pool: String,
    pub status: RunStatus,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: DateTime<Utc>,
    pub dedupe_key: Option<String>,
    pub scope_type: Option<String>,
    pub scope_id: Option<String>,
    pub event_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub root_id: Uuid,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which runs to list; every set field must match. Newest first.
#[derive(Debug, Clone)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub job: Option<String>,
    /// The aggregate (type, id) the run concerns: its trigger event's aggregate.
    pub scope: Option<(String, String)>,
    pub root: Option<Uuid>,
    pub limit: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        Self {
            status: None,
            job: None,
            scope: None,
            root: None,
            limit: 100,
        }
    }
}

impl RunFilter {
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    pub fn job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    pub fn scope(mut self, scope_type: impl Into<String>, scope_id: impl Into<String>) -> Self {
        self.scope = Some((scope_type.into(), scope_id.into()));
        self
    }

    pub fn root(mut self, root: Uuid) -> Self {
        self.root = Some(root);
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// Pending runs of one job in one pool that were due before a given time: what waits for a
/// worker. A job with due runs that no running worker knows shows up here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Processed events.
    pub events: u64,
    /// Finished runs (their steps go with them).
    pub runs: u64,
}

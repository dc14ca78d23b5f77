//! The rows of durable jobs, and the storage operations the worker and the job API need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Fut, StoreError};

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

/// A run to enqueue.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: Uuid,
    pub job: &'static str,
    pub pool: &'static str,
    /// JSON text.
    pub input: String,
    pub max_attempts: u32,
    pub run_at: Option<DateTime<Utc>>,
    pub dedupe_key: Option<String>,
    pub scope_type: Option<String>,
    pub scope_id: Option<String>,
    pub event_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub root_id: Uuid,
}

/// A run a worker claimed for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: Uuid,
    pub job: String,
    pub input: String,
    /// This attempt's number, 1-based; every write of the attempt is fenced on it.
    pub attempt: u32,
    pub max_attempts: u32,
    pub root_id: Uuid,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Completed {
        output: String,
    },
    /// Failed with attempts left: pending again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    TimedOut {
        error: String,
    },
}

/// The end of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub id: Uuid,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
}

impl AttemptOutcome {
    pub(crate) fn status(&self) -> RunStatus {
        match self {
            AttemptOutcome::Completed { .. } => RunStatus::Completed,
            AttemptOutcome::Retry { .. } => RunStatus::Pending,
            AttemptOutcome::Failed { .. } => RunStatus::Failed,
            AttemptOutcome::TimedOut { .. } => RunStatus::TimedOut,
        }
    }

    pub(crate) fn output(&self) -> Option<&str> {
        match self {
            AttemptOutcome::Completed { output } => Some(output),
            _ => None,
        }
    }

    pub(crate) fn error(&self) -> Option<&str> {
        match self {
            AttemptOutcome::Completed { .. } => None,
            AttemptOutcome::Retry { error, .. }
            | AttemptOutcome::Failed { error }
            | AttemptOutcome::TimedOut { error } => Some(error),
        }
    }

    pub(crate) fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            AttemptOutcome::Retry { at, .. } => Some(*at),
            _ => None,
        }
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

/// What expired leases turned into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Back to pending, to be retried.
    pub retried: u64,
    /// Their last attempt was the one that stalled: failed.
    pub failed: u64,
}

/// Job storage operations that need no caller transaction. Object-safe, so that a running
/// job's context can hold the store without knowing its backend.
#[doc(hidden)]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueues outside any caller transaction (a child run, or `start_now`). A child is only
    /// inserted while its parent still runs the attempt `parent_attempt`; returns the live run's
    /// id, or `None` when fenced.
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
    ) -> Fut<'a, Option<Uuid>>;
    fn claim_runs<'a>(
        &'a self,
        pool: &'a str,
        jobs: &'a [&'static str],
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, Vec<ClaimedRun>>;
    /// Claims runs of one job whose running runs are capped at `cap` across all workers.
    fn claim_capped<'a>(
        &'a self,
        pool: &'a str,
        job: &'static str,
        cap: u32,
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, Vec<ClaimedRun>>;
    /// Extends the leases of these attempts; returns the runs still ours (the others were
    /// canceled or rescued by someone else, and must stop).
    fn heartbeat<'a>(&'a self, runs: &'a [(Uuid, u32)], lease: Duration) -> Fut<'a, Vec<Uuid>>;
    /// Records ended attempts in one transaction; returns how many were still ours.
    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult]) -> Fut<'a, u64>;
    /// Runs whose lease expired: retried, or failed when that was their last attempt.
    fn rescue_expired(&self) -> Fut<'_, Rescued>;
    /// Puts runs this worker holds back to pending without spending their attempt.
    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64>;
    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>>;
    /// Stores a step's output if the attempt still holds the run; false when fenced.
    fn save_step<'a>(
        &'a self,
        run: Uuid,
        attempt: u32,
        step: &'a str,
        output: &'a str,
    ) -> Fut<'a, bool>;
    fn cancel_tree(&self, run: Uuid) -> Fut<'_, u64>;
    /// Sends a failed, timed-out or canceled run back to pending with a fresh set of attempts.
    fn retry_run(&self, run: Uuid) -> Fut<'_, bool>;
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>>;
    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>>;
}

pub(crate) fn corrupt(id: Uuid, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        event_id: id,
        reason: reason.into(),
    }
}

//! The seam between the runtime and a database: the rows that cross it and the storage
//! operations a backend implements. Backends store; the runtime decides.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use super::wake::Wakes;
use crate::ops::{DeadLetter, DueRuns, OutboxStats, Redrive, RunFilter, RunInfo, RunStatus};

/// Which rows a drain lane claims: the domain events of one pool, or the audit events (which
/// have no pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    Pool(String),
    Audit,
}

impl Lane {
    pub fn pool(&self) -> Option<&str> {
        match self {
            Lane::Pool(pool) => Some(pool),
            Lane::Audit => None,
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lane::Pool(pool) => f.write_str(pool),
            Lane::Audit => f.write_str("audit"),
        }
    }
}

/// An event ready to be inserted: everything publishing stamped on it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: &'static str,
    pub version: u32,
    pub tier: &'static str,
    pub direction: Option<&'static str>,
    pub pool: Option<&'static str>,
    pub aggregate_type: Option<&'static str>,
    pub aggregate_id: Option<String>,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// JSON text of the payload.
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's number in its aggregate's stream, for event-sourced aggregates; unique per
    /// aggregate, so a concurrent append of the same number fails.
    pub aggregate_sequence: Option<i64>,
}

/// One event of an aggregate's stream, as stored.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub version: u32,
    pub payload: String,
}

/// How far a projection has folded the outbox. On PostgreSQL the pair (transaction, position)
/// orders events; elsewhere the position alone does and `tx_id` stays 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub tx_id: i64,
    pub position: i64,
}

/// A committed event as a projection reads it.
#[derive(Debug, Clone)]
pub struct ProjectedEvent {
    pub position: i64,
    pub id: Uuid,
    pub event_type: String,
    pub version: u32,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub tenant_id: Option<String>,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// Maps a unique violation (of the aggregate sequence) to [`StoreError::Conflict`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn conflict_or(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::from(error),
    }
}

/// An event row as a drain lane claimed it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: i64,
    pub id: Uuid,
    pub event_type: String,
    pub version: u32,
    pub pool: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    /// How many times the row has been claimed, this claim included.
    pub claims: u32,
    /// Subscribers with a delivery of an earlier event of this aggregate (in this pool) still
    /// open: this event must queue behind it for them. Read with the claim.
    pub blocked_subscribers: Vec<String>,
}

/// A delivery that the first fan-out could not complete.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event_id: Uuid,
    pub event_position: i64,
    pub subscriber: String,
    pub pool: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub state: DeliveryState,
}

/// Where a delivery stands after an attempt (or after being queued without one).
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    /// Try (again) at `at`; `attempts` were made so far.
    Retry {
        attempts: u32,
        at: DateTime<Utc>,
        last_error: Option<String>,
    },
    /// Out of attempts: dead-lettered until re-driven.
    Failed { attempts: u32, last_error: String },
}

/// A claimed retry of one subscriber's delivery, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub subscriber: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event: StoredEvent,
}

/// The result of a claimed retry.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub event_id: Uuid,
    pub subscriber: String,
    /// `None`: delivered, the row goes away.
    pub state: Option<DeliveryState>,
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

/// A claim of due work (events, retries, runs) by one worker at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// Names the worker in lease columns; its later writes are fenced on it.
    pub owner: &'a str,
    pub limit: u32,
    pub lease: Duration,
    /// The store's clock when claiming: what is due, and where the lease starts.
    pub now: DateTime<Utc>,
}

impl Claim<'_> {
    /// When the lease ends unless renewed.
    pub fn until(&self) -> DateTime<Utc> {
        crate::clock::later(self.now, self.lease)
    }
}

/// A running run whose lease expired: its worker crashed or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredRun {
    pub id: Uuid,
    /// The attempt that stalled.
    pub attempt: u32,
    pub max_attempts: u32,
}

/// What the runtime decided for an expired run: its next status (pending to be retried, or
/// failed) and the error it records. Written fenced on the attempt that expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescue {
    pub id: Uuid,
    pub attempt: u32,
    pub status: RunStatus,
    pub error: String,
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
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Uuid>>;
    fn claim_runs<'a>(
        &'a self,
        pool: &'a str,
        jobs: &'a [&'static str],
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>>;
    /// Claims runs of one job whose running runs are capped at `cap` across all workers.
    fn claim_capped<'a>(
        &'a self,
        pool: &'a str,
        job: &'static str,
        cap: u32,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>>;
    /// Extends the leases of these attempts; returns the runs still ours (the others were
    /// canceled or rescued by someone else, and must stop).
    fn heartbeat<'a>(&'a self, runs: &'a [(Uuid, u32)], until: DateTime<Utc>)
    -> Fut<'a, Vec<Uuid>>;
    /// Records ended attempts in one transaction; returns how many were still ours.
    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64>;
    /// Running runs whose lease expired before `now`, at most `limit`.
    fn expired_runs(&self, now: DateTime<Utc>, limit: u32) -> Fut<'_, Vec<ExpiredRun>>;
    /// Writes the rescuer's decisions, each fenced on its expired attempt; returns the ids of
    /// those written (another worker may have rescued some first).
    fn write_rescues<'a>(&'a self, rescues: &'a [Rescue], now: DateTime<Utc>)
    -> Fut<'a, Vec<Uuid>>;
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
        now: DateTime<Utc>,
    ) -> Fut<'a, bool>;
    fn cancel_tree(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, u64>;
    /// Sends a failed, timed-out or canceled run back to pending with a fresh set of attempts.
    fn retry_run(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, bool>;
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>>;
    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>>;
    /// Pending runs due before `due_before`, counted per pool and job.
    fn due_runs(&self, due_before: DateTime<Utc>) -> Fut<'_, Vec<DueRuns>>;
    /// Deletes runs in the final `status` that finished before `finished_before`, with their
    /// steps, unless their tree still has a live run; returns how many.
    fn prune_runs(&self, status: RunStatus, finished_before: DateTime<Utc>) -> Fut<'_, u64>;
}

pub(crate) type Fut<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A database the outbox can live in. Implemented by [`SqliteBackend`], [`PostgresBackend`] and
/// [`MemoryBackend`] only; applications pick one through [`crate::sqlite`], [`crate::postgres`]
/// or [`crate::memory`].
///
/// The methods are the outbox's storage operations; applications call them through
/// [`Store`], [`crate::EventBus`] and the drain, not directly.
pub trait Backend: sealed::Sealed + JobStore + Clone + Send + Sync + 'static {
    /// The caller's transaction that publishing writes into: a plain `sqlx::Transaction` for
    /// the SQL backends.
    type Transaction<'c>: Send;

    #[doc(hidden)]
    fn begin(&self) -> Fut<'_, Self::Transaction<'static>>;
    #[doc(hidden)]
    fn commit<'a, 'c: 'a>(&'a self, tx: Self::Transaction<'c>) -> Fut<'a, ()>;
    #[doc(hidden)]
    fn migrate(&self, now: DateTime<Utc>) -> Fut<'_, ()>;
    #[doc(hidden)]
    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        events: &'a [NewEvent],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>>;
    /// Enqueues runs in the caller's transaction; returns each live run's id (a deduplicated
    /// run returns the id of the run it collapsed onto).
    #[doc(hidden)]
    fn insert_runs<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        runs: &'a [NewRun],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>>;
    /// What holds a claimed batch until it is completed: a lease owner on SQLite and in
    /// memory, the open transaction holding the rows' locks on PostgreSQL. Dropping it
    /// without completing gives the batch back (at once on PostgreSQL, after the lease
    /// otherwise).
    #[doc(hidden)]
    type EventClaim: Send;

    #[doc(hidden)]
    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, (Vec<StoredEvent>, Self::EventClaim)>;
    /// Marks the claimed events processed and records the deliveries still owed, in one
    /// transaction; returns how many events were still ours.
    #[doc(hidden)]
    fn complete_events<'a>(
        &'a self,
        claim: Self::EventClaim,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64>;
    #[doc(hidden)]
    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>>;
    #[doc(hidden)]
    fn finish_deliveries<'a>(
        &'a self,
        owner: &'a str,
        outcomes: &'a [DeliveryOutcome],
        now: DateTime<Utc>,
    ) -> Fut<'a, ()>;
    #[doc(hidden)]
    fn release<'a>(&'a self, owner: &'a str) -> Fut<'a, u64>;
    #[doc(hidden)]
    fn load_stream<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        after_sequence: i64,
    ) -> Fut<'a, Vec<StreamEvent>>;
    #[doc(hidden)]
    fn load_snapshot<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
    ) -> Fut<'a, Option<(i64, String)>>;
    #[doc(hidden)]
    fn save_snapshot<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        sequence: i64,
        state: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, ()>;
    /// The projection's checkpoint, created at zero if new, and locked for this transaction.
    #[doc(hidden)]
    fn load_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Checkpoint>;
    #[doc(hidden)]
    fn save_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        checkpoint: Checkpoint,
        now: DateTime<Utc>,
    ) -> Fut<'a, ()>;
    /// Committed events after `after`, in projection order, never skipping one that commits
    /// later at a smaller position.
    #[doc(hidden)]
    fn read_committed<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>>;
    #[doc(hidden)]
    fn dead_letters(&self, limit: u32) -> Fut<'_, Vec<DeadLetter>>;
    #[doc(hidden)]
    fn redrive<'a>(&'a self, which: &'a Redrive, now: DateTime<Utc>) -> Fut<'a, u64>;
    #[doc(hidden)]
    fn prune(&self, processed_before: DateTime<Utc>) -> Fut<'_, u64>;
    #[doc(hidden)]
    fn stats(&self) -> Fut<'_, OutboxStats>;
    /// Starts whatever turns commits made elsewhere into wake-ups (PostgreSQL `LISTEN`).
    #[doc(hidden)]
    fn listen(&self, wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>>;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn corrupt(id: Uuid, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        event_id: id,
        reason: reason.into(),
    }
}

//! The seam between the runtime and a database: the rows that cross it and the storage
//! operations a backend implements. Backends store; the runtime decides.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use super::wake::Wakes;
use crate::ops::{
    DeadLetter, DueRuns, EventDetail, EventFilter, EventSummary, JobStats, LaneStats, OutboxStats,
    ProjectionLag, Redrive, RunFilter, RunInfo, RunStatus,
};
use crate::trace::TraceContext;

/// The name of the lane of audit events, which have no pool.
pub(crate) const AUDIT_LANE: &str = "audit";

/// Which rows a drain lane claims: the domain events of one pool, or the audit events (which
/// have no pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The domain events of this delivery pool, e.g. `events_change`.
    Pool(String),
    /// The audit-tier events: one lane for all of them, named `audit`.
    Audit,
}

impl Lane {
    /// The pool column this lane claims; `None` for the audit lane, whose rows have none.
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
            Lane::Audit => f.write_str(AUDIT_LANE),
        }
    }
}

/// An event type a draining process can deliver: its type, up to the version its code reads.
/// An event stored at a newer version (by a newer release, during a rolling deploy) would fail
/// to decode here, so it waits for a process that reads it, like an unknown type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownType {
    /// The event type.
    pub event_type: &'static str,
    /// The newest payload version this process reads.
    pub version: u32,
}

impl KnownType {
    /// Whether a process that knows `types` can deliver an event of `event_type` stored at
    /// `version`.
    pub fn covers(types: &[KnownType], event_type: &str, version: u32) -> bool {
        types
            .iter()
            .any(|known| known.event_type == event_type && version <= known.version)
    }
}

/// An event ready to be inserted: everything publishing stamped on it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event's id, also its idempotency key: inserting it again stores nothing.
    pub id: Uuid,
    /// The event's type, from its metadata.
    pub event_type: &'static str,
    /// The payload's schema version, from its metadata.
    pub version: u32,
    /// `domain` or `audit`, as stored.
    pub tier: &'static str,
    /// `inbound`, `change` or `outbound` for a domain event; `None` for an audit event.
    pub direction: Option<&'static str>,
    /// The pool whose lane delivers it; `None` for an audit event.
    pub pool: Option<&'static str>,
    /// The aggregate the event concerns, if its type declares one.
    pub aggregate_type: Option<&'static str>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<String>,
    /// The id shared by a chain of events caused by one another.
    pub correlation_id: Option<Uuid>,
    /// The id of the event that caused this one.
    pub causation_id: Option<Uuid>,
    /// JSON text of the payload.
    pub payload: String,
    /// When the fact happened: publish time unless the publisher said otherwise.
    pub occurred_at: DateTime<Utc>,
    /// The event's number in its aggregate's stream, for event-sourced aggregates; unique per
    /// aggregate, so a concurrent append of the same number fails.
    pub aggregate_sequence: Option<i64>,
    /// The trace it was published in: the parent of its deliveries' spans.
    pub trace: Option<TraceContext>,
}

/// One event of an aggregate's stream, as stored.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The event's id.
    pub id: Uuid,
    /// Its number in the aggregate's stream, from 1.
    pub sequence: i64,
    /// The event's type.
    pub event_type: String,
    /// The payload version it was stored with; older ones are upcast when loaded.
    pub version: u32,
    /// JSON text of the payload.
    pub payload: String,
}

/// How far a projection has folded the outbox. On PostgreSQL the pair (transaction, position)
/// orders events; elsewhere the position alone does and `tx_id` stays 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    /// The PostgreSQL transaction id of the last folded event; 0 on the other backends.
    pub tx_id: i64,
    /// The outbox position of the last folded event; 0 before the first.
    pub position: i64,
}

/// A committed event as a projection reads it.
#[derive(Debug, Clone)]
pub struct ProjectedEvent {
    /// The event's position in the outbox.
    pub position: i64,
    /// The event's id.
    pub id: Uuid,
    /// The event's type, to pick the events a projection folds.
    pub event_type: String,
    /// The payload version it was stored with.
    pub version: u32,
    /// The aggregate it concerns, if any.
    pub aggregate_type: Option<String>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<String>,
    /// The payload, parsed.
    pub payload: serde_json::Value,
    /// When the fact happened.
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
    /// The event's position in the outbox: lanes claim in this order.
    pub position: i64,
    /// The event's id.
    pub id: Uuid,
    /// The event's type, to find its subscribers and retry policy.
    pub event_type: String,
    /// The payload version it was stored with.
    pub version: u32,
    /// The pool it is delivered in; `None` for an audit event.
    pub pool: Option<String>,
    /// The aggregate it concerns, if any: its events are delivered in order.
    pub aggregate_type: Option<String>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<String>,
    /// The id shared by a chain of events caused by one another.
    pub correlation_id: Option<Uuid>,
    /// The id of the event that caused this one.
    pub causation_id: Option<Uuid>,
    /// JSON text of the payload.
    pub payload: String,
    /// When the fact happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was stored: what the delivery latency is measured from.
    pub recorded_at: DateTime<Utc>,
    /// How many times the row has been claimed, this claim included.
    pub claims: u32,
    /// Subscribers with a delivery of an earlier event of this aggregate (in this pool) still
    /// open: this event must queue behind it for them. Read with the claim.
    pub blocked_subscribers: Vec<String>,
    /// Why the stored row cannot be read (a payload that is not UTF-8 text, say), when it
    /// cannot: its subscribers are dead-lettered with the reason instead of called, so that one
    /// bad row neither fails every claim of its pool nor holds the events claimed with it.
    pub unreadable: Option<String>,
    /// The trace it was published in: the parent of its deliveries' spans.
    pub trace: Option<TraceContext>,
}

/// A delivery that the first fan-out could not complete.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The event owed.
    pub event_id: Uuid,
    /// The event's position: the order of an aggregate's retries.
    pub event_position: i64,
    /// The subscriber it is owed to, by name.
    pub subscriber: String,
    /// The event's pool: the retry lane that claims the delivery.
    pub pool: Option<String>,
    /// The event's aggregate, if any: later events of it queue behind this delivery.
    pub aggregate_type: Option<String>,
    /// The id of that aggregate.
    pub aggregate_id: Option<String>,
    /// When it is due again, or that it is dead-lettered.
    pub state: DeliveryState,
}

/// Where a delivery stands after an attempt (or after being queued without one).
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    /// Try (again) at `at`; `attempts` were made so far.
    Retry {
        /// Attempts made so far; 0 when queued behind an earlier event without one.
        attempts: u32,
        /// When it is next due.
        at: DateTime<Utc>,
        /// The last attempt's error; `None` when no attempt was made.
        last_error: Option<String>,
    },
    /// Out of attempts: dead-lettered until re-driven.
    Failed {
        /// Attempts made, all failed.
        attempts: u32,
        /// The last attempt's error.
        last_error: String,
    },
}

/// A claimed retry of one subscriber's delivery, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The subscriber to deliver to, by name.
    pub subscriber: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// How many times the delivery was claimed since its last recorded attempt, this claim
    /// included: the others were lost.
    pub claims: u32,
    /// The event to deliver.
    pub event: StoredEvent,
}

/// The result of a claimed retry.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    /// The event of the delivery.
    pub event_id: Uuid,
    /// The subscriber of the delivery.
    pub subscriber: String,
    /// `None`: delivered, the row goes away.
    pub state: Option<DeliveryState>,
}

/// A run to enqueue.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run's id (UUID v7).
    pub id: Uuid,
    /// The job's name.
    pub job: &'static str,
    /// The job's pool: the workers that claim it.
    pub pool: &'static str,
    /// JSON text.
    pub input: String,
    /// Attempts allowed, from the job's retry policy.
    pub max_attempts: u32,
    /// When it becomes due; `None`: at once.
    pub run_at: Option<DateTime<Utc>>,
    /// The job's dedupe key for this input: a live run of the job with the same key absorbs it.
    pub dedupe_key: Option<String>,
    /// The type of the aggregate the run concerns, if any.
    pub scope_type: Option<String>,
    /// The id of that aggregate.
    pub scope_id: Option<String>,
    /// The event that enqueued it, if any.
    pub event_id: Option<Uuid>,
    /// The run that spawned it, if any.
    pub parent_id: Option<Uuid>,
    /// The top-level run of its tree: its own id when it has no parent.
    pub root_id: Uuid,
    /// The tenant it belongs to: its trigger event's, its decision's or its parent's.
    pub tenant_id: Option<String>,
    /// A child's key within its parent: inserting the same key for the same parent again
    /// returns the existing child.
    pub child_key: Option<String>,
    /// The trace it was enqueued in: the parent of its attempts' spans.
    pub trace: Option<TraceContext>,
}

/// A run a worker claimed for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The run's id.
    pub id: Uuid,
    /// The job's name, to find its runner.
    pub job: String,
    /// JSON text of the input.
    pub input: String,
    /// This attempt's number, 1-based; every write of the attempt is fenced on it.
    pub attempt: u32,
    /// Attempts allowed: a failure of the last one fails the run instead of retrying it.
    pub max_attempts: u32,
    /// The top-level run of its tree, for the attempt's [`crate::JobContext`].
    pub root_id: Uuid,
    /// The tenant it belongs to, for the attempt's [`crate::JobContext`].
    pub tenant_id: Option<String>,
    /// The trace it was enqueued in: the parent of the attempt's span.
    pub trace: Option<TraceContext>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The job returned its output.
    Completed {
        /// JSON text of the output.
        output: String,
    },
    /// Failed with attempts left: pending again at `at`.
    Retry {
        /// When the run is due again.
        at: DateTime<Utc>,
        /// The attempt's error.
        error: String,
    },
    /// Failed (or panicked) on its last attempt.
    Failed {
        /// The attempt's error.
        error: String,
    },
    /// Ran past the job's timeout, which ends the run.
    TimedOut {
        /// What the timeout was.
        error: String,
    },
}

/// The end of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The run.
    pub id: Uuid,
    /// The attempt that ended: the write is fenced on it.
    pub attempt: u32,
    /// How it ended.
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
    /// At most this many rows.
    pub limit: u32,
    /// How long the claim lasts unless renewed or completed.
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
    /// The run.
    pub id: Uuid,
    /// The attempt that stalled.
    pub attempt: u32,
    /// Attempts allowed: whether the stalled one was its last.
    pub max_attempts: u32,
}

/// What the runtime decided for an expired run: its next status (pending to be retried, or
/// failed) and the error it records. Written fenced on the attempt that expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescue {
    /// The run.
    pub id: Uuid,
    /// The attempt that expired: the write is fenced on it.
    pub attempt: u32,
    /// Its next status: pending (to be retried) or failed.
    pub status: RunStatus,
    /// The error recorded for the stalled attempt.
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
    /// Enqueues outside any caller transaction (a child run). A child is only inserted while
    /// its parent still runs the attempt `parent_attempt`; returns the live run's id, or `None`
    /// when fenced.
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Uuid>>;
    /// Claims due runs of these jobs (uncapped ones) in `pool`, earliest due first.
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
    /// The stored output of step `step` of `run`, if an attempt completed it.
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
    /// Cancels `run` and the live runs below it; returns how many were live.
    fn cancel_tree(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, u64>;
    /// Sends a failed, timed-out or canceled run back to pending with a fresh set of attempts.
    fn retry_run(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, bool>;
    /// Runs matching `filter`, newest first.
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>>;
    /// One run, if it exists.
    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>>;
    /// Pending runs due before `due_before`, counted per pool and job.
    fn due_runs(&self, due_before: DateTime<Utc>) -> Fut<'_, Vec<DueRuns>>;
    /// Runs per pool and job by status, as of `now`.
    fn job_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<JobStats>>;
    /// Deletes runs in the final `status` that finished before `finished_before`, with their
    /// steps, unless their tree still has a live run; returns how many.
    fn prune_runs(&self, status: RunStatus, finished_before: DateTime<Utc>) -> Fut<'_, u64>;
}

pub(crate) type Fut<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A database the outbox can live in. Implemented by [`crate::SqliteBackend`],
/// [`crate::PostgresBackend`] and [`crate::MemoryBackend`] only; applications pick one through
/// [`crate::sqlite`], [`crate::postgres`] or [`crate::memory`].
///
/// The methods are the outbox's storage operations; applications call them through
/// [`crate::Store`], [`crate::EventBus`] and the drain, not directly.
pub trait Backend: sealed::Sealed + JobStore + Clone + Send + Sync + 'static {
    /// The caller's transaction that publishing writes into: a plain `sqlx::Transaction` for
    /// the SQL backends.
    type Transaction<'c>: Send;

    /// Opens the caller's transaction (see [`crate::Store::begin`]).
    #[doc(hidden)]
    fn begin(&self) -> Fut<'_, Self::Transaction<'static>>;
    /// Commits a transaction from `begin`.
    #[doc(hidden)]
    fn commit<'a, 'c: 'a>(&'a self, tx: Self::Transaction<'c>) -> Fut<'a, ()>;
    /// Applies the embedded migrations this database lacks.
    #[doc(hidden)]
    fn migrate(&self, now: DateTime<Utc>) -> Fut<'_, ()>;
    /// Inserts events in the caller's transaction; returns the ids of those not stored before.
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
    /// Claims `lane`'s next pending events, at most one per aggregate (the oldest it has open),
    /// leased to `claim.owner` until `claim.until()`: the lease is committed, so a worker that
    /// dies holding it loses it when it expires, and each claim counts in
    /// [`StoredEvent::claims`]. With `types`, only events of those types, at those versions or
    /// older, are claimed (what the draining process can read: the others wait for a process
    /// that reads them, and hold their aggregate's later events back); `None` claims every
    /// event.
    #[doc(hidden)]
    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>>;
    /// Marks these claimed events processed and records the deliveries still owed, in one
    /// transaction, for the events `owner` still holds; returns how many those were.
    #[doc(hidden)]
    fn complete_events<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64>;
    /// Extends `owner`'s leases on these claimed events to `until`, while their deliveries
    /// still run; returns the positions still ours.
    #[doc(hidden)]
    fn extend_event_leases<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<i64>>;
    /// Claims `lane`'s due retries, at most one per subscriber and aggregate.
    #[doc(hidden)]
    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>>;
    /// Extends `owner`'s leases on the retries it holds to `until`, while they are being
    /// delivered; returns how many it still holds.
    #[doc(hidden)]
    fn extend_delivery_leases<'a>(&'a self, owner: &'a str, until: DateTime<Utc>) -> Fut<'a, u64>;
    /// Records the outcomes of claimed retries that `owner` still holds.
    #[doc(hidden)]
    fn finish_deliveries<'a>(
        &'a self,
        owner: &'a str,
        outcomes: &'a [DeliveryOutcome],
        now: DateTime<Utc>,
    ) -> Fut<'a, ()>;
    /// Gives back the events and retries `owner` holds so that they are claimable at once;
    /// returns how many.
    #[doc(hidden)]
    fn release<'a>(&'a self, owner: &'a str) -> Fut<'a, u64>;
    /// The aggregate's events after `after_sequence`, in order.
    #[doc(hidden)]
    fn load_stream<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        after_sequence: i64,
    ) -> Fut<'a, Vec<StreamEvent>>;
    /// The aggregate's latest snapshot as (sequence, JSON state), if any.
    #[doc(hidden)]
    fn load_snapshot<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
    ) -> Fut<'a, Option<(i64, String)>>;
    /// Stores a snapshot of the state at `sequence`, in the caller's transaction.
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
    /// How far `projection` is behind the outbox (nothing folded yet: every event).
    #[doc(hidden)]
    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag>;
    /// See [`crate::Store::dead_letters_of`].
    #[doc(hidden)]
    fn dead_letters<'a>(&'a self, which: &'a Redrive, limit: u32) -> Fut<'a, Vec<DeadLetter>>;
    /// See [`crate::Store::redrive`].
    #[doc(hidden)]
    fn redrive<'a>(&'a self, which: &'a Redrive, now: DateTime<Utc>) -> Fut<'a, u64>;
    /// Deletes events processed before `processed_before` that owe no delivery; returns how many.
    #[doc(hidden)]
    fn prune(&self, processed_before: DateTime<Utc>) -> Fut<'_, u64>;
    /// See [`crate::Store::stats`].
    #[doc(hidden)]
    fn stats(&self) -> Fut<'_, OutboxStats>;
    /// See [`crate::Store::lane_stats`].
    #[doc(hidden)]
    fn lane_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<LaneStats>>;
    /// Every projection's checkpoint, by name (its lag is read with `projection_lag`).
    #[doc(hidden)]
    fn projection_checkpoints(&self) -> Fut<'_, Vec<(String, i64, DateTime<Utc>)>>;
    /// See [`crate::Store::events`].
    #[doc(hidden)]
    fn list_events<'a>(&'a self, filter: &'a EventFilter) -> Fut<'a, Vec<EventSummary>>;
    /// See [`crate::Store::event`].
    #[doc(hidden)]
    fn get_event(&self, id: Uuid) -> Fut<'_, Option<EventDetail>>;
    /// See [`crate::Store::events_committed_after`].
    #[doc(hidden)]
    fn list_committed<'a>(
        &'a self,
        after: Checkpoint,
        filter: &'a EventFilter,
    ) -> Fut<'a, Vec<(Checkpoint, EventSummary)>>;
    /// See [`crate::Store::committed_head`].
    #[doc(hidden)]
    fn committed_head(&self) -> Fut<'_, Checkpoint>;
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

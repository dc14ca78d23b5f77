//! Where events live: the outbox tables and the operations the bus and the drain need on them,
//! for SQLite (the embedded default), PostgreSQL and an in-memory backend for unit tests.

mod jobs;
mod memory;
mod memory_jobs;
mod postgres;
mod postgres_jobs;
mod sqlite;
mod sqlite_jobs;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

pub use jobs::{
    AttemptOutcome, AttemptResult, ClaimedRun, JobStore, NewRun, Rescued, RunFilter, RunInfo,
    RunStatus,
};
pub use memory::{MemoryBackend, MemoryTransaction, RecordedEvent};
pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

/// A store on the embedded default, SQLite.
pub type SqliteStore = Store<SqliteBackend>;
/// A store on PostgreSQL, for many workers on many machines.
pub type PostgresStore = Store<PostgresBackend>;
/// A store in memory, for unit tests: same API, nothing persisted.
pub type MemoryStore = Store<MemoryBackend>;

/// A failure of the database underneath the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored event {event_id} is corrupt: {reason}")]
    Corrupt { event_id: Uuid, reason: String },
    /// Another writer appended the same aggregate sequence number first.
    #[error("another writer appended to this aggregate first")]
    Conflict,
}

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
pub(crate) fn conflict_or(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(error),
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

type Fut<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

mod sealed {
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
    fn migrate(&self) -> Fut<'_, ()>;
    #[doc(hidden)]
    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        events: &'a [NewEvent],
    ) -> Fut<'a, Vec<Uuid>>;
    /// Enqueues runs in the caller's transaction; returns each live run's id (a deduplicated
    /// run returns the id of the run it collapsed onto).
    #[doc(hidden)]
    fn insert_runs<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        runs: &'a [NewRun],
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
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, (Vec<StoredEvent>, Self::EventClaim)>;
    /// Marks the claimed events processed and records the deliveries still owed, in one
    /// transaction; returns how many events were still ours.
    #[doc(hidden)]
    fn complete_events<'a>(
        &'a self,
        claim: Self::EventClaim,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
    ) -> Fut<'a, u64>;
    #[doc(hidden)]
    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, Vec<ClaimedDelivery>>;
    #[doc(hidden)]
    fn finish_deliveries<'a>(
        &'a self,
        owner: &'a str,
        outcomes: &'a [DeliveryOutcome],
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
    ) -> Fut<'a, ()>;
    /// The projection's checkpoint, created at zero if new, and locked for this transaction.
    #[doc(hidden)]
    fn load_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
    ) -> Fut<'a, Checkpoint>;
    #[doc(hidden)]
    fn save_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        checkpoint: Checkpoint,
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
    fn redrive<'a>(&'a self, which: &'a Redrive) -> Fut<'a, u64>;
    #[doc(hidden)]
    fn prune(&self, processed_before: DateTime<Utc>) -> Fut<'_, u64>;
    #[doc(hidden)]
    fn stats(&self) -> Fut<'_, OutboxStats>;
    /// Starts whatever turns commits made elsewhere into wake-ups (PostgreSQL `LISTEN`).
    #[doc(hidden)]
    fn listen(&self, wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>>;
}

/// Wakes drain lanes when events commit. A counter in a watch channel, so a lane that was busy
/// when the wake-up came sees it on its next wait instead of losing it.
#[derive(Debug, Clone)]
pub struct Wake(Arc<watch::Sender<u64>>);

impl Wake {
    fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    pub(crate) fn notify(&self) {
        self.0
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The wake-ups of one store.
#[derive(Debug, Clone)]
pub struct Wakes {
    /// Committed events: wakes event lanes.
    pub(crate) events: Wake,
    /// New retries or re-driven dead letters: wakes retry lanes.
    pub(crate) retries: Wake,
    /// Enqueued runs: wakes job workers.
    pub(crate) jobs: Wake,
}

impl Wakes {
    fn new() -> Self {
        Self {
            events: Wake::new(),
            retries: Wake::new(),
            jobs: Wake::new(),
        }
    }
}

/// Stops the `LISTEN` task when the last clone of its store goes away.
#[derive(Debug, Default)]
struct Listener(tokio::sync::OnceCell<Option<tokio::task::JoinHandle<()>>>);

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(Some(task)) = self.0.get() {
            task.abort();
        }
    }
}

/// Store-wide settings.
#[derive(Debug, Clone, Copy, Default)]
struct Settings {
    multi_tenant: bool,
}

/// The outbox on one database: the handle applications clone and share.
#[derive(Debug, Clone)]
pub struct Store<B: Backend> {
    backend: B,
    wakes: Wakes,
    listener: Arc<Listener>,
    settings: Settings,
}

impl<B: Backend> Store<B> {
    fn from_backend(backend: B, wakes: Wakes) -> Self {
        Self {
            backend,
            wakes,
            listener: Arc::default(),
            settings: Settings::default(),
        }
    }

    /// Starts listening for commits of other processes (PostgreSQL), once per store.
    pub(crate) async fn ensure_listening(&self) {
        self.listener
            .0
            .get_or_init(|| async {
                match self.backend.listen(self.wakes.clone()).await {
                    Ok(task) => task,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for commits; relying on polling");
                        None
                    }
                }
            })
            .await;
    }

    /// Applies the embedded migrations that this database has not seen yet. Safe to call from
    /// several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await
    }

    /// Opens a transaction to write the application's rows and publish events in. On SQLite it
    /// takes the write lock at once (`BEGIN IMMEDIATE`) so that it can never fail half-way
    /// with a lock upgrade conflict.
    pub async fn begin(&self) -> Result<B::Transaction<'static>, StoreError> {
        self.backend.begin().await
    }

    /// Commits a transaction from [`Store::begin`]. Code that knows its backend may as well
    /// call the transaction's own `commit`; this one also serves code generic over backends.
    pub async fn commit<'c>(&self, tx: B::Transaction<'c>) -> Result<(), StoreError> {
        self.backend.commit(tx).await
    }

    /// Requires a tenant (or an explicit [`crate::Publish::without_tenant`]) on every publish.
    pub fn multi_tenant(mut self, on: bool) -> Self {
        self.settings.multi_tenant = on;
        self
    }

    pub fn is_multi_tenant(&self) -> bool {
        self.settings.multi_tenant
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Deliveries that ran out of attempts, oldest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.backend.dead_letters(limit).await
    }

    /// Puts dead letters back in line with a fresh set of attempts; returns how many.
    pub async fn redrive(&self, which: &Redrive) -> Result<u64, StoreError> {
        let count = self.backend.redrive(which).await?;
        if count > 0 {
            self.wakes.retries.notify();
        }
        Ok(count)
    }

    /// Deletes processed events older than `age` (and never one with a retry or dead letter
    /// outstanding); returns how many.
    pub async fn prune(&self, age: Duration) -> Result<u64, StoreError> {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now()
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.backend.prune(before).await
    }

    pub async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.backend.stats().await
    }

    pub(crate) fn wakes(&self) -> &Wakes {
        &self.wakes
    }
}

/// Opens (creating it if missing) a SQLite database, e.g. `sqlite://app.db`, with crash-safe
/// settings: WAL journal, `synchronous = FULL`, foreign keys on.
pub async fn sqlite(url: &str) -> Result<SqliteStore, StoreError> {
    let wakes = Wakes::new();
    let backend = SqliteBackend::connect(url, wakes.clone()).await?;
    Ok(Store::from_backend(backend, wakes))
}

/// Connects to PostgreSQL, e.g. `postgres://user@host/db`.
pub async fn postgres(url: &str) -> Result<PostgresStore, StoreError> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    postgres_with(options, 10).await
}

/// Connects to PostgreSQL with explicit options (a `search_path`, TLS, ...) and pool size.
pub async fn postgres_with(
    options: sqlx::postgres::PgConnectOptions,
    max_connections: u32,
) -> Result<PostgresStore, StoreError> {
    let backend = PostgresBackend::connect(options, max_connections).await?;
    Ok(Store::from_backend(backend, Wakes::new()))
}

/// An in-memory store for unit tests: the same bus, drain and assertions on what was published.
pub fn memory() -> MemoryStore {
    let wakes = Wakes::new();
    Store::from_backend(MemoryBackend::new(wakes.clone()), wakes)
}

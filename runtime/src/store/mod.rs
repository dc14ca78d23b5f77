//! Where events live: the [`Store`] handle applications share, and one folder per database
//! behind the [`seam`]: SQLite (the embedded default), PostgreSQL, and memory for unit tests.

#[cfg(test)]
mod contract;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod seam;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
pub(crate) mod wake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use memory::{MemoryBackend, MemoryTransaction, RecordedEvent};
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;
pub use seam::*;
pub(crate) use seam::{Fut, sealed};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use seam::{conflict_or, corrupt};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBackend;
pub(crate) use wake::Wakes;

use crate::clock::{Clock, SystemClock};
pub(crate) use crate::ops::{
    DeadLetter, DueRuns, EventDetail, EventFilter, EventSummary, LaneStats, OutboxStats,
    ProjectionStatus, Pruned, Redrive, Retention, RunFilter, RunInfo, RunStatus,
};

/// A store on the embedded default, SQLite.
#[cfg(feature = "sqlite")]
pub type SqliteStore = Store<SqliteBackend>;
/// A store on PostgreSQL, for many workers on many machines.
#[cfg(feature = "postgres")]
pub type PostgresStore = Store<PostgresBackend>;
/// A store in memory, for unit tests: same API, nothing persisted.
pub type MemoryStore = Store<MemoryBackend>;

/// A failure of the database underneath the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement or could not be reached.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A Herald table is missing: the database was never migrated.
    #[error(
        "the table `{table}` does not exist: call `store.migrate().await?` once at start-up, \
         before publishing or starting a drain or a worker"
    )]
    NotMigrated {
        /// The missing table.
        table: String,
    },
    /// The database holds migrations this build of Herald does not know.
    #[error(
        "this database was migrated by a newer Herald (migration {applied}; this build knows \
         migrations up to {known}): upgrade this process, or point it at another database"
    )]
    NewerSchema {
        /// The newest migration the database recorded.
        applied: i64,
        /// The newest migration this build embeds.
        known: i64,
    },
    /// A table with one of Herald's names exists but is not Herald's.
    #[error(
        "a table named `{table}` exists but was not created by Herald's migrations: rename it, \
         or give Herald a schema (search_path) or database of its own"
    )]
    ForeignTable {
        /// The table's name.
        table: String,
    },
    /// An embedded migration script failed. [`Store::migrate`] applies its migrations in one
    /// transaction, so that call applied none of them.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's number, as recorded in `herald_migrations`.
        version: i64,
        /// The migration's name, e.g. `outbox`.
        name: &'static str,
        /// What the database said.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row cannot be read back as what the runtime wrote: a hand-edited row, or one
    /// written by an incompatible release.
    #[error("stored event {event_id} is corrupt: {reason}")]
    Corrupt {
        /// The id of the row: an event's, or a run's despite the name.
        event_id: Uuid,
        /// What is wrong with it.
        reason: String,
    },
    /// Another writer appended the same aggregate sequence number first.
    #[error("another writer appended to this aggregate first")]
    Conflict,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match missing_table(&error) {
            Some(table) if table.starts_with("herald_") => StoreError::NotMigrated { table },
            _ => StoreError::Database(error),
        }
    }
}

/// The table a statement failed on because it does not exist: SQLite says `no such table:
/// herald_events`, PostgreSQL `relation "herald_events" does not exist` (42P01).
pub(crate) fn missing_table(error: &sqlx::Error) -> Option<String> {
    let database = error.as_database_error()?;
    let message = database.message();
    let table = match message.strip_prefix("no such table: ") {
        Some(table) => table.trim(),
        None if database.code().as_deref() == Some("42P01") => message.split('"').nth(1)?,
        None => return None,
    };
    Some(table.rsplit('.').next().unwrap_or(table).to_owned())
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
    clock: Arc<dyn Clock>,
    wakes: Wakes,
    listener: Arc<Listener>,
    settings: Settings,
}

impl<B: Backend> Store<B> {
    fn from_backend(backend: B, wakes: Wakes) -> Self {
        Self {
            backend,
            clock: Arc::new(SystemClock),
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
        self.backend.migrate(self.now()).await
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

    /// Reads time from `clock` instead of the system's: tests move a
    /// [`crate::testing::ManualClock`] past a lease or a backoff instead of sleeping.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The store's current time, from its clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether publishing requires a tenant: see [`Store::multi_tenant`].
    pub fn is_multi_tenant(&self) -> bool {
        self.settings.multi_tenant
    }

    /// The backend underneath, for what only it offers (e.g. `pool()`, the SQL backends'
    /// connection pool for the application's own queries).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Deliveries that ran out of attempts, oldest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.backend.dead_letters(&Redrive::all(), limit).await
    }

    /// The dead letters that `which` names (what [`Store::redrive`] with it would re-drive),
    /// oldest first.
    pub async fn dead_letters_of(
        &self,
        which: &Redrive,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.backend.dead_letters(which, limit).await
    }

    /// Per drain lane: the backlog, how old its oldest event is, the last minute's rate,
    /// retries owed and dead letters. A lane appears once it holds an open event, a delivery
    /// or an event processed in the last minute.
    pub async fn lane_stats(&self) -> Result<Vec<LaneStats>, StoreError> {
        self.backend.lane_stats(self.now()).await
    }

    /// Every projection that has saved a checkpoint, with how far it is behind.
    pub async fn projections(&self) -> Result<Vec<ProjectionStatus>, StoreError> {
        let mut projections = Vec::new();
        for (name, position, updated_at) in self.backend.projection_checkpoints().await? {
            let lag = self.backend.projection_lag(&name).await?;
            projections.push(ProjectionStatus {
                name,
                position,
                updated_at,
                lag,
            });
        }
        Ok(projections)
    }

    /// Events matching `filter`: the newest first, or the oldest first after
    /// [`EventFilter::after_position`] (to follow the outbox).
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        self.backend.list_events(filter).await
    }

    /// The events of `filter` committed after `after`, in commit order, each with the
    /// checkpoint to follow on from: what `herald events tail` follows. On PostgreSQL an event's
    /// position is taken before its transaction commits, so a later position can commit first;
    /// reading by position would skip the earlier one for good. This reads, as projections do,
    /// only the events of transactions older than every one still running, in (transaction,
    /// position) order, so none is skipped: an event shows once its transaction and every
    /// older one have ended. Elsewhere positions are commit order. `filter.after_position` is
    /// ignored (`after` says where to start); `filter.limit` applies.
    pub async fn events_committed_after(
        &self,
        after: Checkpoint,
        filter: &EventFilter,
    ) -> Result<Vec<(Checkpoint, EventSummary)>, StoreError> {
        self.backend.list_committed(after, filter).await
    }

    /// The checkpoint of the newest event [`Store::events_committed_after`] can read now: where
    /// to start following new commits from.
    pub async fn committed_head(&self) -> Result<Checkpoint, StoreError> {
        self.backend.committed_head().await
    }

    /// One event whole: envelope, payload, the deliveries it still owes (a delivery that
    /// succeeded leaves none) and the runs it enqueued.
    pub async fn event(&self, id: Uuid) -> Result<Option<EventDetail>, StoreError> {
        self.backend.get_event(id).await
    }

    /// Puts dead letters back in line with a fresh set of attempts; returns how many.
    pub async fn redrive(&self, which: &Redrive) -> Result<u64, StoreError> {
        let count = self.backend.redrive(which, self.now()).await?;
        if count > 0 {
            self.wakes.retries.notify();
        }
        Ok(count)
    }

    /// Deletes what is finished and older than `retention` says: processed events (never one of
    /// an aggregate's stream, nor one with a retry or dead letter outstanding) and finished job
    /// runs with their steps (never a run whose tree still has a pending or running run).
    pub async fn prune(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        let ago = |age: Duration| {
            chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| self.now().checked_sub_signed(age))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        Ok(Pruned {
            events: self.backend.prune(ago(retention.events)).await?,
            runs: self
                .backend
                .prune_runs(RunStatus::Completed, ago(retention.completed_runs))
                .await?
                + self
                    .backend
                    .prune_runs(RunStatus::Failed, ago(retention.failed_runs))
                    .await?
                + self
                    .backend
                    .prune_runs(RunStatus::TimedOut, ago(retention.failed_runs))
                    .await?
                + self
                    .backend
                    .prune_runs(RunStatus::Canceled, ago(retention.failed_runs))
                    .await?,
        })
    }

    /// Counts of pending and processed events, owed deliveries and dead letters.
    pub async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.backend.stats().await
    }

    pub(crate) fn wakes(&self) -> &Wakes {
        &self.wakes
    }
}

/// Opens (creating it if missing) a SQLite database, e.g. `sqlite://app.db`, with crash-safe
/// settings: WAL journal, `synchronous = FULL`, foreign keys on.
#[cfg(feature = "sqlite")]
pub async fn sqlite(url: &str) -> Result<SqliteStore, StoreError> {
    let wakes = Wakes::new();
    let backend = SqliteBackend::connect(url, wakes.clone()).await?;
    Ok(Store::from_backend(backend, wakes))
}

/// Connects to PostgreSQL, e.g. `postgres://user@host/db`.
#[cfg(feature = "postgres")]
pub async fn postgres(url: &str) -> Result<PostgresStore, StoreError> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    postgres_with(options, 10).await
}

/// Connects to PostgreSQL with explicit options (a `search_path`, TLS, ...) and pool size.
#[cfg(feature = "postgres")]
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

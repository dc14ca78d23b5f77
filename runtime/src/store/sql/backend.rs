//! The one implementation of the seam for both SQL databases. A database brings what must
//! differ — its dialect, its pools, its claims (`SKIP LOCKED` on PostgreSQL, the single writer's
//! lock on SQLite), its bulk inserts and its wake-ups — through [`SqlBackend`] and
//! [`SqlJobStore`]; everything else is written once here, over [`super::outbox`] and
//! [`super::jobs`].

use chrono::{DateTime, Utc};
use sqlx::Database;
use uuid::Uuid;

use super::migrate::{self, Migration};
use super::{Dialect, jobs, ops, outbox};
use crate::ops::{
    DeadLetter, DueRuns, EventDetail, EventFilter, EventSummary, JobStats, LaneStats, OutboxStats,
    ProjectionLag, Redrive, RunFilter, RunInfo, RunStatus,
};
use crate::store::wake::Wakes;
use crate::store::{
    AttemptResult, Backend, Checkpoint, Claim, ClaimedDelivery, ClaimedRun, DeliveryOutcome,
    ExpiredRun, Fut, JobStore, KnownType, Lane, NewDelivery, NewEvent, NewRun, ProjectedEvent,
    Rescue, StoredEvent, StreamEvent, sealed,
};

/// A transaction of the database `Db`.
pub(crate) type Tx<'c, Db> = sqlx::Transaction<'c, Db>;

/// What one SQL database brings to the outbox. `pub` in a private module (sealed): the
/// blanket `Backend` impl names its associated types in a public interface.
pub trait SqlBackend: Clone + Send + Sync + 'static {
    type Db: Database;
    type Dialect: Dialect<Connection = <Self::Db as Database>::Connection>;
    /// How a write transaction starts: `BEGIN IMMEDIATE` on SQLite takes the write lock at
    /// once, so that a transaction never fails half-way on a lock upgrade.
    const BEGIN: &'static str;
    const MIGRATIONS: &'static [Migration];
    /// Creates `herald_migrations` if it is missing.
    const MIGRATIONS_TABLE: &'static str;
    /// How events are read in commit order ([`ops::COMMITTED_AFTER_BY_TRANSACTION`] where
    /// positions can commit out of order), and the newest checkpoint so read.
    const COMMITTED_AFTER: &'static str;
    const COMMITTED_HEAD: &'static str;

    /// The application's pool: publishes, enqueues, queries.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;
    /// The drain's and worker's bookkeeping (claims, acknowledgements, retries).
    fn bookkeeping(&self) -> &sqlx::Pool<Self::Db>;

    /// Serializes migrators: SQLite's `BEGIN IMMEDIATE` already has; PostgreSQL takes an
    /// advisory lock.
    fn lock_migrations<'a>(tx: &'a mut Tx<'_, Self::Db>) -> Fut<'a, ()>;

    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Tx<'_, Self::Db>,
        events: &'a [NewEvent],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>>;

    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>>;

    fn complete_events<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64>;

    fn extend_event_leases<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<i64>>;

    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>>;

    /// Reads the projection's checkpoint (created beforehand) so that two runners of one
    /// projection take turns.
    fn lock_checkpoint<'a>(
        tx: &'a mut Tx<'_, Self::Db>,
        projection: &'a str,
    ) -> Fut<'a, Checkpoint>;

    fn read_committed<'a>(
        tx: &'a mut Tx<'_, Self::Db>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>>;

    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag>;

    fn listen(&self, wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>>;
}

/// What one SQL database brings to durable jobs.
pub trait SqlJobStore: SqlBackend {
    /// Whether the parent still runs `attempt`, locked so that it cannot finish or be canceled
    /// before its child is added in the same transaction.
    fn parent_holds<'a>(tx: &'a mut Tx<'_, Self::Db>, parent: Uuid, attempt: u32) -> Fut<'a, bool>;

    fn claim_runs<'a>(
        &'a self,
        pool: &'a str,
        jobs: &'a [&'static str],
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>>;

    fn claim_capped<'a>(
        &'a self,
        pool: &'a str,
        job: &'static str,
        cap: u32,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>>;

    fn heartbeat<'a>(&'a self, runs: &'a [(Uuid, u32)], until: DateTime<Utc>)
    -> Fut<'a, Vec<Uuid>>;

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64>;
}

impl<S: SqlJobStore> sealed::Sealed for S {}

impl<S: SqlJobStore> Backend for S {
    type Transaction<'c> = Tx<'c, S::Db>;

    fn begin(&self) -> Fut<'_, Self::Transaction<'static>> {
        Box::pin(async move { Ok(self.pool().begin_with(S::BEGIN).await?) })
    }

    fn commit<'a, 'c: 'a>(&'a self, tx: Self::Transaction<'c>) -> Fut<'a, ()> {
        Box::pin(async move { Ok(tx.commit().await?) })
    }

    fn migrate(&self, now: DateTime<Utc>) -> Fut<'_, ()> {
        Box::pin(async move {
            let mut tx = self.pool().begin_with(S::BEGIN).await?;
            S::lock_migrations(&mut tx).await?;
            migrate::apply::<S::Dialect>(&mut tx, S::MIGRATIONS_TABLE, S::MIGRATIONS, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        events: &'a [NewEvent],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        SqlBackend::insert_events(self, tx, events, now)
    }

    fn insert_runs<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        runs: &'a [NewRun],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(jobs::insert_runs::<S::Dialect>(tx, runs, now))
    }

    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>> {
        SqlBackend::claim_events(self, lane, types, claim)
    }

    fn complete_events<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64> {
        SqlBackend::complete_events(self, owner, positions, deliveries, now)
    }

    fn extend_event_leases<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<i64>> {
        SqlBackend::extend_event_leases(self, owner, positions, until)
    }

    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>> {
        SqlBackend::claim_deliveries(self, lane, claim)
    }

    fn extend_delivery_leases<'a>(&'a self, owner: &'a str, until: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            outbox::extend_delivery_leases::<S::Dialect>(&mut connection, owner, until).await
        })
    }

    fn finish_deliveries<'a>(
        &'a self,
        owner: &'a str,
        outcomes: &'a [DeliveryOutcome],
        now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut tx = self.bookkeeping().begin_with(S::BEGIN).await?;
            outbox::finish_deliveries::<S::Dialect>(&mut tx, owner, outcomes, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut tx = self.bookkeeping().begin_with(S::BEGIN).await?;
            let released = outbox::release::<S::Dialect>(&mut tx, owner).await?;
            tx.commit().await?;
            Ok(released)
        })
    }

    fn load_stream<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        after_sequence: i64,
    ) -> Fut<'a, Vec<StreamEvent>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::load_stream::<S::Dialect>(
                &mut connection,
                aggregate_type,
                aggregate_id,
                after_sequence,
            )
            .await
        })
    }

    fn load_snapshot<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
    ) -> Fut<'a, Option<(i64, String)>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::load_snapshot::<S::Dialect>(&mut connection, aggregate_type, aggregate_id).await
        })
    }

    fn save_snapshot<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        sequence: i64,
        state: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(outbox::save_snapshot::<S::Dialect>(
            tx,
            aggregate_type,
            aggregate_id,
            sequence,
            state,
            now,
        ))
    }

    fn load_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Checkpoint> {
        Box::pin(async move {
            outbox::ensure_checkpoint::<S::Dialect>(tx, projection, now).await?;
            S::lock_checkpoint(tx, projection).await
        })
    }

    fn save_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        checkpoint: Checkpoint,
        now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(outbox::save_checkpoint::<S::Dialect>(
            tx, projection, checkpoint, now,
        ))
    }

    fn read_committed<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>> {
        S::read_committed(tx, after, limit)
    }

    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag> {
        SqlBackend::projection_lag(self, projection)
    }

    fn dead_letters<'a>(&'a self, which: &'a Redrive, limit: u32) -> Fut<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::dead_letters::<S::Dialect>(&mut connection, which, limit).await
        })
    }

    fn redrive<'a>(&'a self, which: &'a Redrive, now: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::redrive::<S::Dialect>(&mut connection, which, now).await
        })
    }

    fn prune(&self, processed_before: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::prune::<S::Dialect>(&mut connection, processed_before).await
        })
    }

    fn stats(&self) -> Fut<'_, OutboxStats> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            outbox::stats::<S::Dialect>(&mut connection).await
        })
    }

    fn lane_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<LaneStats>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::lane_stats::<S::Dialect>(&mut connection, now).await
        })
    }

    fn projection_checkpoints(&self) -> Fut<'_, Vec<(String, i64, DateTime<Utc>)>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::projection_checkpoints::<S::Dialect>(&mut connection).await
        })
    }

    fn list_events<'a>(&'a self, filter: &'a EventFilter) -> Fut<'a, Vec<EventSummary>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::list_events::<S::Dialect>(&mut connection, filter).await
        })
    }

    fn get_event(&self, id: Uuid) -> Fut<'_, Option<EventDetail>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::get_event::<S::Dialect>(&mut connection, id).await
        })
    }

    fn list_committed<'a>(
        &'a self,
        after: Checkpoint,
        filter: &'a EventFilter,
    ) -> Fut<'a, Vec<(Checkpoint, EventSummary)>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::list_committed::<S::Dialect>(&mut connection, S::COMMITTED_AFTER, after, filter)
                .await
        })
    }

    fn committed_head(&self) -> Fut<'_, Checkpoint> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::committed_head::<S::Dialect>(&mut connection, S::COMMITTED_HEAD).await
        })
    }

    fn listen(&self, wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>> {
        SqlBackend::listen(self, wakes)
    }
}

impl<S: SqlJobStore> JobStore for S {
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Uuid>> {
        Box::pin(async move {
            let mut tx = self.pool().begin_with(S::BEGIN).await?;
            if let (Some(parent), Some(attempt)) = (run.parent_id, parent_attempt)
                && !S::parent_holds(&mut tx, parent, attempt).await?
            {
                return Ok(None);
            }
            let id = jobs::insert_run::<S::Dialect>(&mut tx, run, now).await?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    fn claim_runs<'a>(
        &'a self,
        pool: &'a str,
        jobs: &'a [&'static str],
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>> {
        SqlJobStore::claim_runs(self, pool, jobs, claim)
    }

    fn claim_capped<'a>(
        &'a self,
        pool: &'a str,
        job: &'static str,
        cap: u32,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>> {
        SqlJobStore::claim_capped(self, pool, job, cap, claim)
    }

    fn heartbeat<'a>(
        &'a self,
        runs: &'a [(Uuid, u32)],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        SqlJobStore::heartbeat(self, runs, until)
    }

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64> {
        SqlJobStore::finish_runs(self, results, now)
    }

    fn expired_runs(&self, now: DateTime<Utc>, limit: u32) -> Fut<'_, Vec<ExpiredRun>> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            jobs::expired_runs::<S::Dialect>(&mut connection, now, limit).await
        })
    }

    fn write_rescues<'a>(
        &'a self,
        rescues: &'a [Rescue],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let mut tx = self.bookkeeping().begin_with(S::BEGIN).await?;
            let written = jobs::write_rescues::<S::Dialect>(&mut tx, rescues, now).await?;
            tx.commit().await?;
            Ok(written)
        })
    }

    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            jobs::release_runs::<S::Dialect>(&mut connection, owner).await
        })
    }

    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::step_output::<S::Dialect>(&mut connection, run, step).await
        })
    }

    fn save_step<'a>(
        &'a self,
        run: Uuid,
        attempt: u32,
        step: &'a str,
        output: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::save_step::<S::Dialect>(&mut connection, run, attempt, step, output, now).await
        })
    }

    fn cancel_tree(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::cancel_tree::<S::Dialect>(&mut connection, run, now).await
        })
    }

    fn retry_run(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::retry_run::<S::Dialect>(&mut connection, run, now).await
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::list_runs::<S::Dialect>(&mut connection, filter).await
        })
    }

    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::get_run::<S::Dialect>(&mut connection, run).await
        })
    }

    fn job_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<JobStats>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            ops::job_stats::<S::Dialect>(&mut connection, now).await
        })
    }

    fn prune_runs(&self, status: RunStatus, finished_before: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::prune_runs::<S::Dialect>(&mut connection, status, finished_before).await
        })
    }

    fn due_runs(&self, due_before: DateTime<Utc>) -> Fut<'_, Vec<DueRuns>> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            jobs::due_runs::<S::Dialect>(&mut connection, due_before).await
        })
    }
}

//! The outbox on SQLite. Claims are single `UPDATE … RETURNING` statements, which SQLite runs
//! under its one write lock, so several lanes (tasks) of one process never claim the same row;
//! leases make a crashed process's claims reclaimable. Timestamps are Unix microseconds.

mod dialect;
mod jobs;

use crate::ops::ProjectionLag;
use crate::store::sql::backend::{SqlBackend, Tx};
use crate::store::sql::migrate::{Migration, embedded_migrations};
use crate::store::sql::outbox::{self, EVENT_COLUMNS};
use crate::trace::TraceContext;
use dialect::SqliteDialect;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteOperation, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use crate::store::{
    Checkpoint, Claim, ClaimedDelivery, Fut, KnownType, Lane, NewDelivery, NewEvent,
    ProjectedEvent, StoreError, StoredEvent, Wakes, conflict_or,
};

const MIGRATIONS: &[Migration] = embedded_migrations!("sqlite");

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS herald_migrations (\
     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)";

/// Rows per multi-row INSERT: 13 bound values each stays far below SQLite's variable limit.
const INSERT_CHUNK: usize = 500;

/// The outbox on SQLite, behind a [`crate::SqliteStore`] from [`crate::sqlite`]: the embedded
/// default, one database file and nothing to install.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    /// The application's pool: publishes, enqueues and job completions commit with
    /// `synchronous = FULL`.
    pool: SqlitePool,
    /// The drain's and worker's own bookkeeping (claims, acknowledgements, retries) commits
    /// with `synchronous = NORMAL`: WAL still keeps it atomic and safe from corruption, and
    /// what a power cut can lose of it is only a claim or an acknowledgement, which means a
    /// redelivery — what at-least-once allows — while saving an fsync per batch.
    bookkeeping: SqlitePool,
}

impl SqliteBackend {
    pub(super) async fn connect(url: &str, wakes: Wakes) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // Every connection of `sqlite::memory:` is a database of its own: keep to one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let hook_wakes = wakes.clone();
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .after_connect(move |connection, _| {
                let wakes = hook_wakes.clone();
                Box::pin(async move { install_commit_wake(connection, wakes).await })
            })
            .connect_with(options.clone())
            .await?;
        let bookkeeping = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .after_connect(move |connection, _| {
                    let wakes = wakes.clone();
                    Box::pin(async move { install_commit_wake(connection, wakes).await })
                })
                .connect_with(options.synchronous(SqliteSynchronous::Normal))
                .await?
        };
        Ok(Self { pool, bookkeeping })
    }

    /// The connection pool, for the application's own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Wakes the in-process drain (or job worker) when a transaction that inserted outbox rows (or
/// runs) commits. SQLite calls the commit hook while it still holds the write lock, and claims
/// take that lock, so the woken lane cannot claim before the commit is visible.
async fn install_commit_wake(
    connection: &mut SqliteConnection,
    wakes: Wakes,
) -> Result<(), sqlx::Error> {
    let events = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicBool::new(false));
    let mut handle = connection.lock_handle().await?;
    let (on_event, on_run) = (events.clone(), runs.clone());
    handle.set_update_hook(move |change| {
        if matches!(change.operation, SqliteOperation::Insert) {
            match change.table {
                "herald_events" => on_event.store(true, Ordering::Relaxed),
                "herald_jobs" => on_run.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
    });
    let (on_event, on_run) = (events.clone(), runs.clone());
    handle.set_commit_hook(move || {
        if on_event.swap(false, Ordering::Relaxed) {
            wakes.all_events();
        }
        if on_run.swap(false, Ordering::Relaxed) {
            wakes.jobs.notify();
        }
        true
    });
    handle.set_rollback_hook(move || {
        events.store(false, Ordering::Relaxed);
        runs.store(false, Ordering::Relaxed);
    });
    Ok(())
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A claimed event row, with the subscribers it must queue behind (a JSON array).
fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let mut event = outbox::stored_event(row)?;
    // Only the claim reads the list; other reads of events leave it empty.
    let blocked = match row.try_get::<Option<String>, _>("blocked_subscribers") {
        Err(sqlx::Error::ColumnNotFound(_)) => None,
        other => other?,
    };
    if let Some(json) = blocked {
        event.blocked_subscribers = serde_json::from_str(&json).map_err(|error| {
            crate::store::corrupt(event.id, format!("blocked subscribers: {error}"))
        })?;
    }
    Ok(event)
}

/// The known types as a JSON object of type → newest readable version, for `json_each`.
fn known_types_json(types: &[KnownType]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = types
        .iter()
        .map(|known| (known.event_type.to_owned(), known.version.into()))
        .collect();
    serde_json::Value::Object(object).to_string()
}

fn positions_json(positions: &[i64]) -> String {
    serde_json::to_string(positions).unwrap_or_else(|_| "[]".to_owned())
}

async fn insert_chunk(
    connection: &mut SqliteConnection,
    chunk: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let now = micros(now);
    let mut builder = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO herald_events (id, event_type, version, tier, direction, pool, \
         aggregate_type, aggregate_id, tenant_id, correlation_id, causation_id, payload, \
         occurred_at, recorded_at, next_attempt_at, aggregate_sequence, traceparent, tracestate) ",
    );
    builder.push_values(chunk, |mut row, event| {
        row.push_bind(event.id)
            .push_bind(event.event_type)
            .push_bind(i64::from(event.version))
            .push_bind(event.tier)
            .push_bind(event.direction)
            .push_bind(event.pool)
            .push_bind(event.aggregate_type)
            .push_bind(event.aggregate_id.as_deref())
            .push_bind(event.tenant_id.as_deref())
            .push_bind(event.correlation_id)
            .push_bind(event.causation_id)
            .push_bind(event.payload.as_str())
            .push_bind(micros(event.occurred_at))
            .push_bind(now)
            .push_bind(now)
            .push_bind(event.aggregate_sequence)
            .push_bind(event.trace.as_ref().map(TraceContext::traceparent))
            .push_bind(event.trace.as_ref().and_then(TraceContext::tracestate));
    });
    builder.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
    builder
        .build_query_scalar()
        .persistent(chunk.len() == 1)
        .fetch_all(&mut *connection)
        .await
}

impl SqlBackend for SqliteBackend {
    type Db = Sqlite;
    type Dialect = SqliteDialect;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;
    const MIGRATIONS_TABLE: &'static str = MIGRATIONS_TABLE;
    const COMMITTED_AFTER: &'static str = crate::store::sql::ops::COMMITTED_AFTER_BY_POSITION;
    const COMMITTED_HEAD: &'static str = crate::store::sql::ops::COMMITTED_HEAD_BY_POSITION;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn bookkeeping(&self) -> &SqlitePool {
        &self.bookkeeping
    }

    fn lock_migrations<'a>(_tx: &'a mut Tx<'_, Sqlite>) -> Fut<'a, ()> {
        // `BEGIN IMMEDIATE` holds the write lock already: one migrator at a time.
        Box::pin(async { Ok(()) })
    }

    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Tx<'_, Sqlite>,
        events: &'a [NewEvent],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let mut inserted = Vec::with_capacity(events.len());
            for chunk in events.chunks(INSERT_CHUNK) {
                inserted.extend(insert_chunk(tx, chunk, now).await.map_err(conflict_or)?);
            }
            Ok(inserted)
        })
    }

    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>> {
        Box::pin(async move {
            let Claim { owner, limit, .. } = claim;
            // Only the oldest open event of each aggregate in this pool is claimable: a later
            // one waits until its predecessor is processed, whichever worker holds it.
            let sql = format!(
                "UPDATE herald_events SET status = 'processing', attempts = attempts + 1, \
                   lease_owner = ?1, lease_expires_at = ?2 \
                 WHERE position IN ( \
                   SELECT e.position FROM herald_events e \
                   WHERE e.pool IS ?3 AND e.status <> 'processed' \
                     AND ((e.status = 'pending' AND e.next_attempt_at <= ?4) \
                       OR (e.status = 'processing' AND e.lease_expires_at < ?4)) \
                     AND (?6 IS NULL OR EXISTS (SELECT 1 FROM json_each(?6) k \
                       WHERE k.key = e.event_type AND e.version <= k.value)) \
                     AND NOT EXISTS (SELECT 1 FROM herald_events p \
                       WHERE p.pool IS e.pool AND p.aggregate_type = e.aggregate_type \
                         AND p.aggregate_id = e.aggregate_id AND p.position < e.position \
                         AND p.status <> 'processed') \
                   ORDER BY e.position LIMIT ?5) \
                 RETURNING {EVENT_COLUMNS}, \
                   (SELECT json_group_array(d.subscriber) FROM herald_deliveries d \
                    WHERE d.pool IS herald_events.pool \
                      AND d.aggregate_type = herald_events.aggregate_type \
                      AND d.aggregate_id = herald_events.aggregate_id \
                      AND d.status <> 'failed') AS blocked_subscribers"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(micros(claim.until()))
                .bind(lane.pool())
                .bind(micros(claim.now))
                .bind(i64::from(limit))
                .bind(types.map(known_types_json))
                .fetch_all(&self.bookkeeping)
                .await?;
            let mut events = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            events.sort_unstable_by_key(|event| event.position);
            Ok(events)
        })
    }

    fn complete_events<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut tx = self.bookkeeping.begin_with("BEGIN IMMEDIATE").await?;
            // Fenced by the lease owner: rows reclaimed by another worker after our lease
            // expired stay theirs.
            let owned: Vec<i64> = sqlx::query_scalar(
                "UPDATE herald_events SET status = 'processed', processed_at = ?1, \
                   lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = ?2 AND status = 'processing' \
                   AND position IN (SELECT value FROM json_each(?3)) \
                 RETURNING position",
            )
            .bind(micros(now))
            .bind(owner)
            .bind(positions_json(positions))
            .fetch_all(&mut *tx)
            .await?;
            for delivery in deliveries
                .iter()
                .filter(|d| owned.contains(&d.event_position))
            {
                let (status, attempts, next_attempt_at, last_error) =
                    outbox::delivery_columns(&delivery.state, now);
                sqlx::query(
                    "INSERT INTO herald_deliveries (event_id, subscriber, event_position, pool, \
                       aggregate_type, aggregate_id, status, attempts, next_attempt_at, \
                       last_error, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (event_id, subscriber) DO NOTHING",
                )
                .bind(delivery.event_id)
                .bind(&delivery.subscriber)
                .bind(delivery.event_position)
                .bind(delivery.pool.as_deref())
                .bind(delivery.aggregate_type.as_deref())
                .bind(delivery.aggregate_id.as_deref())
                .bind(status)
                .bind(attempts)
                .bind(micros(next_attempt_at))
                .bind(last_error)
                .bind(micros(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(owned.len() as u64)
        })
    }

    fn extend_event_leases<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<i64>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "UPDATE herald_events SET lease_expires_at = ?1 \
                 WHERE lease_owner = ?2 AND status = 'processing' \
                   AND position IN (SELECT value FROM json_each(?3)) \
                 RETURNING position",
            )
            .bind(micros(until))
            .bind(owner)
            .bind(positions_json(positions))
            .fetch_all(&self.bookkeeping)
            .await?)
        })
    }

    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>> {
        Box::pin(async move {
            let Claim { owner, limit, .. } = claim;
            let now = micros(claim.now);
            let claimed = sqlx::query(
                "UPDATE herald_deliveries SET status = 'processing', lease_owner = ?1, \
                   lease_expires_at = ?2, updated_at = ?4, claims = claims + 1 \
                 WHERE (event_id, subscriber) IN ( \
                   SELECT d.event_id, d.subscriber FROM herald_deliveries d \
                   WHERE d.pool IS ?3 AND d.status <> 'failed' \
                     AND ((d.status = 'pending' AND d.next_attempt_at <= ?4) \
                       OR (d.status = 'processing' AND d.lease_expires_at < ?4)) \
                     AND NOT EXISTS (SELECT 1 FROM herald_deliveries q \
                       WHERE q.pool IS d.pool AND q.subscriber = d.subscriber \
                         AND q.aggregate_type = d.aggregate_type \
                         AND q.aggregate_id = d.aggregate_id \
                         AND q.event_position < d.event_position AND q.status <> 'failed') \
                   ORDER BY d.event_position LIMIT ?5) \
                 RETURNING event_id",
            )
            .bind(owner)
            .bind(micros(claim.until()))
            .bind(lane.pool())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.bookkeeping)
            .await?;
            if claimed.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT d.subscriber, d.attempts AS delivery_attempts, \
                   d.claims AS delivery_claims, {} \
                 FROM herald_deliveries d JOIN herald_events e ON e.id = d.event_id \
                 WHERE d.lease_owner = ? AND d.status = 'processing' ORDER BY e.position",
                EVENT_COLUMNS
                    .split(", ")
                    .map(|column| format!("e.{column}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .fetch_all(&self.bookkeeping)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(ClaimedDelivery {
                        subscriber: row.try_get("subscriber")?,
                        attempts: row.try_get::<i64, _>("delivery_attempts")? as u32,
                        claims: row.try_get::<i64, _>("delivery_claims")? as u32,
                        event: event_from_row(row)?,
                    })
                })
                .collect()
        })
    }

    fn lock_checkpoint<'a>(tx: &'a mut Tx<'_, Sqlite>, projection: &'a str) -> Fut<'a, Checkpoint> {
        Box::pin(async move {
            // The transaction holds SQLite's write lock: two runners of one projection take
            // turns without a row lock.
            let position: i64 =
                sqlx::query_scalar("SELECT position FROM herald_projections WHERE name = ?")
                    .bind(projection)
                    .fetch_one(&mut **tx)
                    .await?;
            Ok(Checkpoint { tx_id: 0, position })
        })
    }

    fn read_committed<'a>(
        tx: &'a mut Tx<'_, Sqlite>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>> {
        Box::pin(async move {
            // One writer at a time, positions assigned under the write lock: a visible
            // position is never followed by a smaller one committing later.
            let rows = sqlx::query(
                "SELECT position, id, event_type, version, aggregate_type, aggregate_id, \
                   tenant_id, payload, occurred_at FROM herald_events \
                 WHERE position > ? ORDER BY position LIMIT ?",
            )
            .bind(after.position)
            .bind(i64::from(limit))
            .fetch_all(&mut **tx)
            .await?;
            rows.iter()
                .map(|row| outbox::projected_event(row, 0))
                .collect()
        })
    }

    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag> {
        Box::pin(async move {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM herald_events WHERE position > \
                   COALESCE((SELECT position FROM herald_projections WHERE name = ?), 0)",
            )
            .bind(projection)
            .fetch_one(&self.pool)
            .await?;
            Ok(ProjectionLag {
                behind: behind.max(0) as u64,
                held_back: 0,
            })
        })
    }

    fn listen(&self, _wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>> {
        // Commits in this process wake the drain through the commit hook; commits of other
        // processes are found by the polling backstop.
        Box::pin(async { Ok(None) })
    }
}

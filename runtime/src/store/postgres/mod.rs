//! The outbox on PostgreSQL. Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so any
//! number of workers on any number of machines share a pool's backlog; leases (in the
//! database's clock) make a crashed worker's claims reclaimable; a statement-level trigger
//! `NOTIFY`s listening drains when events commit.

mod dialect;
mod jobs;
#[cfg(test)]
mod plans;

use crate::ops::ProjectionLag;
use crate::store::seam::AUDIT_LANE;
use crate::store::sql::backend::{SqlBackend, Tx};
use crate::store::sql::migrate::{Migration, embedded_migrations};
use crate::store::sql::outbox::{self, EVENT_COLUMNS};
use crate::trace::TraceContext;
use dialect::PostgresDialect;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::store::{
    Checkpoint, Claim, ClaimedDelivery, Fut, KnownType, Lane, NewDelivery, NewEvent,
    ProjectedEvent, StoreError, StoredEvent, Wakes, conflict_or,
};

const MIGRATIONS: &[Migration] = embedded_migrations!("postgres");

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS herald_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";

/// The `NOTIFY` channels of the outbox and job triggers.
const EVENTS_CHANNEL: &str = "herald_events";
const JOBS_CHANNEL: &str = "herald_jobs";

/// The outbox on PostgreSQL, behind a [`crate::PostgresStore`] from [`crate::postgres`]: for
/// many workers on many machines sharing one database.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    /// The drain's and worker's own bookkeeping (claims, completions, lease renewals,
    /// releases, rescues): connections whose commits do not wait for the WAL flush, so that
    /// they never queue behind the application's commits. Such a write lost in a crash of the
    /// server is redone — a claim expires unclaimed, a completion means a redelivery, which at
    /// least once allows — whereas the application's writes and job results stay durable
    /// before they are reported.
    bookkeeping: PgPool,
}

impl PostgresBackend {
    pub(super) async fn connect(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let bookkeeping = PgPoolOptions::new()
            .max_connections(max_connections)
            // No ping before each statement: the loops that use this pool retry a statement
            // that fails on a dead connection (which sqlx then closes), so the ping's round
            // trip would only delay every claim and completion.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone().options([
                ("synchronous_commit", "off"),
                // The claims read a backlog in index order and stop at their batch; without
                // statistics PostgreSQL's custom plans would rather sort the whole backlog
                // (`plans::tests`). Sorting stays possible where nothing else can answer: this
                // only takes it off the table where an index gives the order.
                ("enable_sort", "off"),
            ]));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        Ok(Self { pool, bookkeeping })
    }

    /// The connection pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// How long an event of a type this process does not know waits before a lane looks at it
/// again (see `claim_events`).
const UNKNOWN_TYPE_PAUSE: Duration = Duration::from_secs(1);

/// `alias.pool = $n` or `alias.pool IS NULL`: spelled out, because `IS NOT DISTINCT FROM`
/// cannot use the claim index.
fn lane_filter(lane: &Lane, alias: &str, param: usize) -> String {
    match lane {
        Lane::Pool(_) => format!("{alias}.pool = ${param}"),
        Lane::Audit => format!("{alias}.pool IS NULL AND ${param}::text IS NULL"),
    }
}

/// The statement that claims a lane's next events.
///
/// The lease is committed with the claim (like SQLite's), not held as the row locks of an open
/// transaction: a slow batch can extend it and complete the events that are done while the
/// others still run, and a claim lost to a crash is counted in `attempts`, so that a poison
/// event is dead-lettered instead of claimed for ever. A claimed event's `next_attempt_at` is
/// its lease's end, so that one predicate says "pending and due, or claimed and expired" (an
/// `OR` of the two cases made the planner sort the backlog). Only the oldest open event of
/// each aggregate in this pool is claimable. A predecessor another worker holds is still open
/// in every snapshot this statement can see, so its successors stay put.
///
/// The plan must not depend on the table's statistics, which are missing or stale much of the
/// time (taken while a backlog was pending, say): the order is written `(pool, position)` with
/// the pool as a one-element array, an order only the claim index provides — by position
/// alone, stale statistics pick the primary key and walk every processed row — and the claimed
/// rows are updated through an array of their positions, which no estimate turns into a hash
/// join over the whole table. `plans::tests` pins the plan with and without statistics.
pub(super) fn claim_events_sql(lane: &Lane) -> String {
    format!(
        "UPDATE herald_events e SET status = 'processing', attempts = e.attempts + 1, \
           lease_owner = $4, lease_expires_at = $5, next_attempt_at = $5 \
         WHERE e.position = ANY(ARRAY( \
           SELECT c.position FROM herald_events c \
           WHERE {lane} AND c.status <> 'processed' AND c.next_attempt_at <= $3 \
             AND NOT EXISTS (SELECT 1 FROM herald_events p \
               WHERE {same_pool} AND p.aggregate_type = c.aggregate_type \
                 AND p.aggregate_id = c.aggregate_id AND p.position < c.position \
                 AND p.status <> 'processed') \
           ORDER BY c.pool, c.position LIMIT $2 FOR UPDATE OF c SKIP LOCKED)) \
         RETURNING {EVENT_COLUMNS}, \
           ARRAY(SELECT d.subscriber FROM herald_deliveries d \
                 WHERE {same_pool_d} AND d.aggregate_type = e.aggregate_type \
                   AND d.aggregate_id = e.aggregate_id AND d.status <> 'failed') \
             AS blocked_subscribers",
        lane = match lane {
            Lane::Pool(_) => "c.pool = ANY(ARRAY[$1::text])",
            Lane::Audit => "c.pool IS NULL AND $1::text IS NULL",
        },
        same_pool = match lane {
            Lane::Pool(_) => "p.pool = c.pool",
            Lane::Audit => "p.pool IS NULL",
        },
        same_pool_d = match lane {
            Lane::Pool(_) => "d.pool = e.pool",
            Lane::Audit => "d.pool IS NULL",
        },
    )
}

/// A claimed event row, with the subscribers it must queue behind (only the claim reads
/// them; other reads of events leave the list empty).
fn event_from_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let mut event = outbox::stored_event(row)?;
    if let Ok(Some(blocked)) = row.try_get::<Option<Vec<String>>, _>("blocked_subscribers") {
        event.blocked_subscribers = blocked;
    }
    Ok(event)
}

/// Column arrays for `UNNEST`, one insert statement whatever the batch size.
#[derive(Default)]
struct EventColumns<'a> {
    id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    version: Vec<i32>,
    tier: Vec<&'a str>,
    direction: Vec<Option<&'a str>>,
    pool: Vec<Option<&'a str>>,
    aggregate_type: Vec<Option<&'a str>>,
    aggregate_id: Vec<Option<&'a str>>,
    tenant_id: Vec<Option<&'a str>>,
    correlation_id: Vec<Option<Uuid>>,
    causation_id: Vec<Option<Uuid>>,
    payload: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    aggregate_sequence: Vec<Option<i64>>,
    traceparent: Vec<Option<&'a str>>,
    tracestate: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    fn push(&mut self, event: &'a NewEvent) {
        self.id.push(event.id);
        self.event_type.push(event.event_type);
        self.version
            .push(i32::try_from(event.version).unwrap_or(i32::MAX));
        self.tier.push(event.tier);
        self.direction.push(event.direction);
        self.pool.push(event.pool);
        self.aggregate_type.push(event.aggregate_type);
        self.aggregate_id.push(event.aggregate_id.as_deref());
        self.tenant_id.push(event.tenant_id.as_deref());
        self.correlation_id.push(event.correlation_id);
        self.causation_id.push(event.causation_id);
        self.payload.push(&event.payload);
        self.occurred_at.push(event.occurred_at);
        self.aggregate_sequence.push(event.aggregate_sequence);
        let trace = event.trace.as_ref();
        self.traceparent.push(trace.map(TraceContext::traceparent));
        self.tracestate
            .push(trace.and_then(TraceContext::tracestate));
    }
}

/// Column arrays of new deliveries, for one `UNNEST` insert.
#[derive(Default)]
struct DeliveryColumns<'a> {
    event_id: Vec<Uuid>,
    subscriber: Vec<&'a str>,
    event_position: Vec<i64>,
    pool: Vec<Option<&'a str>>,
    aggregate_type: Vec<Option<&'a str>>,
    aggregate_id: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    next_attempt_at: Vec<DateTime<Utc>>,
    last_error: Vec<Option<&'a str>>,
}

impl<'a> DeliveryColumns<'a> {
    fn push(&mut self, delivery: &'a NewDelivery, now: DateTime<Utc>) {
        let (status, attempts, next_attempt_at, last_error) =
            outbox::delivery_columns(&delivery.state, now);
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        self.event_id.push(delivery.event_id);
        self.subscriber.push(&delivery.subscriber);
        self.event_position.push(delivery.event_position);
        self.pool.push(delivery.pool.as_deref());
        self.aggregate_type.push(delivery.aggregate_type.as_deref());
        self.aggregate_id.push(delivery.aggregate_id.as_deref());
        self.status.push(status);
        self.attempts.push(attempts);
        self.next_attempt_at.push(next_attempt_at);
        self.last_error.push(last_error);
    }
}

/// The advisory lock of an event's aggregate, if it has one (`hashtextextended(key, 0)`).
fn aggregate_lock_key(event: &NewEvent) -> Option<String> {
    let aggregate_type = event.aggregate_type?;
    let aggregate_id = event.aggregate_id.as_deref()?;
    Some(format!("herald:{aggregate_type}:{aggregate_id}"))
}

/// Serializes the transactions that publish to the same aggregate, until each commits: a
/// position is taken from a sequence at insert, so without this, two transactions publishing to
/// one aggregate could commit in the opposite order of their positions, and a drain between the
/// two commits would deliver the later event first. Locks are taken in key order, so that two
/// transactions publishing to the same aggregates in one call never deadlock.
async fn lock_aggregates(tx: &mut Tx<'_, Postgres>, events: &[NewEvent]) -> Result<(), StoreError> {
    let mut keys: Vec<String> = events.iter().filter_map(aggregate_lock_key).collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) \
         FROM (SELECT key FROM UNNEST($1::text[]) AS key ORDER BY key) AS ordered",
    )
    .bind(&keys)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The lanes an events notification names: its payload lists the lanes the committed
/// statement wrote to, comma-separated — event pools, all named `events_*`, and `audit` (see
/// `herald_notify_events`, migration 0011). `None` when it names none (a notification of an
/// older schema), so that every lane looks.
fn lanes_of(payload: &str) -> Option<Vec<Lane>> {
    if payload.is_empty() {
        return None;
    }
    Some(
        payload
            .split(',')
            .map(|lane| match lane {
                AUDIT_LANE => Lane::Audit,
                pool => Lane::Pool(pool.to_owned()),
            })
            .collect(),
    )
}

async fn listen_on(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([EVENTS_CHANNEL, JOBS_CHANNEL]).await?;
    Ok(listener)
}

/// Wakes the lanes of this process when events or runs commit anywhere, for as long as the
/// store's pool is open. A lost `LISTEN` connection (a server restart, a terminated backend) is
/// re-established here, with a growing pause between tries, rather than by `recv`'s silent
/// reconnect: notifications sent while it was down are lost, so every lane is woken to look at
/// once when it is back, and the outage is logged once, not once per try.
async fn turn_notifications_into_wakes(
    pool: PgPool,
    mut listener: Option<PgListener>,
    wakes: Wakes,
) {
    let wake_all = || {
        wakes.all_events();
        wakes.jobs.notify();
    };
    loop {
        let Some(connected) = listener.as_mut() else {
            let mut pause = Duration::from_millis(50);
            loop {
                if pool.is_closed() {
                    return;
                }
                match listen_on(&pool).await {
                    Ok(connected) => {
                        listener = Some(connected);
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "LISTEN connection not back yet");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::info!("LISTEN connection re-established");
            wake_all();
            continue;
        };
        match connected.try_recv().await {
            Ok(Some(notification)) if notification.channel() == JOBS_CHANNEL => {
                wakes.jobs.notify();
            }
            Ok(Some(notification)) => match lanes_of(notification.payload()) {
                Some(lanes) => wakes.events_in(lanes),
                None => wakes.all_events(),
            },
            Ok(None) => {
                tracing::warn!("LISTEN connection lost; listening again");
                listener = None;
                wake_all();
            }
            Err(error) => {
                tracing::warn!(%error, "LISTEN connection lost; listening again");
                listener = None;
                wake_all();
            }
        }
    }
}

impl SqlBackend for PostgresBackend {
    type Db = Postgres;
    type Dialect = PostgresDialect;

    const BEGIN: &'static str = "BEGIN";
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;
    const MIGRATIONS_TABLE: &'static str = MIGRATIONS_TABLE;
    const COMMITTED_AFTER: &'static str = crate::store::sql::ops::COMMITTED_AFTER_BY_TRANSACTION;
    const COMMITTED_HEAD: &'static str = crate::store::sql::ops::COMMITTED_HEAD_BY_TRANSACTION;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn bookkeeping(&self) -> &PgPool {
        &self.bookkeeping
    }

    fn lock_migrations<'a>(tx: &'a mut Tx<'_, Postgres>) -> Fut<'a, ()> {
        Box::pin(async move {
            // Several workers may start at once: one migrates, the others wait and find it done.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('herald_migrations'))")
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }

    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Tx<'_, Postgres>,
        events: &'a [NewEvent],
        // Stamped by the database (`recorded_at`), which orders commits here.
        _now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            if let [event] = events {
                // The common case, one event: one statement, plain binds, no arrays to build.
                // The aggregate's lock (when it has one) is taken by the statement itself,
                // before the row is formed and given its position: one round trip, not two.
                return sqlx::query_scalar(
                    "WITH aggregate_lock AS ( \
                       SELECT pg_advisory_xact_lock(hashtextextended($17, 0)) \
                       WHERE $17::text IS NOT NULL) \
                     INSERT INTO herald_events (id, event_type, version, tier, direction, pool, \
                       aggregate_type, aggregate_id, tenant_id, correlation_id, causation_id, \
                       payload, occurred_at, aggregate_sequence, traceparent, tracestate) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, \
                       $15, $16 \
                     FROM (SELECT count(*) FROM aggregate_lock) AS locked \
                     ON CONFLICT (id) DO NOTHING RETURNING id",
                )
                .bind(event.id)
                .bind(event.event_type)
                .bind(i32::try_from(event.version).unwrap_or(i32::MAX))
                .bind(event.tier)
                .bind(event.direction)
                .bind(event.pool)
                .bind(event.aggregate_type)
                .bind(event.aggregate_id.as_deref())
                .bind(event.tenant_id.as_deref())
                .bind(event.correlation_id)
                .bind(event.causation_id)
                .bind(event.payload.as_str())
                .bind(event.occurred_at)
                .bind(event.aggregate_sequence)
                .bind(event.trace.as_ref().map(TraceContext::traceparent))
                .bind(event.trace.as_ref().and_then(TraceContext::tracestate))
                .bind(aggregate_lock_key(event))
                .fetch_all(&mut **tx)
                .await
                .map_err(conflict_or);
            }
            lock_aggregates(tx, events).await?;
            let mut columns = EventColumns::default();
            for event in events {
                columns.push(event);
            }
            sqlx::query_scalar(
                "INSERT INTO herald_events (id, event_type, version, tier, direction, pool, \
                   aggregate_type, aggregate_id, tenant_id, correlation_id, causation_id, \
                   payload, occurred_at, aggregate_sequence, traceparent, tracestate) \
                 SELECT id, event_type, version, tier, direction, pool, aggregate_type, \
                   aggregate_id, tenant_id, correlation_id, causation_id, payload::jsonb, \
                   occurred_at, aggregate_sequence, traceparent, tracestate \
                 FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::text[], \
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::uuid[], $11::uuid[], \
                   $12::text[], $13::timestamptz[], $14::int8[], $15::text[], $16::text[]) \
                   AS t(id, event_type, version, tier, direction, pool, aggregate_type, \
                        aggregate_id, tenant_id, correlation_id, causation_id, payload, \
                        occurred_at, aggregate_sequence, traceparent, tracestate) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(&columns.id)
            .bind(&columns.event_type)
            .bind(&columns.version)
            .bind(&columns.tier)
            .bind(&columns.direction)
            .bind(&columns.pool)
            .bind(&columns.aggregate_type)
            .bind(&columns.aggregate_id)
            .bind(&columns.tenant_id)
            .bind(&columns.correlation_id)
            .bind(&columns.causation_id)
            .bind(&columns.payload)
            .bind(&columns.occurred_at)
            .bind(&columns.aggregate_sequence)
            .bind(&columns.traceparent)
            .bind(&columns.tracestate)
            .fetch_all(&mut **tx)
            .await
            .map_err(conflict_or)
        })
    }

    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>> {
        Box::pin(async move {
            let sql = claim_events_sql(lane);
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lane.pool())
                .bind(i64::from(claim.limit))
                .bind(claim.now)
                .bind(claim.owner)
                .bind(claim.until())
                .fetch_all(&self.bookkeeping)
                .await?;
            let mut events = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            events.sort_unstable_by_key(|event| event.position);
            let Some(types) = types else {
                return Ok(events);
            };
            // Types are filtered here, not in the claim: any filter on the type turns the
            // claim's plan from an ordered index scan that stops at the batch into a sort of
            // the whole backlog (2 ms against 57 ms over 10,000 events, generic plans). An
            // event this process cannot read (a type it does not know, or a version newer than
            // its code) is given back uncounted, due again a second later, for a process that
            // reads it.
            let (known, unknown): (Vec<_>, Vec<_>) = events
                .into_iter()
                .partition(|event| KnownType::covers(types, &event.event_type, event.version));
            if !unknown.is_empty() {
                let positions: Vec<i64> = unknown.iter().map(|event| event.position).collect();
                sqlx::query(
                    "UPDATE herald_events SET status = 'pending', lease_owner = NULL, \
                       lease_expires_at = NULL, attempts = attempts - 1, next_attempt_at = $3 \
                     WHERE position = ANY($1) AND lease_owner = $2 AND status = 'processing'",
                )
                .bind(&positions)
                .bind(claim.owner)
                .bind(crate::clock::later(claim.now, UNKNOWN_TYPE_PAUSE))
                .execute(&self.bookkeeping)
                .await?;
            }
            Ok(known)
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
            // One statement, so one round trip and its own transaction: the events are
            // completed and the deliveries they still owe recorded together, or neither.
            // Fenced by the lease owner: rows reclaimed by another worker after our lease
            // expired stay theirs, and only the deliveries of the events completed here are
            // recorded.
            let mut columns = DeliveryColumns::default();
            for delivery in deliveries {
                columns.push(delivery, now);
            }
            let owned: Vec<i64> = sqlx::query_scalar(
                "WITH completed AS ( \
                   UPDATE herald_events SET status = 'processed', processed_at = $2, \
                     lease_owner = NULL, lease_expires_at = NULL \
                   WHERE position = ANY($1) AND lease_owner = $3 AND status = 'processing' \
                   RETURNING position), \
                 owed AS ( \
                   INSERT INTO herald_deliveries (event_id, subscriber, event_position, pool, \
                     aggregate_type, aggregate_id, status, attempts, next_attempt_at, \
                     last_error, updated_at) \
                   SELECT o.*, $2 FROM UNNEST($4::uuid[], $5::text[], $6::int8[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::int4[], $12::timestamptz[], \
                     $13::text[]) AS o(event_id, subscriber, event_position, pool, \
                       aggregate_type, aggregate_id, status, attempts, next_attempt_at, \
                       last_error) \
                   WHERE o.event_position = ANY(ARRAY(SELECT position FROM completed)) \
                   ON CONFLICT (event_id, subscriber) DO NOTHING) \
                 SELECT position FROM completed",
            )
            .bind(positions)
            .bind(now)
            .bind(owner)
            .bind(&columns.event_id)
            .bind(&columns.subscriber)
            .bind(&columns.event_position)
            .bind(&columns.pool)
            .bind(&columns.aggregate_type)
            .bind(&columns.aggregate_id)
            .bind(&columns.status)
            .bind(&columns.attempts)
            .bind(&columns.next_attempt_at)
            .bind(&columns.last_error)
            .fetch_all(&self.bookkeeping)
            .await?;
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
                "UPDATE herald_events SET lease_expires_at = $3, next_attempt_at = $3 \
                 WHERE position = ANY($1) AND lease_owner = $2 AND status = 'processing' \
                 RETURNING position",
            )
            .bind(positions)
            .bind(owner)
            .bind(until)
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
            let sql = format!(
                "WITH claimable AS ( \
                   SELECT d.event_id, d.subscriber FROM herald_deliveries d \
                   WHERE {lane} AND d.status <> 'failed' \
                     AND ((d.status = 'pending' AND d.next_attempt_at <= $5) \
                       OR (d.status = 'processing' AND d.lease_expires_at < $5)) \
                     AND NOT EXISTS (SELECT 1 FROM herald_deliveries q \
                       WHERE {same_pool} AND q.subscriber = d.subscriber \
                         AND q.aggregate_type = d.aggregate_type \
                         AND q.aggregate_id = d.aggregate_id \
                         AND q.event_position < d.event_position AND q.status <> 'failed') \
                   ORDER BY d.event_position LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE herald_deliveries d SET status = 'processing', lease_owner = $3, \
                   lease_expires_at = $4, updated_at = $5, claims = d.claims + 1 \
                 FROM claimable c WHERE d.event_id = c.event_id AND d.subscriber = c.subscriber \
                 RETURNING d.event_id, d.subscriber, d.attempts, d.claims",
                lane = lane_filter(lane, "d", 1),
                same_pool = match lane {
                    Lane::Pool(_) => "q.pool = d.pool",
                    Lane::Audit => "q.pool IS NULL",
                },
            );
            let claimed = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lane.pool())
                .bind(i64::from(limit))
                .bind(owner)
                .bind(claim.until())
                .bind(claim.now)
                .fetch_all(&self.pool)
                .await?;
            if claimed.is_empty() {
                return Ok(Vec::new());
            }
            let mut wanted = Vec::with_capacity(claimed.len());
            for row in &claimed {
                wanted.push((
                    row.try_get::<Uuid, _>("event_id")?,
                    row.try_get::<String, _>("subscriber")?,
                    row.try_get::<i32, _>("attempts")? as u32,
                    row.try_get::<i32, _>("claims")? as u32,
                ));
            }
            let ids: Vec<Uuid> = wanted.iter().map(|(id, _, _, _)| *id).collect();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM herald_events e WHERE e.id = ANY($1)"
            )))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
            let events = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let mut deliveries = Vec::with_capacity(wanted.len());
            for (event_id, subscriber, attempts, claims) in wanted {
                let event = events
                    .iter()
                    .find(|event| event.id == event_id)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt {
                        event_id,
                        reason: "a delivery refers to an event that is gone".to_owned(),
                    })?;
                deliveries.push(ClaimedDelivery {
                    subscriber,
                    attempts,
                    claims,
                    event,
                });
            }
            deliveries.sort_by_key(|delivery| delivery.event.position);
            Ok(deliveries)
        })
    }

    fn lock_checkpoint<'a>(
        tx: &'a mut Tx<'_, Postgres>,
        projection: &'a str,
    ) -> Fut<'a, Checkpoint> {
        Box::pin(async move {
            // Locked: two runners of one projection take turns instead of folding twice.
            let (tx_id, position): (i64, i64) = sqlx::query_as(
                "SELECT tx_id, position FROM herald_projections WHERE name = $1 FOR UPDATE",
            )
            .bind(projection)
            .fetch_one(&mut **tx)
            .await?;
            Ok(Checkpoint { tx_id, position })
        })
    }

    fn read_committed<'a>(
        tx: &'a mut Tx<'_, Postgres>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>> {
        Box::pin(async move {
            // Only transactions older than every one still running: none of them can still
            // add an event, so reading in (transaction, position) order never skips one.
            let rows = sqlx::query(
                "SELECT tx_id, position, id, event_type, version, aggregate_type, aggregate_id, \
                   tenant_id, payload, occurred_at FROM herald_events \
                 WHERE (tx_id, position) > ($1, $2) \
                   AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
                 ORDER BY tx_id, position LIMIT $3",
            )
            .bind(after.tx_id)
            .bind(after.position)
            .bind(i64::from(limit))
            .fetch_all(&mut **tx)
            .await?;
            rows.iter()
                .map(|row| outbox::projected_event(row, row.try_get("tx_id")?))
                .collect()
        })
    }

    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag> {
        Box::pin(async move {
            let (behind, held_back): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER ( \
                   WHERE e.tx_id >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint) \
                 FROM herald_events e \
                 WHERE (e.tx_id, e.position) > ( \
                   COALESCE((SELECT tx_id FROM herald_projections WHERE name = $1), 0), \
                   COALESCE((SELECT position FROM herald_projections WHERE name = $1), 0))",
            )
            .bind(projection)
            .fetch_one(&self.pool)
            .await?;
            Ok(ProjectionLag {
                behind: behind.max(0) as u64,
                held_back: held_back.max(0) as u64,
            })
        })
    }

    fn listen(&self, wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>> {
        Box::pin(async move {
            let pool = self.pool.clone();
            // Connected here first, so that a store whose server is down at start still
            // says so once; the task keeps trying either way.
            let listener = match listen_on(&pool).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN yet; polling until it can");
                    None
                }
            };
            Ok(Some(tokio::spawn(turn_notifications_into_wakes(
                pool, listener, wakes,
            ))))
        })
    }
}

#[cfg(test)]
mod notification_tests {
    use super::*;

    #[test]
    fn a_notification_names_the_lanes_to_wake() {
        assert_eq!(
            lanes_of("events_change,audit"),
            Some(vec![Lane::Pool("events_change".to_owned()), Lane::Audit])
        );
        assert_eq!(
            lanes_of(""),
            None,
            "an older schema's notification wakes every lane"
        );
    }
}

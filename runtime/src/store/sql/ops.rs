//! The operations queries (see [`crate::ops`]), written once for both SQL databases. Each reads
//! through an index where the drain and the workers keep one: the partial index of open events
//! for backlogs, `processed_at` for the rate, `(status, job)` for run counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Columns, Dialect, Statement, fetch_optional, jobs, to_u32};
use crate::ops::{
    DeliveryInfo, DeliveryStatus, EventDetail, EventFilter, EventStatus, EventSummary, JobStats,
    LaneStats,
};
use crate::store::{AUDIT_LANE, Checkpoint, StoreError, corrupt};

/// Per lane: the backlog and its oldest event, the last minute's rate, retries and dead letters.
pub(crate) async fn lane_stats<D: Dialect>(
    connection: &mut D::Connection,
    now: DateTime<Utc>,
) -> Result<Vec<LaneStats>, StoreError> {
    let mut lanes: BTreeMap<String, LaneStats> = BTreeMap::new();
    fn lane(lanes: &mut BTreeMap<String, LaneStats>, pool: Option<String>) -> &mut LaneStats {
        LaneStats::entry(lanes, pool.unwrap_or_else(|| AUDIT_LANE.to_owned()))
    }
    let backlog = D::fetch_all(
        connection,
        Statement::new(
            "SELECT pool, count(*) AS pending, min(recorded_at) AS oldest \
             FROM herald_events WHERE status <> 'processed' GROUP BY pool",
        ),
    )
    .await?;
    for row in &backlog {
        let stats = lane(&mut lanes, row.opt_text("pool")?);
        stats.pending = count(row.int("pending")?);
        stats.oldest_pending_at = row.opt_time("oldest")?;
    }
    let processed = D::fetch_all(
        connection,
        Statement::new(
            "SELECT pool, count(*) AS processed FROM herald_events \
             WHERE status = 'processed' AND processed_at >= $1 GROUP BY pool",
        )
        .time(now - chrono::Duration::minutes(1)),
    )
    .await?;
    for row in &processed {
        lane(&mut lanes, row.opt_text("pool")?).processed_last_minute =
            count(row.int("processed")?);
    }
    let deliveries = D::fetch_all(
        connection,
        Statement::new(
            "SELECT pool, sum(CASE WHEN status <> 'failed' THEN 1 ELSE 0 END) AS retrying, \
               sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS dead \
             FROM herald_deliveries GROUP BY pool",
        ),
    )
    .await?;
    for row in &deliveries {
        let stats = lane(&mut lanes, row.opt_text("pool")?);
        stats.retrying = count(row.int("retrying")?);
        stats.dead_letters = count(row.int("dead")?);
    }
    Ok(lanes.into_values().collect())
}

/// Per (pool, job): runs by status, the oldest due run and the earliest running lease.
pub(crate) async fn job_stats<D: Dialect>(
    connection: &mut D::Connection,
    now: DateTime<Utc>,
) -> Result<Vec<JobStats>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new(
            "SELECT pool, job, \
               sum(CASE WHEN status = 'pending' AND run_at <= $1 THEN 1 ELSE 0 END) AS due, \
               sum(CASE WHEN status = 'pending' AND run_at > $1 THEN 1 ELSE 0 END) AS scheduled, \
               sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running, \
               sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed, \
               sum(CASE WHEN status IN ('failed', 'timed_out', 'canceled') THEN 1 ELSE 0 END) \
                 AS failed, \
               min(CASE WHEN status = 'pending' AND run_at <= $1 THEN run_at END) AS oldest_due, \
               min(CASE WHEN status = 'running' THEN lease_expires_at END) AS earliest_lease \
             FROM herald_jobs GROUP BY pool, job ORDER BY pool, job",
        )
        .time(now),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(JobStats {
                pool: row.text("pool")?,
                job: row.text("job")?,
                due: count(row.int("due")?),
                scheduled: count(row.int("scheduled")?),
                running: count(row.int("running")?),
                completed: count(row.int("completed")?),
                failed: count(row.int("failed")?),
                oldest_due_at: row.opt_time("oldest_due")?,
                earliest_lease_expiry: row.opt_time("earliest_lease")?,
            })
        })
        .collect()
}

/// Every projection's checkpoint, by name; the lag is read per projection by the backend.
pub(crate) async fn projection_checkpoints<D: Dialect>(
    connection: &mut D::Connection,
) -> Result<Vec<(String, i64, DateTime<Utc>)>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new("SELECT name, position, updated_at FROM herald_projections ORDER BY name"),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.text("name")?,
                row.int("position")?,
                row.time("updated_at")?,
            ))
        })
        .collect()
}

// Spelled out (not built with `format!`) so that sqlx caches their preparation. One statement
// per order: the newest first reads the primary key backwards, following reads it forwards.
const NEWEST_EVENTS: &str = "SELECT position, id, event_type, version, pool, aggregate_type, \
       aggregate_id, tenant_id, correlation_id, causation_id, status, attempts, occurred_at, \
       recorded_at, processed_at, traceparent, tracestate FROM herald_events \
     WHERE ($1 IS NULL OR event_type = $1) AND ($2 IS NULL OR aggregate_type = $2) \
       AND ($3 IS NULL OR aggregate_id = $3) AND ($4 IS NULL OR tenant_id = $4) \
       AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR recorded_at >= $6) \
       AND ($7 IS NULL OR recorded_at < $7) \
     ORDER BY position DESC LIMIT $8";

const EVENTS_AFTER: &str = "SELECT position, id, event_type, version, pool, aggregate_type, \
       aggregate_id, tenant_id, correlation_id, causation_id, status, attempts, occurred_at, \
       recorded_at, processed_at, traceparent, tracestate FROM herald_events \
     WHERE ($1 IS NULL OR event_type = $1) AND ($2 IS NULL OR aggregate_type = $2) \
       AND ($3 IS NULL OR aggregate_id = $3) AND ($4 IS NULL OR tenant_id = $4) \
       AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR recorded_at >= $6) \
       AND ($7 IS NULL OR recorded_at < $7) AND position > $9 \
     ORDER BY position LIMIT $8";

/// Events matching `filter` (its `$1`..`$7`) committed after the checkpoint (`$9`, `$10`), in
/// commit order, at most `$8`: on PostgreSQL by (transaction, position) among the transactions
/// older than every one still running, as projections read.
#[cfg(feature = "postgres")]
pub(crate) const COMMITTED_AFTER_BY_TRANSACTION: &str = "SELECT tx_id, position, id, event_type, \
       version, pool, aggregate_type, aggregate_id, tenant_id, correlation_id, causation_id, \
       status, attempts, occurred_at, recorded_at, processed_at, traceparent, tracestate \
     FROM herald_events \
     WHERE (tx_id, position) > ($9, $10) \
       AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
       AND ($1 IS NULL OR event_type = $1) AND ($2 IS NULL OR aggregate_type = $2) \
       AND ($3 IS NULL OR aggregate_id = $3) AND ($4 IS NULL OR tenant_id = $4) \
       AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR recorded_at >= $6) \
       AND ($7 IS NULL OR recorded_at < $7) \
     ORDER BY tx_id, position LIMIT $8";

/// [`COMMITTED_AFTER_BY_TRANSACTION`] where positions are commit order (one writer at a time):
/// the transaction of the checkpoint is always 0.
#[cfg(feature = "sqlite")]
pub(crate) const COMMITTED_AFTER_BY_POSITION: &str = "SELECT 0 AS tx_id, position, id, \
       event_type, version, pool, aggregate_type, aggregate_id, tenant_id, correlation_id, \
       causation_id, status, attempts, occurred_at, recorded_at, processed_at, traceparent, \
       tracestate \
     FROM herald_events \
     WHERE $9 = 0 AND position > $10 \
       AND ($1 IS NULL OR event_type = $1) AND ($2 IS NULL OR aggregate_type = $2) \
       AND ($3 IS NULL OR aggregate_id = $3) AND ($4 IS NULL OR tenant_id = $4) \
       AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR recorded_at >= $6) \
       AND ($7 IS NULL OR recorded_at < $7) \
     ORDER BY position LIMIT $8";

/// The newest checkpoint [`COMMITTED_AFTER_BY_TRANSACTION`] can read now (0, 0 when none).
#[cfg(feature = "postgres")]
pub(crate) const COMMITTED_HEAD_BY_TRANSACTION: &str = "SELECT tx_id, position FROM herald_events \
     WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
     ORDER BY tx_id DESC, position DESC LIMIT 1";

/// The newest checkpoint [`COMMITTED_AFTER_BY_POSITION`] can read.
#[cfg(feature = "sqlite")]
pub(crate) const COMMITTED_HEAD_BY_POSITION: &str =
    "SELECT 0 AS tx_id, position FROM herald_events ORDER BY position DESC LIMIT 1";

/// Events matching `filter` committed after `after`, in commit order (`sql` says how).
pub(crate) async fn list_committed<D: Dialect>(
    connection: &mut D::Connection,
    sql: &'static str,
    after: Checkpoint,
    filter: &EventFilter,
) -> Result<Vec<(Checkpoint, EventSummary)>, StoreError> {
    let statement = filtered(Statement::new(sql), filter)
        .int(after.tx_id)
        .int(after.position);
    let rows = D::fetch_all(connection, statement).await?;
    rows.iter()
        .map(|row| {
            let checkpoint = Checkpoint {
                tx_id: row.int("tx_id")?,
                position: row.int("position")?,
            };
            Ok((checkpoint, event_summary(row)?))
        })
        .collect()
}

/// The newest checkpoint `sql` reads.
pub(crate) async fn committed_head<D: Dialect>(
    connection: &mut D::Connection,
    sql: &'static str,
) -> Result<Checkpoint, StoreError> {
    let rows = D::fetch_all(connection, Statement::new(sql)).await?;
    match rows.first() {
        Some(row) => Ok(Checkpoint {
            tx_id: row.int("tx_id")?,
            position: row.int("position")?,
        }),
        None => Ok(Checkpoint::default()),
    }
}

/// Binds `filter`'s narrowing as `$1`..`$7` and its limit as `$8`.
fn filtered<'s>(statement: Statement<'s>, filter: &'s EventFilter) -> Statement<'s> {
    let (aggregate_type, aggregate_id) = match &filter.aggregate {
        Some((aggregate_type, aggregate_id)) => {
            (Some(aggregate_type.as_str()), aggregate_id.as_deref())
        }
        None => (None, None),
    };
    statement
        .text(filter.event_type.as_deref())
        .text(aggregate_type)
        .text(aggregate_id)
        .text(filter.tenant.as_deref())
        .text(filter.status.map(EventStatus::as_str))
        .time(filter.since)
        .time(filter.until)
        .int(i64::from(filter.limit))
}

/// Events matching `filter`: newest first, or oldest first after a position.
pub(crate) async fn list_events<D: Dialect>(
    connection: &mut D::Connection,
    filter: &EventFilter,
) -> Result<Vec<EventSummary>, StoreError> {
    let statement = filtered(
        Statement::new(match filter.after_position {
            Some(_) => EVENTS_AFTER,
            None => NEWEST_EVENTS,
        }),
        filter,
    );
    let statement = match filter.after_position {
        Some(position) => statement.int(position),
        None => statement,
    };
    let rows = D::fetch_all(connection, statement).await?;
    rows.iter().map(event_summary).collect()
}

const GET_EVENT: &str = "SELECT position, id, event_type, version, pool, aggregate_type, \
       aggregate_id, tenant_id, correlation_id, causation_id, status, attempts, occurred_at, \
       recorded_at, processed_at, traceparent, tracestate, payload FROM herald_events WHERE id = $1";

/// One event with its payload, the deliveries it owes and the runs it enqueued.
pub(crate) async fn get_event<D: Dialect>(
    connection: &mut D::Connection,
    id: Uuid,
) -> Result<Option<EventDetail>, StoreError> {
    let Some(row) = fetch_optional::<D>(connection, Statement::new(GET_EVENT).uuid(id)).await?
    else {
        return Ok(None);
    };
    let event = event_summary(&row)?;
    let payload = row.json("payload")?;
    let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
    let deliveries = D::fetch_all(
        connection,
        Statement::new(
            "SELECT subscriber, status, attempts, next_attempt_at, last_error \
             FROM herald_deliveries WHERE event_id = $1 ORDER BY subscriber",
        )
        .uuid(id),
    )
    .await?
    .iter()
    .map(|row| {
        let status = row.text("status")?;
        Ok(DeliveryInfo {
            subscriber: row.text("subscriber")?,
            status: match status.as_str() {
                "pending" => DeliveryStatus::Retrying,
                "processing" => DeliveryStatus::Delivering,
                "failed" => DeliveryStatus::DeadLetter,
                _ => return Err(corrupt(id, format!("unknown delivery status `{status}`"))),
            },
            attempts: to_u32(row.int("attempts")?),
            next_attempt_at: row.time("next_attempt_at")?,
            last_error: row.opt_text("last_error")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let runs = jobs::runs_of_event::<D>(connection, id).await?;
    Ok(Some(EventDetail {
        event,
        payload,
        deliveries,
        runs,
    }))
}

/// The one decoder of an event row for operators.
fn event_summary<R: Columns>(row: &R) -> Result<EventSummary, StoreError> {
    let id = row.uuid("id")?;
    let status = row.text("status")?;
    Ok(EventSummary {
        position: row.int("position")?,
        id,
        event_type: row.text("event_type")?,
        version: to_u32(row.int("version")?),
        lane: row
            .opt_text("pool")?
            .unwrap_or_else(|| AUDIT_LANE.to_owned()),
        aggregate_type: row.opt_text("aggregate_type")?,
        aggregate_id: row.opt_text("aggregate_id")?,
        tenant_id: row.opt_text("tenant_id")?,
        correlation_id: row.opt_uuid("correlation_id")?,
        causation_id: row.opt_uuid("causation_id")?,
        status: EventStatus::parse(&status)
            .ok_or_else(|| corrupt(id, format!("unknown status `{status}`")))?,
        claims: to_u32(row.int("attempts")?),
        occurred_at: row.time("occurred_at")?,
        recorded_at: row.time("recorded_at")?,
        processed_at: row.opt_time("processed_at")?,
        trace: row.trace()?,
    })
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

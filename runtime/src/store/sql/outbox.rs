//! Outbox statements both databases share: streams and snapshots of aggregates, projection
//! checkpoints, dead letters and their re-drive, pruning, totals, and the release of a
//! stopping worker's claims.

use chrono::{DateTime, Utc};

use super::{Columns, Dialect, Statement, delete_in_slices, fetch_optional, to_u32};
use crate::ops::{DeadLetter, OutboxStats, Redrive};
use crate::store::{
    AUDIT_LANE, Checkpoint, DeliveryOutcome, DeliveryState, ProjectedEvent, StoreError,
    StoredEvent, StreamEvent, corrupt,
};

/// Gives a stopping worker's claims back (events and retries it held), so that others take
/// them at once instead of after the lease.
pub(crate) async fn release<D: Dialect>(
    connection: &mut D::Connection,
    owner: &str,
) -> Result<u64, StoreError> {
    let events = D::execute(
        connection,
        Statement::new(
            // A claim given back is not a lost one: it does not count against the event.
            "UPDATE herald_events SET status = 'pending', lease_owner = NULL, \
               lease_expires_at = NULL, attempts = attempts - 1, next_attempt_at = recorded_at \
             WHERE lease_owner = $1 AND status = 'processing'",
        )
        .text(owner),
    )
    .await?;
    let deliveries = D::execute(
        connection,
        Statement::new(
            "UPDATE herald_deliveries SET status = 'pending', lease_owner = NULL, \
               lease_expires_at = NULL, claims = claims - 1 \
             WHERE lease_owner = $1 AND status = 'processing'",
        )
        .text(owner),
    )
    .await?;
    Ok(events + deliveries)
}

/// The events of one aggregate after `after_sequence`, in stream order.
pub(crate) async fn load_stream<D: Dialect>(
    connection: &mut D::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
) -> Result<Vec<StreamEvent>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new(
            "SELECT id, aggregate_sequence, event_type, version, payload FROM herald_events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND aggregate_sequence > $3 \
             ORDER BY aggregate_sequence",
        )
        .text(aggregate_type)
        .text(aggregate_id)
        .int(after_sequence),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StreamEvent {
                id: row.uuid("id")?,
                sequence: row.int("aggregate_sequence")?,
                event_type: row.text("event_type")?,
                version: to_u32(row.int("version")?),
                payload: row.json("payload")?,
            })
        })
        .collect()
}

/// The latest snapshot of an aggregate: its sequence number and state (JSON).
pub(crate) async fn load_snapshot<D: Dialect>(
    connection: &mut D::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let row = fetch_optional::<D>(
        connection,
        Statement::new(
            "SELECT sequence, state FROM herald_snapshots \
             WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .text(aggregate_type)
        .text(aggregate_id),
    )
    .await?;
    row.map(|row| Ok((row.int("sequence")?, row.json("state")?)))
        .transpose()
}

/// Stores a snapshot unless a later one is already stored.
pub(crate) async fn save_snapshot<D: Dialect>(
    connection: &mut D::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    D::execute(
        connection,
        Statement::new(
            "INSERT INTO herald_snapshots (aggregate_type, aggregate_id, sequence, state, \
               taken_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
               SET sequence = excluded.sequence, state = excluded.state, \
                   taken_at = excluded.taken_at \
               WHERE excluded.sequence > herald_snapshots.sequence",
        )
        .text(aggregate_type)
        .text(aggregate_id)
        .int(sequence)
        .json(state)
        .time(now),
    )
    .await?;
    Ok(())
}

/// Creates the projection's checkpoint at zero if it has none.
pub(crate) async fn ensure_checkpoint<D: Dialect>(
    connection: &mut D::Connection,
    projection: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    D::execute(
        connection,
        Statement::new(
            "INSERT INTO herald_projections (name, position, updated_at) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .text(projection)
        .time(now),
    )
    .await?;
    Ok(())
}

pub(crate) async fn save_checkpoint<D: Dialect>(
    connection: &mut D::Connection,
    projection: &str,
    checkpoint: Checkpoint,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    D::execute(
        connection,
        Statement::new(
            "UPDATE herald_projections SET tx_id = $1, position = $2, updated_at = $3 \
             WHERE name = $4",
        )
        .int(checkpoint.tx_id)
        .int(checkpoint.position)
        .time(now)
        .text(projection),
    )
    .await?;
    Ok(())
}

/// Deliveries that ran out of attempts, oldest first.
pub(crate) async fn dead_letters<D: Dialect>(
    connection: &mut D::Connection,
    which: &Redrive,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new(
            "SELECT d.event_id, e.event_type, d.subscriber, d.pool, d.aggregate_type, \
               d.aggregate_id, d.attempts, d.last_error, d.updated_at \
             FROM herald_deliveries d JOIN herald_events e ON e.id = d.event_id \
             WHERE d.status = 'failed' AND ($2 IS NULL OR d.event_id = $2) \
               AND ($3 IS NULL OR d.subscriber = $3) AND ($4 IS NULL OR e.event_type = $4) \
               AND ($5 IS NULL OR e.tenant_id = $5) \
             ORDER BY d.updated_at, d.event_position LIMIT $1",
        )
        .int(i64::from(limit))
        .uuid(which.event_id)
        .text(which.subscriber.as_deref())
        .text(which.event_type.as_deref())
        .text(which.tenant.as_deref()),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetter {
                event_id: row.uuid("event_id")?,
                event_type: row.text("event_type")?,
                subscriber: row.text("subscriber")?,
                aggregate_type: row.opt_text("aggregate_type")?,
                aggregate_id: row.opt_text("aggregate_id")?,
                attempts: to_u32(row.int("attempts")?),
                last_error: row.opt_text("last_error")?.unwrap_or_default(),
                lane: row
                    .opt_text("pool")?
                    .unwrap_or_else(|| AUDIT_LANE.to_owned()),
                failed_at: row.time("updated_at")?,
            })
        })
        .collect()
}

/// Puts dead letters back in line with a fresh set of attempts.
pub(crate) async fn redrive<D: Dialect>(
    connection: &mut D::Connection,
    which: &Redrive,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(D::execute(
        connection,
        Statement::new(
            "UPDATE herald_deliveries SET status = 'pending', attempts = 0, claims = 0, \
               next_attempt_at = $1, updated_at = $1 \
             WHERE status = 'failed' AND ($2 IS NULL OR event_id = $2) \
               AND ($3 IS NULL OR subscriber = $3) \
               AND ($4 IS NULL OR event_id IN \
                    (SELECT id FROM herald_events WHERE event_type = $4)) \
               AND ($5 IS NULL OR event_id IN \
                    (SELECT id FROM herald_events WHERE tenant_id = $5))",
        )
        .time(now)
        .uuid(which.event_id)
        .text(which.subscriber.as_deref())
        .text(which.event_type.as_deref())
        .text(which.tenant.as_deref()),
    )
    .await?)
}

/// Deletes processed events older than `before` that owe no delivery and belong to no
/// aggregate's stream (the source of truth of event-sourced aggregates), in slices so that a
/// large backlog never holds a lock for long.
pub(crate) async fn prune<D: Dialect>(
    connection: &mut D::Connection,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    delete_in_slices::<D>(connection, || {
        Statement::new(
            "DELETE FROM herald_events WHERE position IN ( \
               SELECT e.position FROM herald_events e \
               WHERE e.status = 'processed' AND e.processed_at < $1 \
                 AND e.aggregate_sequence IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM herald_deliveries d \
                                 WHERE d.event_id = e.id) \
               LIMIT 5000)",
        )
        .time(before)
    })
    .await
}

pub(crate) async fn stats<D: Dialect>(
    connection: &mut D::Connection,
) -> Result<OutboxStats, StoreError> {
    let row = fetch_optional::<D>(
        connection,
        Statement::new(
            "SELECT \
               (SELECT count(*) FROM herald_events WHERE status <> 'processed') AS pending, \
               (SELECT count(*) FROM herald_events WHERE status = 'processed') AS processed, \
               (SELECT count(*) FROM herald_deliveries WHERE status <> 'failed') AS retrying, \
               (SELECT count(*) FROM herald_deliveries WHERE status = 'failed') AS dead",
        ),
    )
    .await?;
    let count = |column: &str| -> Result<u64, StoreError> {
        Ok(match &row {
            Some(row) => u64::try_from(row.int(column)?).unwrap_or(0),
            None => 0,
        })
    };
    Ok(OutboxStats {
        pending_events: count("pending")?,
        processed_events: count("processed")?,
        retrying_deliveries: count("retrying")?,
        dead_letters: count("dead")?,
    })
}

/// How a delivery's state is stored: status, attempts, when it is next due, last error.
pub(crate) fn delivery_columns(
    state: &DeliveryState,
    now: DateTime<Utc>,
) -> (&'static str, i64, DateTime<Utc>, Option<&str>) {
    match state {
        DeliveryState::Retry {
            attempts,
            at,
            last_error,
        } => ("pending", i64::from(*attempts), *at, last_error.as_deref()),
        DeliveryState::Failed {
            attempts,
            last_error,
        } => ("failed", i64::from(*attempts), now, Some(last_error)),
    }
}

/// Extends the leases of the retries `owner` holds; returns how many it still holds.
pub(crate) async fn extend_delivery_leases<D: Dialect>(
    connection: &mut D::Connection,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(D::execute(
        connection,
        Statement::new(
            "UPDATE herald_deliveries SET lease_expires_at = $1 \
             WHERE lease_owner = $2 AND status = 'processing'",
        )
        .time(until)
        .text(owner),
    )
    .await?)
}

/// Records what the retry lane's attempts came to: a delivered retry goes away, a failed one
/// is due again later or dead. Fenced on the lease owner, so that a retry another worker took
/// over after this one's lease expired stays theirs.
pub(crate) async fn finish_deliveries<D: Dialect>(
    connection: &mut D::Connection,
    owner: &str,
    outcomes: &[DeliveryOutcome],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for outcome in outcomes {
        match &outcome.state {
            None => {
                D::execute(
                    connection,
                    Statement::new(
                        "DELETE FROM herald_deliveries \
                         WHERE event_id = $1 AND subscriber = $2 AND lease_owner = $3",
                    )
                    .uuid(outcome.event_id)
                    .text(outcome.subscriber.as_str())
                    .text(owner),
                )
                .await?;
            }
            Some(state) => {
                let (status, attempts, next_attempt_at, last_error) = delivery_columns(state, now);
                D::execute(
                    connection,
                    Statement::new(
                        "UPDATE herald_deliveries SET status = $1, attempts = $2, \
                           next_attempt_at = $3, last_error = $4, lease_owner = NULL, \
                           lease_expires_at = NULL, claims = 0, updated_at = $5 \
                         WHERE event_id = $6 AND subscriber = $7 AND lease_owner = $8",
                    )
                    .text(status)
                    .int(attempts)
                    .time(next_attempt_at)
                    .text(last_error)
                    .time(now)
                    .uuid(outcome.event_id)
                    .text(outcome.subscriber.as_str())
                    .text(owner),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The columns [`stored_event`] reads.
pub(crate) const EVENT_COLUMNS: &str = "position, id, event_type, version, pool, \
     aggregate_type, aggregate_id, tenant_id, correlation_id, causation_id, payload, \
     occurred_at, recorded_at, attempts, traceparent, tracestate";

/// The one decoder of an event row as a lane claims it. `blocked_subscribers` stays empty:
/// each database reads that list in its own way, with the claim.
pub(crate) fn stored_event<R: Columns>(row: &R) -> Result<StoredEvent, StoreError> {
    let error = match readable_event(row) {
        Ok(event) => return Ok(event),
        Err(error) => error,
    };
    // Enough to route the failure (the row, its type, its pool and aggregate); when not even
    // that reads, the row cannot be told apart and the error stands.
    let (Ok(position), Ok(id), Ok(event_type)) =
        (row.int("position"), row.uuid("id"), row.text("event_type"))
    else {
        return Err(error);
    };
    Ok(StoredEvent {
        position,
        id,
        event_type,
        version: row.int("version").map(to_u32).unwrap_or_default(),
        pool: row.opt_text("pool").ok().flatten(),
        aggregate_type: row.opt_text("aggregate_type").ok().flatten(),
        aggregate_id: row.opt_text("aggregate_id").ok().flatten(),
        tenant_id: None,
        correlation_id: None,
        causation_id: None,
        payload: String::new(),
        occurred_at: row.time("occurred_at").unwrap_or_default(),
        recorded_at: row.time("recorded_at").unwrap_or_default(),
        claims: row.int("attempts").map(to_u32).unwrap_or(1),
        blocked_subscribers: Vec::new(),
        unreadable: Some(error.to_string()),
        trace: None,
    })
}

fn readable_event<R: Columns>(row: &R) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: row.int("position")?,
        id: row.uuid("id")?,
        event_type: row.text("event_type")?,
        version: to_u32(row.int("version")?),
        pool: row.opt_text("pool")?,
        aggregate_type: row.opt_text("aggregate_type")?,
        aggregate_id: row.opt_text("aggregate_id")?,
        tenant_id: row.opt_text("tenant_id")?,
        correlation_id: row.opt_uuid("correlation_id")?,
        causation_id: row.opt_uuid("causation_id")?,
        payload: row.json("payload")?,
        occurred_at: row.time("occurred_at")?,
        recorded_at: row.time("recorded_at")?,
        claims: to_u32(row.int("attempts")?),
        blocked_subscribers: Vec::new(),
        unreadable: None,
        trace: row.trace()?,
    })
}

/// The one decoder of a committed event as a projection reads it, with its checkpoint.
pub(crate) fn projected_event<R: Columns>(
    row: &R,
    tx_id: i64,
) -> Result<(Checkpoint, ProjectedEvent), StoreError> {
    let id = row.uuid("id")?;
    let position = row.int("position")?;
    let payload = row.json("payload")?;
    Ok((
        Checkpoint { tx_id, position },
        ProjectedEvent {
            position,
            id,
            event_type: row.text("event_type")?,
            version: to_u32(row.int("version")?),
            aggregate_type: row.opt_text("aggregate_type")?,
            aggregate_id: row.opt_text("aggregate_id")?,
            tenant_id: row.opt_text("tenant_id")?,
            payload: serde_json::from_str(&payload)
                .map_err(|error| corrupt(id, format!("payload is not JSON: {error}")))?,
            occurred_at: row.time("occurred_at")?,
        },
    ))
}

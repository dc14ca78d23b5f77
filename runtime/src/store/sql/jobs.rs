//! Job statements both databases share: enqueue with dedupe, the release and rescue of runs,
//! memoized steps, cancel and retry by hand, and the query API with its one row decoder.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Columns, Dialect, Statement, delete_in_slices, fetch_optional, to_u32};
use crate::ops::{DueRuns, RunFilter, RunInfo, RunStatus};
use crate::store::{ClaimedRun, ExpiredRun, NewRun, Rescue, StoreError, corrupt};
use crate::trace::TraceContext;

/// Inserts one run, or finds the run it collapses onto: the child its parent already spawned
/// under the same key, or the live run with the same dedupe key.
pub(crate) async fn insert_run<D: Dialect>(
    connection: &mut D::Connection,
    run: &NewRun,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    // No conflict target: either unique index (a child's key, a live dedupe key) absorbs it.
    let inserted = fetch_optional::<D>(
        connection,
        Statement::new(
            "INSERT INTO herald_jobs (id, job, pool, input, max_attempts, run_at, dedupe_key, \
               scope_type, scope_id, event_id, parent_id, root_id, created_at, tenant_id, \
               child_key, traceparent, tracestate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
               $17) \
             ON CONFLICT DO NOTHING \
             RETURNING id",
        )
        .uuid(run.id)
        .text(run.job)
        .text(run.pool)
        .json(run.input.as_str())
        .int(i64::from(run.max_attempts))
        .time(run.run_at.unwrap_or(now))
        .text(run.dedupe_key.as_deref())
        .text(run.scope_type.as_deref())
        .text(run.scope_id.as_deref())
        .uuid(run.event_id)
        .uuid(run.parent_id)
        .uuid(run.root_id)
        .time(now)
        .text(run.tenant_id.as_deref())
        .text(run.child_key.as_deref())
        .text(run.trace.as_ref().map(TraceContext::traceparent))
        .text(run.trace.as_ref().and_then(TraceContext::tracestate)),
    )
    .await?;
    if let Some(row) = inserted {
        return row.uuid("id");
    }
    if let (Some(parent), Some(key)) = (run.parent_id, run.child_key.as_deref()) {
        let spawned = fetch_optional::<D>(
            connection,
            Statement::new("SELECT id FROM herald_jobs WHERE parent_id = $1 AND child_key = $2")
                .uuid(parent)
                .text(key),
        )
        .await?;
        if let Some(row) = spawned {
            return row.uuid("id");
        }
    }
    let live = fetch_optional::<D>(
        connection,
        Statement::new(
            "SELECT id FROM herald_jobs WHERE job = $1 AND dedupe_key = $2 \
             AND status IN ('pending', 'running')",
        )
        .text(run.job)
        .text(run.dedupe_key.as_deref()),
    )
    .await?;
    match live {
        Some(row) => row.uuid("id"),
        None => Err(corrupt(run.id, "dedupe conflict without a live run")),
    }
}

/// Inserts runs in the caller's transaction; returns each live run's id.
pub(crate) async fn insert_runs<D: Dialect>(
    connection: &mut D::Connection,
    runs: &[NewRun],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let mut ids = Vec::with_capacity(runs.len());
    for run in runs {
        ids.push(insert_run::<D>(connection, run, now).await?);
    }
    Ok(ids)
}

/// Puts the runs `owner` holds back to pending without spending their attempt.
pub(crate) async fn release_runs<D: Dialect>(
    connection: &mut D::Connection,
    owner: &str,
) -> Result<u64, StoreError> {
    Ok(D::execute(
        connection,
        Statement::new(
            "UPDATE herald_jobs SET status = 'pending', attempt = attempt - 1, \
               lease_owner = NULL, lease_expires_at = NULL \
             WHERE lease_owner = $1 AND status = 'running'",
        )
        .text(owner),
    )
    .await?)
}

/// Running runs whose lease expired before `now`, oldest lease first.
pub(crate) async fn expired_runs<D: Dialect>(
    connection: &mut D::Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ExpiredRun>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new(
            "SELECT id, attempt, max_attempts FROM herald_jobs \
             WHERE status = 'running' AND lease_expires_at < $1 \
             ORDER BY lease_expires_at LIMIT $2",
        )
        .time(now)
        .int(i64::from(limit)),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ExpiredRun {
                id: row.uuid("id")?,
                attempt: to_u32(row.int("attempt")?),
                max_attempts: to_u32(row.int("max_attempts")?),
            })
        })
        .collect()
}

/// Writes what the rescuer decided, each write fenced on the attempt that expired (a rescue
/// that another worker made first, or a heartbeat that came late but in time, wins); returns
/// the ids written.
pub(crate) async fn write_rescues<D: Dialect>(
    connection: &mut D::Connection,
    rescues: &[Rescue],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let mut written = Vec::new();
    // In id order, like every write of several runs, so that it cannot deadlock with one.
    let mut in_id_order: Vec<&Rescue> = rescues.iter().collect();
    in_id_order.sort_unstable_by_key(|rescue| rescue.id);
    for rescue in in_id_order {
        let (status, finished_at) = match rescue.status {
            RunStatus::Pending => (RunStatus::Pending, None),
            final_status => (final_status, Some(now)),
        };
        let updated = D::execute(
            connection,
            Statement::new(
                "UPDATE herald_jobs SET status = $1, run_at = $2, finished_at = $3, \
                   last_error = $4, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $5 AND attempt = $6 AND status = 'running' \
                   AND lease_expires_at < $7",
            )
            .text(status.as_str())
            .time(now)
            .time(finished_at)
            .text(rescue.error.as_str())
            .uuid(rescue.id)
            .int(i64::from(rescue.attempt))
            .time(now),
        )
        .await?;
        if updated == 1 {
            written.push(rescue.id);
        }
    }
    Ok(written)
}

/// The stored output of a memoized step.
pub(crate) async fn step_output<D: Dialect>(
    connection: &mut D::Connection,
    run: Uuid,
    step: &str,
) -> Result<Option<String>, StoreError> {
    let row = fetch_optional::<D>(
        connection,
        Statement::new("SELECT output FROM herald_job_steps WHERE run_id = $1 AND step = $2")
            .uuid(run)
            .text(step),
    )
    .await?;
    row.map(|row| row.json("output")).transpose()
}

/// Stores a step's output if the attempt still holds the run; false when fenced.
pub(crate) async fn save_step<D: Dialect>(
    connection: &mut D::Connection,
    run: Uuid,
    attempt: u32,
    step: &str,
    output: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let saved = D::execute(
        connection,
        Statement::new(
            "INSERT INTO herald_job_steps (run_id, step, output, attempt, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM herald_jobs \
               WHERE id = $1 AND attempt = $4 AND status = 'running') \
             ON CONFLICT (run_id, step) DO NOTHING",
        )
        .uuid(run)
        .text(step)
        .json(output)
        .int(i64::from(attempt))
        .time(now),
    )
    .await?;
    Ok(saved == 1)
}

/// Cancels the run and every run below it that is still live.
pub(crate) async fn cancel_tree<D: Dialect>(
    connection: &mut D::Connection,
    run: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(D::execute(
        connection,
        Statement::new(
            "WITH RECURSIVE tree(id) AS ( \
               SELECT id FROM herald_jobs WHERE id = $1 \
               UNION ALL SELECT j.id FROM herald_jobs j JOIN tree ON j.parent_id = tree.id) \
             UPDATE herald_jobs SET status = 'canceled', finished_at = $2, \
               lease_owner = NULL, lease_expires_at = NULL \
             WHERE id IN (SELECT id FROM tree) AND status IN ('pending', 'running')",
        )
        .uuid(run)
        .time(now),
    )
    .await?)
}

/// Sends a failed, timed-out or canceled run back to pending with a fresh set of attempts.
pub(crate) async fn retry_run<D: Dialect>(
    connection: &mut D::Connection,
    run: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let retried = D::execute(
        connection,
        Statement::new(
            "UPDATE herald_jobs SET status = 'pending', attempt = 0, run_at = $2, \
               finished_at = NULL, output = NULL \
             WHERE id = $1 AND status IN ('failed', 'timed_out', 'canceled')",
        )
        .uuid(run)
        .time(now),
    )
    .await?;
    Ok(retried == 1)
}

// Statements are `'static` (spelled out, not built with `format!`) so that sqlx caches their
// preparation.
const LIST_RUNS: &str = "SELECT id, job, pool, status, input, output, attempt, max_attempts, \
       run_at, dedupe_key, scope_type, scope_id, event_id, parent_id, root_id, last_error, \
       created_at, finished_at, tenant_id, lease_expires_at, traceparent, tracestate \
     FROM herald_jobs \
     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR job = $2) \
       AND ($3 IS NULL OR (scope_type = $3 AND scope_id = $4)) \
       AND ($5 IS NULL OR root_id = $5) AND ($7 IS NULL OR tenant_id = $7) \
     ORDER BY created_at DESC, id DESC LIMIT $6";

const GET_RUN: &str = "SELECT id, job, pool, status, input, output, attempt, max_attempts, \
       run_at, dedupe_key, scope_type, scope_id, event_id, parent_id, root_id, last_error, \
       created_at, finished_at, tenant_id, lease_expires_at, traceparent, tracestate \
     FROM herald_jobs WHERE id = $1";

const RUNS_OF_EVENT: &str = "SELECT id, job, pool, status, input, output, attempt, \
       max_attempts, run_at, dedupe_key, scope_type, scope_id, event_id, parent_id, root_id, \
       last_error, created_at, finished_at, tenant_id, lease_expires_at, traceparent, \
       tracestate FROM herald_jobs \
     WHERE event_id = $1 ORDER BY created_at, id";

/// The runs an event enqueued, oldest first.
pub(crate) async fn runs_of_event<D: Dialect>(
    connection: &mut D::Connection,
    event: Uuid,
) -> Result<Vec<RunInfo>, StoreError> {
    let rows = D::fetch_all(connection, Statement::new(RUNS_OF_EVENT).uuid(event)).await?;
    rows.iter().map(run_info).collect()
}

/// Runs matching `filter`, newest first.
pub(crate) async fn list_runs<D: Dialect>(
    connection: &mut D::Connection,
    filter: &RunFilter,
) -> Result<Vec<RunInfo>, StoreError> {
    let (scope_type, scope_id) = match &filter.scope {
        Some((scope_type, scope_id)) => (Some(scope_type.as_str()), Some(scope_id.as_str())),
        None => (None, None),
    };
    let rows = D::fetch_all(
        connection,
        Statement::new(LIST_RUNS)
            .text(filter.status.map(RunStatus::as_str))
            .text(filter.job.as_deref())
            .text(scope_type)
            .text(scope_id)
            .uuid(filter.root)
            .int(i64::from(filter.limit))
            .text(filter.tenant.as_deref()),
    )
    .await?;
    rows.iter().map(run_info).collect()
}

pub(crate) async fn get_run<D: Dialect>(
    connection: &mut D::Connection,
    run: Uuid,
) -> Result<Option<RunInfo>, StoreError> {
    fetch_optional::<D>(connection, Statement::new(GET_RUN).uuid(run))
        .await?
        .as_ref()
        .map(run_info)
        .transpose()
}

/// The one decoder of a run row.
fn run_info<R: Columns>(row: &R) -> Result<RunInfo, StoreError> {
    let id = row.uuid("id")?;
    let status = row.text("status")?;
    let json = |column: &str| -> Result<Option<serde_json::Value>, StoreError> {
        row.opt_json(column)?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| corrupt(id, format!("{column} is not JSON: {error}")))
    };
    Ok(RunInfo {
        id,
        job: row.text("job")?,
        pool: row.text("pool")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| corrupt(id, format!("unknown status `{status}`")))?,
        input: json("input")?.unwrap_or_default(),
        output: json("output")?,
        attempt: to_u32(row.int("attempt")?),
        max_attempts: to_u32(row.int("max_attempts")?),
        run_at: row.time("run_at")?,
        dedupe_key: row.opt_text("dedupe_key")?,
        scope_type: row.opt_text("scope_type")?,
        scope_id: row.opt_text("scope_id")?,
        event_id: row.opt_uuid("event_id")?,
        parent_id: row.opt_uuid("parent_id")?,
        root_id: row.uuid("root_id")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.time("created_at")?,
        finished_at: row.opt_time("finished_at")?,
        tenant_id: row.opt_text("tenant_id")?,
        // A finished run keeps the column of its last lease, which no longer means anything.
        lease_expires_at: match status.as_str() {
            "running" => row.opt_time("lease_expires_at")?,
            _ => None,
        },
        trace: row.trace()?,
    })
}

/// The one decoder of a run a worker claimed.
pub(crate) fn claimed_run<R: Columns>(row: &R) -> Result<ClaimedRun, StoreError> {
    Ok(ClaimedRun {
        id: row.uuid("id")?,
        job: row.text("job")?,
        input: row.json("input")?,
        attempt: to_u32(row.int("attempt")?),
        max_attempts: to_u32(row.int("max_attempts")?),
        root_id: row.uuid("root_id")?,
        tenant_id: row.opt_text("tenant_id")?,
        trace: row.trace()?,
    })
}

/// Pending runs due before `due_before`, counted per pool and job.
pub(crate) async fn due_runs<D: Dialect>(
    connection: &mut D::Connection,
    due_before: DateTime<Utc>,
) -> Result<Vec<DueRuns>, StoreError> {
    let rows = D::fetch_all(
        connection,
        Statement::new(
            "SELECT pool, job, count(*) AS runs, min(run_at) AS oldest FROM herald_jobs \
             WHERE status = 'pending' AND run_at <= $1 GROUP BY pool, job ORDER BY pool, job",
        )
        .time(due_before),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DueRuns {
                pool: row.text("pool")?,
                job: row.text("job")?,
                runs: u64::try_from(row.int("runs")?).unwrap_or(0),
                oldest_due_at: row.time("oldest")?,
            })
        })
        .collect()
}

/// Deletes finished runs whose whole tree is finished, in slices; their steps go with them
/// (`ON DELETE CASCADE`).
pub(crate) async fn prune_runs<D: Dialect>(
    connection: &mut D::Connection,
    status: RunStatus,
    finished_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    delete_in_slices::<D>(connection, || {
        Statement::new(
            "DELETE FROM herald_jobs WHERE id IN ( \
               SELECT j.id FROM herald_jobs j \
               WHERE j.status = $1 AND j.finished_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM herald_jobs live \
                   WHERE live.root_id = j.root_id AND live.status IN ('pending', 'running')) \
               LIMIT 5000)",
        )
        .text(status.as_str())
        .time(finished_before)
    })
    .await
}

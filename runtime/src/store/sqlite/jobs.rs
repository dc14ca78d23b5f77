//! Durable jobs on SQLite. Claims are single `UPDATE … RETURNING` statements under SQLite's
//! write lock, so the concurrency cap's count and the claim cannot interleave with another
//! claim; every write of an attempt is fenced on (id, attempt, status = 'running').

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use super::{SqliteBackend, lease_until, micros, now_micros};
use crate::store::{
    AttemptResult, ClaimedRun, JobStore, NewRun, Rescued, RunFilter, RunInfo, RunStatus, corrupt,
};
use crate::store::{Fut, StoreError};

const DEDUPE_CONFLICT: &str = "ON CONFLICT (job, dedupe_key) \
     WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING";

const CLAIMED_COLUMNS: &str = "id, job, input, attempt, max_attempts, root_id";

fn claimed_from_row(row: &SqliteRow) -> Result<ClaimedRun, StoreError> {
    Ok(ClaimedRun {
        id: row.try_get("id")?,
        job: row.try_get("job")?,
        input: row.try_get("input")?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        root_id: row.try_get("root_id")?,
    })
}

fn time_from_row(row: &SqliteRow, column: &str, id: Uuid) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| corrupt(id, format!("{column} {value} out of range")))
}

fn info_from_row(row: &SqliteRow) -> Result<RunInfo, StoreError> {
    let id: Uuid = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let json = |column: &str| -> Result<Option<serde_json::Value>, StoreError> {
        row.try_get::<Option<String>, _>(column)?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| corrupt(id, format!("{column} is not JSON: {error}")))
    };
    Ok(RunInfo {
        id,
        job: row.try_get("job")?,
        pool: row.try_get("pool")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| corrupt(id, format!("unknown status `{status}`")))?,
        input: json("input")?.unwrap_or_default(),
        output: json("output")?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        run_at: time_from_row(row, "run_at", id)?,
        dedupe_key: row.try_get("dedupe_key")?,
        scope_type: row.try_get("scope_type")?,
        scope_id: row.try_get("scope_id")?,
        event_id: row.try_get("event_id")?,
        parent_id: row.try_get("parent_id")?,
        root_id: row.try_get("root_id")?,
        last_error: row.try_get("last_error")?,
        created_at: time_from_row(row, "created_at", id)?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .and_then(DateTime::from_timestamp_micros),
    })
}

/// Inserts one run, or finds the live run its dedupe key collapses onto.
pub(super) async fn insert_run(
    connection: &mut SqliteConnection,
    run: &NewRun,
) -> Result<Uuid, StoreError> {
    let now = now_micros();
    let sql = format!(
        "INSERT INTO herald_jobs (id, job, pool, input, max_attempts, run_at, dedupe_key, \
           scope_type, scope_id, event_id, parent_id, root_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {DEDUPE_CONFLICT} RETURNING id"
    );
    let inserted: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(run.id)
        .bind(run.job)
        .bind(run.pool)
        .bind(&run.input)
        .bind(i64::from(run.max_attempts))
        .bind(run.run_at.map_or(now, micros))
        .bind(run.dedupe_key.as_deref())
        .bind(run.scope_type.as_deref())
        .bind(run.scope_id.as_deref())
        .bind(run.event_id)
        .bind(run.parent_id)
        .bind(run.root_id)
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    let live: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM herald_jobs WHERE job = ? AND dedupe_key = ? \
         AND status IN ('pending', 'running')",
    )
    .bind(run.job)
    .bind(run.dedupe_key.as_deref())
    .fetch_optional(&mut *connection)
    .await?;
    live.ok_or_else(|| corrupt(run.id, "dedupe conflict without a live run"))
}

impl JobStore for SqliteBackend {
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
    ) -> Fut<'a, Option<Uuid>> {
        Box::pin(async move {
            let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
            if let (Some(parent), Some(attempt)) = (run.parent_id, parent_attempt) {
                let holds: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM herald_jobs WHERE id = ? AND attempt = ? AND status = 'running'",
                )
                .bind(parent)
                .bind(i64::from(attempt))
                .fetch_optional(&mut *tx)
                .await?;
                if holds.is_none() {
                    return Ok(None);
                }
            }
            let id = insert_run(&mut tx, run).await?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    fn claim_runs<'a>(
        &'a self,
        pool: &'a str,
        jobs: &'a [&'static str],
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, Vec<ClaimedRun>> {
        Box::pin(async move {
            let sql = format!(
                "UPDATE herald_jobs SET status = 'running', attempt = attempt + 1, \
                   lease_owner = ?1, lease_expires_at = ?2, started_at = ?3 \
                 WHERE id IN (SELECT id FROM herald_jobs \
                   WHERE pool = ?4 AND status = 'pending' AND run_at <= ?3 \
                     AND job IN (SELECT value FROM json_each(?5)) \
                   ORDER BY run_at, id LIMIT ?6) \
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_until(lease))
                .bind(now_micros())
                .bind(pool)
                .bind(serde_json::to_string(jobs).unwrap_or_else(|_| "[]".to_owned()))
                .bind(i64::from(limit))
                .fetch_all(self.bookkeeping())
                .await?;
            rows.iter().map(claimed_from_row).collect()
        })
    }

    fn claim_capped<'a>(
        &'a self,
        pool: &'a str,
        job: &'static str,
        cap: u32,
        owner: &'a str,
        limit: u32,
        lease: Duration,
    ) -> Fut<'a, Vec<ClaimedRun>> {
        Box::pin(async move {
            // One statement: the count of running runs and the claim see the same state.
            let sql = format!(
                "UPDATE herald_jobs SET status = 'running', attempt = attempt + 1, \
                   lease_owner = ?1, lease_expires_at = ?2, started_at = ?3 \
                 WHERE id IN (SELECT id FROM herald_jobs \
                   WHERE pool = ?4 AND job = ?5 AND status = 'pending' AND run_at <= ?3 \
                   ORDER BY run_at, id \
                   LIMIT max(0, min(?6, ?7 - (SELECT count(*) FROM herald_jobs \
                                              WHERE job = ?5 AND status = 'running')))) \
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_until(lease))
                .bind(now_micros())
                .bind(pool)
                .bind(job)
                .bind(i64::from(limit))
                .bind(i64::from(cap))
                .fetch_all(self.bookkeeping())
                .await?;
            rows.iter().map(claimed_from_row).collect()
        })
    }

    fn heartbeat<'a>(&'a self, runs: &'a [(Uuid, u32)], lease: Duration) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let until = lease_until(lease);
            let mut tx = self.bookkeeping().begin_with("BEGIN IMMEDIATE").await?;
            let mut ours = Vec::with_capacity(runs.len());
            for &(id, attempt) in runs {
                let renewed = sqlx::query(
                    "UPDATE herald_jobs SET lease_expires_at = ? \
                     WHERE id = ? AND attempt = ? AND status = 'running'",
                )
                .bind(until)
                .bind(id)
                .bind(i64::from(attempt))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if renewed == 1 {
                    ours.push(id);
                }
            }
            tx.commit().await?;
            Ok(ours)
        })
    }

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult]) -> Fut<'a, u64> {
        Box::pin(async move {
            let now = now_micros();
            let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
            let mut recorded = 0;
            for result in results {
                let status = result.outcome.status();
                recorded += sqlx::query(
                    "UPDATE herald_jobs SET status = ?, output = ?, last_error = ?, \
                       run_at = coalesce(?, run_at), lease_owner = NULL, lease_expires_at = NULL, \
                       finished_at = ? \
                     WHERE id = ? AND attempt = ? AND status = 'running'",
                )
                .bind(status.as_str())
                .bind(result.outcome.output())
                .bind(result.outcome.error())
                .bind(result.outcome.retry_at().map(micros))
                .bind(status.is_final().then_some(now))
                .bind(result.id)
                .bind(i64::from(result.attempt))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    fn rescue_expired(&self) -> Fut<'_, Rescued> {
        Box::pin(async move {
            let now = now_micros();
            let mut tx = self.bookkeeping().begin_with("BEGIN IMMEDIATE").await?;
            let failed = sqlx::query(
                "UPDATE herald_jobs SET status = 'failed', finished_at = ?1, \
                   lease_owner = NULL, lease_expires_at = NULL, \
                   last_error = 'lease expired on the last attempt: the worker crashed or stalled' \
                 WHERE status = 'running' AND lease_expires_at < ?1 AND attempt >= max_attempts",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let retried = sqlx::query(
                "UPDATE herald_jobs SET status = 'pending', run_at = ?1, \
                   lease_owner = NULL, lease_expires_at = NULL, \
                   last_error = 'lease expired: the worker crashed or stalled' \
                 WHERE status = 'running' AND lease_expires_at < ?1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Rescued { retried, failed })
        })
    }

    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE herald_jobs SET status = 'pending', attempt = attempt - 1, \
                   lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = ? AND status = 'running'",
            )
            .bind(owner)
            .execute(self.bookkeeping())
            .await?
            .rows_affected())
        })
    }

    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "SELECT output FROM herald_job_steps WHERE run_id = ? AND step = ?",
            )
            .bind(run)
            .bind(step)
            .fetch_optional(self.pool())
            .await?)
        })
    }

    fn save_step<'a>(
        &'a self,
        run: Uuid,
        attempt: u32,
        step: &'a str,
        output: &'a str,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let saved = sqlx::query(
                "INSERT INTO herald_job_steps (run_id, step, output, attempt, created_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM herald_jobs \
                   WHERE id = ?1 AND attempt = ?4 AND status = 'running') \
                 ON CONFLICT (run_id, step) DO NOTHING",
            )
            .bind(run)
            .bind(step)
            .bind(output)
            .bind(i64::from(attempt))
            .bind(now_micros())
            .execute(self.pool())
            .await?
            .rows_affected();
            Ok(saved == 1)
        })
    }

    fn cancel_tree(&self, run: Uuid) -> Fut<'_, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "WITH RECURSIVE tree(id) AS ( \
                   SELECT id FROM herald_jobs WHERE id = ?1 \
                   UNION ALL SELECT j.id FROM herald_jobs j JOIN tree ON j.parent_id = tree.id) \
                 UPDATE herald_jobs SET status = 'canceled', finished_at = ?2, \
                   lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id IN (SELECT id FROM tree) AND status IN ('pending', 'running')",
            )
            .bind(run)
            .bind(now_micros())
            .execute(self.pool())
            .await?
            .rows_affected())
        })
    }

    fn retry_run(&self, run: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let retried = sqlx::query(
                "UPDATE herald_jobs SET status = 'pending', attempt = 0, run_at = ?2, \
                   finished_at = NULL, output = NULL \
                 WHERE id = ?1 AND status IN ('failed', 'timed_out', 'canceled')",
            )
            .bind(run)
            .bind(now_micros())
            .execute(self.pool())
            .await?
            .rows_affected();
            Ok(retried == 1)
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>> {
        Box::pin(async move {
            let (scope_type, scope_id) = match &filter.scope {
                Some((scope_type, scope_id)) => {
                    (Some(scope_type.as_str()), Some(scope_id.as_str()))
                }
                None => (None, None),
            };
            let rows = sqlx::query(
                "SELECT * FROM herald_jobs \
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR job = ?2) \
                   AND (?3 IS NULL OR (scope_type = ?3 AND scope_id = ?4)) \
                   AND (?5 IS NULL OR root_id = ?5) \
                 ORDER BY created_at DESC, id DESC LIMIT ?6",
            )
            .bind(filter.status.map(RunStatus::as_str))
            .bind(filter.job.as_deref())
            .bind(scope_type)
            .bind(scope_id)
            .bind(filter.root)
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?;
            rows.iter().map(info_from_row).collect()
        })
    }

    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>> {
        Box::pin(async move {
            sqlx::query("SELECT * FROM herald_jobs WHERE id = ?")
                .bind(run)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(info_from_row)
                .transpose()
        })
    }
}

/// Inserts runs in the caller's transaction.
pub(super) async fn insert_runs(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    runs: &[NewRun],
) -> Result<Vec<Uuid>, StoreError> {
    let mut ids = Vec::with_capacity(runs.len());
    for run in runs {
        ids.push(insert_run(tx, run).await?);
    }
    Ok(ids)
}

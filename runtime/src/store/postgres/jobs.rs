//! Durable jobs on PostgreSQL. Claims lock due runs with `FOR UPDATE SKIP LOCKED`; a capped
//! job's claims are serialized by a transaction-scoped advisory lock on the job name, so the
//! count of running runs and the claim cannot race between workers; attempts are batched into
//! single statements, and every write of an attempt is fenced on (id, attempt, 'running').

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Postgres, Row};
use uuid::Uuid;

use super::PostgresBackend;
use crate::store::{
    AttemptResult, ClaimedRun, JobStore, NewRun, Rescued, RunFilter, RunInfo, RunStatus, corrupt,
};
use crate::store::{Fut, StoreError};

fn lease_millis(lease: Duration) -> f64 {
    lease.as_millis() as f64
}

const DEDUPE_CONFLICT: &str = "ON CONFLICT (job, dedupe_key) \
     WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING";

const CLAIMED_COLUMNS: &str =
    "j.id, j.job, j.input::text AS input, j.attempt, j.max_attempts, j.root_id";

fn claimed_from_row(row: &PgRow) -> Result<ClaimedRun, StoreError> {
    Ok(ClaimedRun {
        id: row.try_get("id")?,
        job: row.try_get("job")?,
        input: row.try_get("input")?,
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")? as u32,
        root_id: row.try_get("root_id")?,
    })
}

const INFO_COLUMNS: &str = "id, job, pool, status, input::text AS input, output::text AS output, \
     attempt, max_attempts, run_at, dedupe_key, scope_type, scope_id, event_id, parent_id, \
     root_id, last_error, created_at, finished_at";

fn info_from_row(row: &PgRow) -> Result<RunInfo, StoreError> {
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
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")? as u32,
        run_at: row.try_get("run_at")?,
        dedupe_key: row.try_get("dedupe_key")?,
        scope_type: row.try_get("scope_type")?,
        scope_id: row.try_get("scope_id")?,
        event_id: row.try_get("event_id")?,
        parent_id: row.try_get("parent_id")?,
        root_id: row.try_get("root_id")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Inserts one run, or finds the live run its dedupe key collapses onto.
pub(super) async fn insert_run(
    connection: &mut PgConnection,
    run: &NewRun,
) -> Result<Uuid, StoreError> {
    let sql = format!(
        "INSERT INTO herald_jobs (id, job, pool, input, max_attempts, run_at, dedupe_key, \
           scope_type, scope_id, event_id, parent_id, root_id) \
         VALUES ($1, $2, $3, $4::jsonb, $5, coalesce($6, now()), $7, $8, $9, $10, $11, $12) \
         {DEDUPE_CONFLICT} RETURNING id"
    );
    let inserted: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(run.id)
        .bind(run.job)
        .bind(run.pool)
        .bind(&run.input)
        .bind(i32::try_from(run.max_attempts).unwrap_or(i32::MAX))
        .bind(run.run_at)
        .bind(run.dedupe_key.as_deref())
        .bind(run.scope_type.as_deref())
        .bind(run.scope_id.as_deref())
        .bind(run.event_id)
        .bind(run.parent_id)
        .bind(run.root_id)
        .fetch_optional(&mut *connection)
        .await?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    let live: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM herald_jobs WHERE job = $1 AND dedupe_key = $2 \
         AND status IN ('pending', 'running')",
    )
    .bind(run.job)
    .bind(run.dedupe_key.as_deref())
    .fetch_optional(&mut *connection)
    .await?;
    live.ok_or_else(|| corrupt(run.id, "dedupe conflict without a live run"))
}

/// Inserts runs in the caller's transaction.
pub(super) async fn insert_runs(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    runs: &[NewRun],
) -> Result<Vec<Uuid>, StoreError> {
    let mut ids = Vec::with_capacity(runs.len());
    for run in runs {
        ids.push(insert_run(tx, run).await?);
    }
    Ok(ids)
}

impl JobStore for PostgresBackend {
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
    ) -> Fut<'a, Option<Uuid>> {
        Box::pin(async move {
            let mut tx = self.pool().begin().await?;
            if let (Some(parent), Some(attempt)) = (run.parent_id, parent_attempt) {
                // FOR SHARE: the parent cannot be finished or canceled while its child is added.
                let holds: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM herald_jobs WHERE id = $1 AND attempt = $2 \
                     AND status = 'running' FOR SHARE",
                )
                .bind(parent)
                .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
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
                "WITH due AS ( \
                   SELECT id FROM herald_jobs \
                   WHERE pool = $1 AND status = 'pending' AND run_at <= now() AND job = ANY($2) \
                   ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE herald_jobs j SET status = 'running', attempt = j.attempt + 1, \
                   lease_owner = $4, lease_expires_at = now() + $5 * interval '1 millisecond', \
                   started_at = now() \
                 FROM due WHERE j.id = due.id \
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool)
                .bind(jobs)
                .bind(i64::from(limit))
                .bind(owner)
                .bind(lease_millis(lease))
                .fetch_all(self.pool())
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
            let mut tx = self.pool().begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('herald_jobs:' || $1))")
                .bind(job)
                .execute(&mut *tx)
                .await?;
            let sql = format!(
                "WITH due AS ( \
                   SELECT id FROM herald_jobs \
                   WHERE pool = $1 AND job = $2 AND status = 'pending' AND run_at <= now() \
                   ORDER BY run_at, id \
                   LIMIT greatest(0, least($3, $4 - (SELECT count(*) FROM herald_jobs \
                                                     WHERE job = $2 AND status = 'running'))) \
                   FOR UPDATE SKIP LOCKED) \
                 UPDATE herald_jobs j SET status = 'running', attempt = j.attempt + 1, \
                   lease_owner = $5, lease_expires_at = now() + $6 * interval '1 millisecond', \
                   started_at = now() \
                 FROM due WHERE j.id = due.id \
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool)
                .bind(job)
                .bind(i64::from(limit))
                .bind(i64::from(cap))
                .bind(owner)
                .bind(lease_millis(lease))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter().map(claimed_from_row).collect()
        })
    }

    fn heartbeat<'a>(&'a self, runs: &'a [(Uuid, u32)], lease: Duration) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
            let attempts: Vec<i32> = runs
                .iter()
                .map(|(_, attempt)| i32::try_from(*attempt).unwrap_or(i32::MAX))
                .collect();
            Ok(sqlx::query_scalar(
                "UPDATE herald_jobs j SET lease_expires_at = now() + $3 * interval '1 millisecond' \
                 FROM UNNEST($1::uuid[], $2::int4[]) AS r(id, attempt) \
                 WHERE j.id = r.id AND j.attempt = r.attempt AND j.status = 'running' \
                 RETURNING j.id",
            )
            .bind(&ids)
            .bind(&attempts)
            .bind(lease_millis(lease))
            .fetch_all(self.pool())
            .await?)
        })
    }

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult]) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut ids = Vec::with_capacity(results.len());
            let mut attempts = Vec::with_capacity(results.len());
            let mut statuses = Vec::with_capacity(results.len());
            let mut outputs = Vec::with_capacity(results.len());
            let mut errors = Vec::with_capacity(results.len());
            let mut retry_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(results.len());
            for result in results {
                ids.push(result.id);
                attempts.push(i32::try_from(result.attempt).unwrap_or(i32::MAX));
                statuses.push(result.outcome.status().as_str());
                outputs.push(result.outcome.output());
                errors.push(result.outcome.error());
                retry_at.push(result.outcome.retry_at());
            }
            // One statement, committed before any result is reported.
            Ok(sqlx::query(
                "UPDATE herald_jobs j SET status = r.status, output = r.output::jsonb, \
                   last_error = r.error, run_at = coalesce(r.retry_at, j.run_at), \
                   lease_owner = NULL, lease_expires_at = NULL, \
                   finished_at = CASE WHEN r.status = 'pending' THEN NULL ELSE now() END \
                 FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], \
                             $6::timestamptz[]) AS r(id, attempt, status, output, error, retry_at) \
                 WHERE j.id = r.id AND j.attempt = r.attempt AND j.status = 'running'",
            )
            .bind(&ids)
            .bind(&attempts)
            .bind(&statuses)
            .bind(&outputs)
            .bind(&errors)
            .bind(&retry_at)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
    }

    fn rescue_expired(&self) -> Fut<'_, Rescued> {
        Box::pin(async move {
            let row = sqlx::query(
                "WITH expired AS ( \
                   SELECT id, attempt >= max_attempts AS last FROM herald_jobs \
                   WHERE status = 'running' AND lease_expires_at < now() \
                   FOR UPDATE SKIP LOCKED), \
                 updated AS ( \
                   UPDATE herald_jobs j SET \
                     status = CASE WHEN e.last THEN 'failed' ELSE 'pending' END, \
                     finished_at = CASE WHEN e.last THEN now() END, \
                     run_at = CASE WHEN e.last THEN j.run_at ELSE now() END, \
                     lease_owner = NULL, lease_expires_at = NULL, \
                     last_error = CASE WHEN e.last \
                       THEN 'lease expired on the last attempt: the worker crashed or stalled' \
                       ELSE 'lease expired: the worker crashed or stalled' END \
                   FROM expired e WHERE j.id = e.id RETURNING e.last) \
                 SELECT count(*) FILTER (WHERE NOT last) AS retried, \
                        count(*) FILTER (WHERE last) AS failed FROM updated",
            )
            .fetch_one(self.pool())
            .await?;
            Ok(Rescued {
                retried: row.try_get::<i64, _>("retried")? as u64,
                failed: row.try_get::<i64, _>("failed")? as u64,
            })
        })
    }

    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE herald_jobs SET status = 'pending', attempt = attempt - 1, \
                   lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = $1 AND status = 'running'",
            )
            .bind(owner)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
    }

    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "SELECT output::text FROM herald_job_steps WHERE run_id = $1 AND step = $2",
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
                "INSERT INTO herald_job_steps (run_id, step, output, attempt) \
                 SELECT $1, $2, $3::jsonb, $4 WHERE EXISTS (SELECT 1 FROM herald_jobs \
                   WHERE id = $1 AND attempt = $4 AND status = 'running') \
                 ON CONFLICT (run_id, step) DO NOTHING",
            )
            .bind(run)
            .bind(step)
            .bind(output)
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
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
                   SELECT id FROM herald_jobs WHERE id = $1 \
                   UNION ALL SELECT j.id FROM herald_jobs j JOIN tree ON j.parent_id = tree.id) \
                 UPDATE herald_jobs SET status = 'canceled', finished_at = now(), \
                   lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id IN (SELECT id FROM tree) AND status IN ('pending', 'running')",
            )
            .bind(run)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
    }

    fn retry_run(&self, run: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let retried = sqlx::query(
                "UPDATE herald_jobs SET status = 'pending', attempt = 0, run_at = now(), \
                   finished_at = NULL, output = NULL \
                 WHERE id = $1 AND status IN ('failed', 'timed_out', 'canceled')",
            )
            .bind(run)
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
            let sql = format!(
                "SELECT {INFO_COLUMNS} FROM herald_jobs \
                 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR job = $2) \
                   AND ($3::text IS NULL OR (scope_type = $3 AND scope_id = $4)) \
                   AND ($5::uuid IS NULL OR root_id = $5) \
                 ORDER BY created_at DESC, id DESC LIMIT $6"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {INFO_COLUMNS} FROM herald_jobs WHERE id = $1"
            )))
            .bind(run)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(info_from_row)
            .transpose()
        })
    }
}

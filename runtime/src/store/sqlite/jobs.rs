//! Durable jobs on SQLite. Claims are single `UPDATE … RETURNING` statements under SQLite's
//! write lock, so the concurrency cap's count and the claim cannot interleave with another
//! claim; every write of an attempt is fenced on (id, attempt, status = 'running').

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::dialect::SqliteDialect;
use super::{SqliteBackend, micros};
use crate::store::sql::jobs;
use crate::store::{
    AttemptResult, Claim, ClaimedRun, ExpiredRun, JobStore, NewRun, Rescue, RunFilter, RunInfo,
};
use crate::store::{Fut, StoreError};

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

impl JobStore for SqliteBackend {
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Uuid>> {
        Box::pin(async move {
            // BEGIN IMMEDIATE: the parent cannot finish or be canceled while its child is added.
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
            let id = jobs::insert_run::<SqliteDialect>(&mut tx, run, now).await?;
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
        Box::pin(async move {
            let Claim { owner, limit, .. } = claim;
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
                .bind(micros(claim.until()))
                .bind(micros(claim.now))
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
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedRun>> {
        Box::pin(async move {
            let Claim { owner, limit, .. } = claim;
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
                .bind(micros(claim.until()))
                .bind(micros(claim.now))
                .bind(pool)
                .bind(job)
                .bind(i64::from(limit))
                .bind(i64::from(cap))
                .fetch_all(self.bookkeeping())
                .await?;
            rows.iter().map(claimed_from_row).collect()
        })
    }

    fn heartbeat<'a>(
        &'a self,
        runs: &'a [(Uuid, u32)],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let until = micros(until);
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

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let now = micros(now);
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

    fn expired_runs(&self, now: DateTime<Utc>, limit: u32) -> Fut<'_, Vec<ExpiredRun>> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            jobs::expired_runs::<SqliteDialect>(&mut connection, now, limit).await
        })
    }

    fn write_rescues<'a>(
        &'a self,
        rescues: &'a [Rescue],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let mut tx = self.bookkeeping().begin_with("BEGIN IMMEDIATE").await?;
            let written = jobs::write_rescues::<SqliteDialect>(&mut tx, rescues, now).await?;
            tx.commit().await?;
            Ok(written)
        })
    }

    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut connection = self.bookkeeping().acquire().await?;
            jobs::release_runs::<SqliteDialect>(&mut connection, owner).await
        })
    }

    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::step_output::<SqliteDialect>(&mut connection, run, step).await
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
            jobs::save_step::<SqliteDialect>(&mut connection, run, attempt, step, output, now).await
        })
    }

    fn cancel_tree(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::cancel_tree::<SqliteDialect>(&mut connection, run, now).await
        })
    }

    fn retry_run(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::retry_run::<SqliteDialect>(&mut connection, run, now).await
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::list_runs::<SqliteDialect>(&mut connection, filter).await
        })
    }

    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>> {
        Box::pin(async move {
            let mut connection = self.pool().acquire().await?;
            jobs::get_run::<SqliteDialect>(&mut connection, run).await
        })
    }
}

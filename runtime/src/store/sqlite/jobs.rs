//! Durable jobs on SQLite. Claims are single `UPDATE … RETURNING` statements under SQLite's
//! write lock, so the concurrency cap's count and the claim cannot interleave with another
//! claim; every write of an attempt is fenced on (id, attempt, status = 'running').

use chrono::{DateTime, Utc};
use sqlx::Sqlite;
use uuid::Uuid;

use super::{SqliteBackend, micros};
use crate::store::sql::backend::{SqlBackend, SqlJobStore, Tx};
use crate::store::sql::jobs;
use crate::store::{AttemptResult, Claim, ClaimedRun, Fut};

const CLAIMED_COLUMNS: &str =
    "id, job, input, attempt, max_attempts, root_id, tenant_id, traceparent, tracestate";

impl SqlJobStore for SqliteBackend {
    fn parent_holds<'a>(tx: &'a mut Tx<'_, Sqlite>, parent: Uuid, attempt: u32) -> Fut<'a, bool> {
        // The transaction holds SQLite's write lock: the parent cannot change meanwhile.
        Box::pin(async move {
            let holds: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM herald_jobs WHERE id = ? AND attempt = ? AND status = 'running'",
            )
            .bind(parent)
            .bind(i64::from(attempt))
            .fetch_optional(&mut **tx)
            .await?;
            Ok(holds.is_some())
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
            rows.iter().map(jobs::claimed_run).collect()
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
            rows.iter().map(jobs::claimed_run).collect()
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
}

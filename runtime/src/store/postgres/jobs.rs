//! Durable jobs on PostgreSQL. Claims lock due runs with `FOR UPDATE SKIP LOCKED`; a capped
//! job's claims are serialized by a transaction-scoped advisory lock on the job name, so the
//! count of running runs and the claim cannot race between workers; attempts are batched into
//! single statements, and every write of an attempt is fenced on (id, attempt, 'running').

use chrono::{DateTime, Utc};
use sqlx::Postgres;
use uuid::Uuid;

use super::PostgresBackend;
use crate::store::sql::backend::{SqlJobStore, Tx};
use crate::store::sql::jobs;
use crate::store::{AttemptResult, Claim, ClaimedRun, Fut};

const CLAIMED_COLUMNS: &str = "j.id, j.job, j.input, j.attempt, j.max_attempts, j.root_id, j.tenant_id, \
     j.traceparent, j.tracestate";

/// Renews the leases of the runs `$1` at attempts `$2` until `$3`; returns the ids still held.
///
/// Like every statement that writes several runs, it locks them by id first (two statements
/// locking the same runs in different orders, a heartbeat and a completion, would deadlock),
/// and it reaches them through the primary key alone: which runs are still running at the
/// attempt is checked on the locked rows, not in the scan, because statistics taken while few
/// runs ran make any index on `status` look cheapest, and such an index grows a
/// dead entry with every run finished (`plans::tests`).
pub(super) const HEARTBEAT: &str = "WITH locked AS ( \
       SELECT j.id, j.attempt, j.status FROM herald_jobs j \
       WHERE j.id = ANY($1) ORDER BY j.id FOR UPDATE OF j) \
     UPDATE herald_jobs j SET lease_expires_at = $3 \
     WHERE j.id = ANY(ARRAY( \
       SELECT l.id FROM locked l \
       JOIN UNNEST($1::uuid[], $2::int4[]) AS r(id, attempt) \
         ON l.id = r.id AND l.attempt = r.attempt \
       WHERE l.status = 'running')) \
     RETURNING j.id";

/// Records the outcomes of attempts (`UNNEST` of ids, attempts, statuses, outputs, errors,
/// retry times; `$7` the time), for the runs still running at those attempts; locked and
/// reached as [`HEARTBEAT`] does.
pub(super) const FINISH_RUNS: &str = "WITH r AS ( \
       SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], \
         $5::text[], $6::timestamptz[]) \
         AS r(id, attempt, status, output, error, retry_at)), \
     locked AS ( \
       SELECT j.id, j.attempt, j.status FROM herald_jobs j \
       WHERE j.id = ANY($1) ORDER BY j.id FOR UPDATE OF j) \
     UPDATE herald_jobs j SET status = r.status, output = r.output::jsonb, \
       last_error = r.error, run_at = coalesce(r.retry_at, j.run_at), \
       lease_owner = NULL, lease_expires_at = NULL, \
       finished_at = CASE WHEN r.status = 'pending' THEN NULL ELSE $7 END \
     FROM r \
     WHERE j.id = ANY(ARRAY( \
       SELECT l.id FROM locked l JOIN r ON l.id = r.id AND l.attempt = r.attempt \
       WHERE l.status = 'running')) \
       AND r.id = j.id";

/// The statement that claims a pool's due runs of the jobs `$2`, oldest due first. The index
/// `herald_jobs_due (pool, run_at, id)` serves the order, so the claim reads its batch and stops
/// whatever the statistics say; the claimed runs are updated through an array of their ids, not
/// a join that stale estimates turn into a scan of the table (`plans::tests` pins both).
pub(super) fn claim_runs_sql() -> String {
    format!(
        "UPDATE herald_jobs j SET status = 'running', attempt = j.attempt + 1, \
           lease_owner = $4, lease_expires_at = $5, started_at = $6 \
         WHERE j.id = ANY(ARRAY( \
           SELECT id FROM herald_jobs \
           WHERE pool = $1 AND status = 'pending' AND run_at <= $6 AND job = ANY($2) \
           ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)) \
         RETURNING {CLAIMED_COLUMNS}"
    )
}

impl SqlJobStore for PostgresBackend {
    fn parent_holds<'a>(tx: &'a mut Tx<'_, Postgres>, parent: Uuid, attempt: u32) -> Fut<'a, bool> {
        Box::pin(async move {
            // FOR SHARE: the parent cannot be finished or canceled while its child is added.
            let holds: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM herald_jobs WHERE id = $1 AND attempt = $2 \
                 AND status = 'running' FOR SHARE",
            )
            .bind(parent)
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
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
            let sql = claim_runs_sql();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool)
                .bind(jobs)
                .bind(i64::from(limit))
                .bind(owner)
                .bind(claim.until())
                .bind(claim.now)
                // On the bookkeeping pool: a claim lost with the server's last WAL only leaves
                // the run pending (an attempt that ran meanwhile is fenced when it reports),
                // and the application's pool running dry does not stop the claims.
                .fetch_all(&self.bookkeeping)
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
            let mut tx = self.pool().begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('herald_jobs:' || $1))")
                .bind(job)
                .execute(&mut *tx)
                .await?;
            let sql = format!(
                "UPDATE herald_jobs j SET status = 'running', attempt = j.attempt + 1, \
                   lease_owner = $5, lease_expires_at = $6, started_at = $7 \
                 WHERE j.id = ANY(ARRAY( \
                   SELECT id FROM herald_jobs \
                   WHERE pool = $1 AND job = $2 AND status = 'pending' AND run_at <= $7 \
                   ORDER BY run_at, id \
                   LIMIT greatest(0, least($3, $4 - (SELECT count(*) FROM herald_jobs \
                                                     WHERE job = $2 AND status = 'running'))) \
                   FOR UPDATE SKIP LOCKED)) \
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool)
                .bind(job)
                .bind(i64::from(limit))
                .bind(i64::from(cap))
                .bind(owner)
                .bind(claim.until())
                .bind(claim.now)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter().map(jobs::claimed_run).collect()
        })
    }

    fn heartbeat<'a>(
        &'a self,
        runs: &'a [(Uuid, u32)],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
            let attempts: Vec<i32> = runs
                .iter()
                .map(|(_, attempt)| i32::try_from(*attempt).unwrap_or(i32::MAX))
                .collect();
            // A renewal lost with the server's last WAL only shortens a lease.
            Ok(sqlx::query_scalar(HEARTBEAT)
                .bind(&ids)
                .bind(&attempts)
                .bind(until)
                .fetch_all(&self.bookkeeping)
                .await?)
        })
    }

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64> {
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
            // One statement, committed (on the application's pool, whose commits wait for the
            // WAL flush) before any result is reported. Like every statement
            // that writes several runs, it locks them by id first: two of them locking the same
            // runs in different orders (a heartbeat and a completion) would deadlock.
            Ok(sqlx::query(FINISH_RUNS)
                .bind(&ids)
                .bind(&attempts)
                .bind(&statuses)
                .bind(&outputs)
                .bind(&errors)
                .bind(&retry_at)
                .bind(now)
                .execute(self.pool())
                .await?
                .rows_affected())
        })
    }
}

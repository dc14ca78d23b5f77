//! Durable jobs in memory: the same claims, caps, dedupe, fencing, steps and trees as the SQL
//! backends, for unit tests.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryBackend;
use crate::ops::{DueRuns, JobStats};
use crate::store::{
    AttemptResult, Claim, ClaimedRun, ExpiredRun, JobStore, NewRun, Rescue, RunFilter, RunInfo,
    RunStatus,
};
use crate::store::{Fut, StoreError};

#[derive(Debug, Clone)]
pub(super) struct MemRun {
    info: RunInfo,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    child_key: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct JobState {
    /// By id; UUID v7 ids keep creation order.
    runs: BTreeMap<Uuid, MemRun>,
    steps: HashMap<(Uuid, String), String>,
}

impl MemRun {
    /// The run as the query API shows it: the lease only while it runs.
    fn view(&self) -> RunInfo {
        RunInfo {
            lease_expires_at: self
                .lease_expires_at
                .filter(|_| self.info.status == RunStatus::Running),
            ..self.info.clone()
        }
    }
}

fn is_live(status: RunStatus) -> bool {
    matches!(status, RunStatus::Pending | RunStatus::Running)
}

impl JobState {
    /// The runs `event` enqueued, oldest first.
    pub(super) fn runs_of_event(&self, event: Uuid) -> Vec<RunInfo> {
        let mut runs: Vec<RunInfo> = self
            .runs
            .values()
            .filter(|run| run.info.event_id == Some(event))
            .map(MemRun::view)
            .collect();
        runs.sort_by_key(|run| (run.created_at, run.id));
        runs
    }

    pub(super) fn live_run(&self, job: &str, key: &str) -> Option<Uuid> {
        self.runs
            .values()
            .find(|r| {
                r.info.job == job
                    && r.info.dedupe_key.as_deref() == Some(key)
                    && is_live(r.info.status)
            })
            .map(|r| r.info.id)
    }

    /// Inserts `run`, or returns the run it collapses onto: the child its parent spawned under
    /// the same key, or the live run with the same dedupe key.
    pub(super) fn insert(&mut self, run: &NewRun, now: DateTime<Utc>) -> Uuid {
        if let (Some(parent), Some(key)) = (run.parent_id, run.child_key.as_deref())
            && let Some(spawned) = self
                .runs
                .values()
                .find(|r| r.info.parent_id == Some(parent) && r.child_key.as_deref() == Some(key))
        {
            return spawned.info.id;
        }
        if let Some(live) = run
            .dedupe_key
            .as_deref()
            .and_then(|key| self.live_run(run.job, key))
        {
            return live;
        }
        self.runs.insert(
            run.id,
            MemRun {
                info: RunInfo {
                    id: run.id,
                    job: run.job.to_owned(),
                    pool: run.pool.to_owned(),
                    status: RunStatus::Pending,
                    input: serde_json::from_str(&run.input).unwrap_or_default(),
                    output: None,
                    attempt: 0,
                    max_attempts: run.max_attempts,
                    run_at: run.run_at.unwrap_or(now),
                    dedupe_key: run.dedupe_key.clone(),
                    scope_type: run.scope_type.clone(),
                    scope_id: run.scope_id.clone(),
                    event_id: run.event_id,
                    parent_id: run.parent_id,
                    root_id: run.root_id,
                    last_error: None,
                    created_at: now,
                    finished_at: None,
                    tenant_id: run.tenant_id.clone(),
                    lease_expires_at: None,
                    trace: run.trace.clone(),
                },
                lease_owner: None,
                lease_expires_at: None,
                child_key: run.child_key.clone(),
            },
        );
        run.id
    }

    fn claim(
        &mut self,
        pool: &str,
        accept: impl Fn(&str) -> bool,
        claim: Claim<'_>,
        limit: usize,
    ) -> Vec<ClaimedRun> {
        let now = claim.now;
        let mut due: Vec<(DateTime<Utc>, Uuid)> = self
            .runs
            .values()
            .filter(|r| {
                r.info.pool == pool
                    && r.info.status == RunStatus::Pending
                    && r.info.run_at <= now
                    && accept(&r.info.job)
            })
            .map(|r| (r.info.run_at, r.info.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let until = claim.until();
        due.into_iter()
            .filter_map(|(_, id)| {
                let run = self.runs.get_mut(&id)?;
                run.info.status = RunStatus::Running;
                run.info.attempt += 1;
                run.lease_owner = Some(claim.owner.to_owned());
                run.lease_expires_at = Some(until);
                Some(ClaimedRun {
                    id,
                    job: run.info.job.clone(),
                    input: run.info.input.to_string(),
                    attempt: run.info.attempt,
                    max_attempts: run.info.max_attempts,
                    root_id: run.info.root_id,
                    tenant_id: run.info.tenant_id.clone(),
                    trace: run.info.trace.clone(),
                })
            })
            .collect()
    }

    fn holds(&self, id: Uuid, attempt: u32) -> bool {
        self.runs
            .get(&id)
            .is_some_and(|r| r.info.status == RunStatus::Running && r.info.attempt == attempt)
    }

    fn tree(&self, root: Uuid) -> Vec<Uuid> {
        let mut tree = vec![root];
        let mut next = 0;
        while next < tree.len() {
            let parent = tree[next];
            tree.extend(
                self.runs
                    .values()
                    .filter(|r| r.info.parent_id == Some(parent))
                    .map(|r| r.info.id),
            );
            next += 1;
        }
        tree
    }
}

impl JobStore for MemoryBackend {
    fn insert_run_now<'a>(
        &'a self,
        run: &'a NewRun,
        parent_attempt: Option<u32>,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Uuid>> {
        Box::pin(async move {
            let mut state = self.jobs();
            if let (Some(parent), Some(attempt)) = (run.parent_id, parent_attempt)
                && !state.holds(parent, attempt)
            {
                return Ok(None);
            }
            let id = state.insert(run, now);
            drop(state);
            self.wakes().jobs.notify();
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
            Ok(self
                .jobs()
                .claim(pool, |job| jobs.contains(&job), claim, claim.limit as usize))
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
            let mut state = self.jobs();
            let running = state
                .runs
                .values()
                .filter(|r| r.info.job == job && r.info.status == RunStatus::Running)
                .count();
            let room = (cap as usize)
                .saturating_sub(running)
                .min(claim.limit as usize);
            Ok(state.claim(pool, |name| name == job, claim, room))
        })
    }

    fn heartbeat<'a>(
        &'a self,
        runs: &'a [(Uuid, u32)],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            if self.heartbeat_fails() {
                return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
            }
            let mut state = self.jobs();
            Ok(runs
                .iter()
                .filter(|(id, attempt)| state.holds(*id, *attempt))
                .map(|(id, _)| *id)
                .collect::<Vec<_>>()
                .into_iter()
                .inspect(|id| {
                    if let Some(run) = state.runs.get_mut(id) {
                        run.lease_expires_at = Some(until);
                    }
                })
                .collect())
        })
    }

    fn finish_runs<'a>(&'a self, results: &'a [AttemptResult], now: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut state = self.jobs();
            let mut recorded = 0;
            for result in results {
                if !state.holds(result.id, result.attempt) {
                    continue;
                }
                if let Some(run) = state.runs.get_mut(&result.id) {
                    let status = result.outcome.status();
                    run.info.status = status;
                    run.info.output = result
                        .outcome
                        .output()
                        .and_then(|output| serde_json::from_str(output).ok());
                    run.info.last_error = result.outcome.error().map(str::to_owned);
                    if let Some(at) = result.outcome.retry_at() {
                        run.info.run_at = at;
                    }
                    run.info.finished_at = status.is_final().then_some(now);
                    run.lease_owner = None;
                    run.lease_expires_at = None;
                    recorded += 1;
                }
            }
            Ok(recorded)
        })
    }

    fn expired_runs(&self, now: DateTime<Utc>, limit: u32) -> Fut<'_, Vec<ExpiredRun>> {
        Box::pin(async move {
            let jobs = self.jobs();
            let mut expired: Vec<(DateTime<Utc>, ExpiredRun)> = jobs
                .runs
                .values()
                .filter(|run| run.info.status == RunStatus::Running)
                .filter_map(|run| {
                    let at = run.lease_expires_at.filter(|at| *at < now)?;
                    Some((
                        at,
                        ExpiredRun {
                            id: run.info.id,
                            attempt: run.info.attempt,
                            max_attempts: run.info.max_attempts,
                        },
                    ))
                })
                .collect();
            expired.sort_by_key(|(at, _)| *at);
            Ok(expired
                .into_iter()
                .take(limit as usize)
                .map(|(_, run)| run)
                .collect())
        })
    }

    fn write_rescues<'a>(
        &'a self,
        rescues: &'a [Rescue],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let mut jobs = self.jobs();
            let mut written = Vec::new();
            for rescue in rescues {
                let Some(run) = jobs.runs.get_mut(&rescue.id) else {
                    continue;
                };
                let still_expired = run.info.status == RunStatus::Running
                    && run.info.attempt == rescue.attempt
                    && run.lease_expires_at.is_some_and(|at| at < now);
                if !still_expired {
                    continue;
                }
                run.lease_owner = None;
                run.lease_expires_at = None;
                run.info.status = rescue.status;
                run.info.run_at = now;
                run.info.finished_at = rescue.status.is_final().then_some(now);
                run.info.last_error = Some(rescue.error.clone());
                written.push(rescue.id);
            }
            Ok(written)
        })
    }

    fn release_runs<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut released = 0;
            for run in self.jobs().runs.values_mut() {
                if run.info.status == RunStatus::Running
                    && run.lease_owner.as_deref() == Some(owner)
                {
                    run.info.status = RunStatus::Pending;
                    run.info.attempt -= 1;
                    run.lease_owner = None;
                    run.lease_expires_at = None;
                    released += 1;
                }
            }
            Ok(released)
        })
    }

    fn step_output<'a>(&'a self, run: Uuid, step: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move { Ok(self.jobs().steps.get(&(run, step.to_owned())).cloned()) })
    }

    fn save_step<'a>(
        &'a self,
        run: Uuid,
        attempt: u32,
        step: &'a str,
        output: &'a str,
        _now: DateTime<Utc>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut state = self.jobs();
            if !state.holds(run, attempt) {
                return Ok(false);
            }
            state
                .steps
                .entry((run, step.to_owned()))
                .or_insert_with(|| output.to_owned());
            Ok(true)
        })
    }

    fn cancel_tree(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut state = self.jobs();
            let mut canceled = 0;
            for id in state.tree(run) {
                if let Some(run) = state.runs.get_mut(&id)
                    && is_live(run.info.status)
                {
                    run.info.status = RunStatus::Canceled;
                    run.info.finished_at = Some(now);
                    run.lease_owner = None;
                    run.lease_expires_at = None;
                    canceled += 1;
                }
            }
            Ok(canceled)
        })
    }

    fn retry_run(&self, run: Uuid, now: DateTime<Utc>) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut state = self.jobs();
            let Some(run) = state.runs.get_mut(&run) else {
                return Ok(false);
            };
            if !matches!(
                run.info.status,
                RunStatus::Failed | RunStatus::TimedOut | RunStatus::Canceled
            ) {
                return Ok(false);
            }
            run.info.status = RunStatus::Pending;
            run.info.attempt = 0;
            run.info.run_at = now;
            run.info.finished_at = None;
            run.info.output = None;
            drop(state);
            self.wakes().jobs.notify();
            Ok(true)
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> Fut<'a, Vec<RunInfo>> {
        Box::pin(async move {
            let state = self.jobs();
            Ok(state
                .runs
                .values()
                .rev()
                .filter(|run| {
                    let info = &run.info;
                    filter.status.is_none_or(|status| info.status == status)
                        && filter.job.as_ref().is_none_or(|job| &info.job == job)
                        && filter.scope.as_ref().is_none_or(|(scope_type, scope_id)| {
                            info.scope_type.as_ref() == Some(scope_type)
                                && info.scope_id.as_ref() == Some(scope_id)
                        })
                        && filter.root.is_none_or(|root| info.root_id == root)
                        && filter
                            .tenant
                            .as_ref()
                            .is_none_or(|tenant| info.tenant_id.as_ref() == Some(tenant))
                })
                .take(filter.limit as usize)
                .map(MemRun::view)
                .collect())
        })
    }

    fn prune_runs(&self, status: RunStatus, finished_before: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut jobs = self.jobs();
            let live_roots: std::collections::HashSet<Uuid> = jobs
                .runs
                .values()
                .filter(|run| !run.info.status.is_final())
                .map(|run| run.info.root_id)
                .collect();
            let doomed: Vec<Uuid> = jobs
                .runs
                .values()
                .filter(|run| {
                    run.info.status == status
                        && run.info.finished_at.is_some_and(|at| at < finished_before)
                        && !live_roots.contains(&run.info.root_id)
                })
                .map(|run| run.info.id)
                .collect();
            for id in &doomed {
                jobs.runs.remove(id);
            }
            jobs.steps.retain(|(run, _), _| !doomed.contains(run));
            Ok(doomed.len() as u64)
        })
    }

    fn due_runs(&self, due_before: DateTime<Utc>) -> Fut<'_, Vec<DueRuns>> {
        Box::pin(async move {
            let mut due: BTreeMap<(String, String), DueRuns> = BTreeMap::new();
            for run in self.jobs().runs.values() {
                if run.info.status != RunStatus::Pending || run.info.run_at > due_before {
                    continue;
                }
                let key = (run.info.pool.clone(), run.info.job.clone());
                let entry = due.entry(key).or_insert_with(|| DueRuns {
                    pool: run.info.pool.clone(),
                    job: run.info.job.clone(),
                    runs: 0,
                    oldest_due_at: run.info.run_at,
                });
                entry.runs += 1;
                entry.oldest_due_at = entry.oldest_due_at.min(run.info.run_at);
            }
            Ok(due.into_values().collect())
        })
    }

    fn job_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<JobStats>> {
        Box::pin(async move {
            let mut stats: BTreeMap<(String, String), JobStats> = BTreeMap::new();
            for run in self.jobs().runs.values() {
                let info = &run.info;
                let entry = stats
                    .entry((info.pool.clone(), info.job.clone()))
                    .or_insert_with(|| JobStats {
                        pool: info.pool.clone(),
                        job: info.job.clone(),
                        due: 0,
                        scheduled: 0,
                        running: 0,
                        completed: 0,
                        failed: 0,
                        oldest_due_at: None,
                        earliest_lease_expiry: None,
                    });
                let earliest = |current: Option<DateTime<Utc>>, at: DateTime<Utc>| {
                    Some(current.map_or(at, |current| current.min(at)))
                };
                match info.status {
                    RunStatus::Pending if info.run_at <= now => {
                        entry.due += 1;
                        entry.oldest_due_at = earliest(entry.oldest_due_at, info.run_at);
                    }
                    RunStatus::Pending => entry.scheduled += 1,
                    RunStatus::Running => {
                        entry.running += 1;
                        if let Some(lease) = run.lease_expires_at {
                            entry.earliest_lease_expiry =
                                earliest(entry.earliest_lease_expiry, lease);
                        }
                    }
                    RunStatus::Completed => entry.completed += 1,
                    RunStatus::Failed | RunStatus::TimedOut | RunStatus::Canceled => {
                        entry.failed += 1;
                    }
                }
            }
            Ok(stats.into_values().collect())
        })
    }

    fn get_run(&self, run: Uuid) -> Fut<'_, Option<RunInfo>> {
        Box::pin(async move { Ok::<_, StoreError>(self.jobs().runs.get(&run).map(MemRun::view)) })
    }
}

//! The producer: per pool, claims due runs while the pool has room and hands them to the
//! executor; sleeps until woken by an enqueue, a finished attempt, or the poll interval.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use super::Shared;
use super::executor::start_attempt;
use crate::outage::Outage;
use crate::store::{AttemptResult, Backend, Claim, ClaimedRun, StoreError};

pub(super) async fn pool_lane<B: Backend>(
    shared: Arc<Shared<B>>,
    pool: String,
    results: mpsc::UnboundedSender<AttemptResult>,
    mut stopped: watch::Receiver<bool>,
) {
    let plan = PoolPlan::new(&shared, pool);
    let capacity = plan.capacity;
    let mut woken = shared.store.wakes().jobs.subscribe();
    let finished = Arc::new(Notify::new());
    let mut running: JoinSet<()> = JoinSet::new();
    let mut outage = Outage::new("job claims");
    while !*stopped.borrow() {
        while running.try_join_next().is_some() {}
        let room = capacity.saturating_sub(running.len()) as u32;
        let mut claimed_any = false;
        if room > 0 && shared.healthy.load(Ordering::Relaxed) {
            woken.borrow_and_update();
            let limit = room.min(shared.config.batch_size);
            match plan.claim(&shared, limit).await {
                Ok(runs) => {
                    outage.succeeded(&plan.pool);
                    claimed_any = !runs.is_empty();
                    for run in runs {
                        start_attempt(&shared, &mut running, run, &results, &finished);
                    }
                }
                Err(error) => {
                    outage.failed(&plan.pool, &error);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        if claimed_any && running.len() < capacity {
            continue;
        }
        tokio::select! {
            _ = woken.changed(), if running.len() < capacity => {}
            _ = finished.notified() => {}
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = stopped.changed() => {}
        }
    }
    // Shutdown: let running attempts finish, up to the timeout; stop the rest.
    let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(pool = %plan.pool, abandoned = running.len(), "shutdown timeout: stopping running jobs");
        running.shutdown().await;
    }
}

/// What a worker claims in one pool: how many runs at once, and which jobs, with or without a
/// cap across workers.
pub(super) struct PoolPlan {
    pub(super) pool: String,
    /// Runs of the pool executing at once in this worker.
    pub(super) capacity: usize,
    uncapped: Vec<&'static str>,
    capped: Vec<(&'static str, u32)>,
}

impl PoolPlan {
    pub(super) fn new<B: Backend>(shared: &Shared<B>, pool: String) -> Self {
        let capacity = shared
            .config
            .concurrency
            .get(&pool)
            .copied()
            .unwrap_or(shared.config.default_concurrency);
        let uncapped = shared
            .jobs
            .iter()
            .filter(|(_, runner)| runner.pool == pool && runner.concurrency.is_none())
            .map(|(name, _)| *name)
            .collect();
        let capped = shared
            .jobs
            .iter()
            .filter(|(_, runner)| runner.pool == pool)
            .filter_map(|(name, runner)| Some((*name, runner.concurrency?)))
            .collect();
        Self {
            pool,
            capacity,
            uncapped,
            capped,
        }
    }

    /// Claims up to `limit` due runs of the pool's jobs, the capped ones within their caps.
    pub(super) async fn claim<B: Backend>(
        &self,
        shared: &Shared<B>,
        limit: u32,
    ) -> Result<Vec<ClaimedRun>, StoreError> {
        let backend = shared.store.backend();
        let pool = &self.pool;
        let claim = |limit| Claim {
            owner: shared.owner.as_str(),
            limit,
            lease: shared.config.lease,
            now: shared.store.now(),
        };
        let mut runs = if self.uncapped.is_empty() {
            Vec::new()
        } else {
            backend
                .claim_runs(pool, &self.uncapped, claim(limit))
                .await?
        };
        for &(job, cap) in &self.capped {
            let room = limit.saturating_sub(runs.len() as u32);
            if room == 0 {
                break;
            }
            runs.extend(backend.claim_capped(pool, job, cap, claim(room)).await?);
        }
        Ok(runs)
    }
}

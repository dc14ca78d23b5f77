//! Running a worker until nothing is due, in the calling task: what
//! [`super::Worker::run_until_idle`] does with the service's own claim, execution, heartbeat,
//! rescue and recording code.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::executor::start_attempt;
use super::producer::PoolPlan;
use super::{Shared, completer, heartbeat, release, rescuer};
use crate::store::{AttemptOutcome, AttemptResult, Backend, ClaimedRun, StoreError};

/// What [`crate::Worker::run_until_idle`] did, counted per attempt: a run that failed twice and
/// then completed counts two `retried` and one `completed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Attempts that completed their run.
    pub completed: u64,
    /// Attempts that failed with attempts left: their run was scheduled again.
    pub retried: u64,
    /// Attempts that failed their run's last attempt.
    pub failed: u64,
    /// Attempts that ran out of their job's timeout (which ends the run).
    pub timed_out: u64,
    /// Runs this call left pending for a retry due later than its last look: not waited for;
    /// a later call runs them once due.
    pub retries_scheduled: u64,
    /// Attempts whose run stopped being theirs while they ran (canceled, or rescued after a
    /// lost lease): stopped by the heartbeat, or their result discarded. Not counted above.
    pub fenced: u64,
}

/// What the call counts as it goes.
#[derive(Default)]
struct Tally {
    summary: WorkerSummary,
    /// Runs whose latest attempt, recorded by this call, scheduled a retry.
    retrying: HashSet<Uuid>,
}

impl Tally {
    fn attempt(&mut self, result: &AttemptResult, recorded: bool) {
        let summary = &mut self.summary;
        if !recorded {
            summary.fenced += 1;
            self.retrying.remove(&result.id);
            return;
        }
        let count = match result.outcome {
            AttemptOutcome::Completed { .. } => &mut summary.completed,
            AttemptOutcome::Retry { .. } => &mut summary.retried,
            AttemptOutcome::Failed { .. } => &mut summary.failed,
            AttemptOutcome::TimedOut { .. } => &mut summary.timed_out,
        };
        *count += 1;
        if matches!(result.outcome, AttemptOutcome::Retry { .. }) {
            self.retrying.insert(result.id);
        } else {
            self.retrying.remove(&result.id);
        }
    }

    fn finish(mut self) -> WorkerSummary {
        self.summary.retries_scheduled = self.retrying.len() as u64;
        self.summary
    }
}

pub(super) async fn run<B: Backend>(
    shared: Arc<Shared<B>>,
    pools: Vec<String>,
) -> Result<WorkerSummary, StoreError> {
    let plans: Vec<PoolPlan> = pools
        .into_iter()
        .map(|pool| PoolPlan::new(&shared, pool))
        .collect();
    let mut tally = Tally::default();
    // An attempt may outlive its lease (a job's timeout is longer than the lease by default):
    // the heartbeat beats beside the loop, in this task, and stops the attempts whose run is no
    // longer theirs, as in the service.
    let worked = tokio::select! {
        worked = until_idle(&shared, &plans, &mut tally) => worked,
        never = heartbeat::heartbeat(shared.clone()) => match never {},
    };
    release(&shared).await;
    worked.map(|()| tally.finish())
}

/// Claims and runs due runs, pool after pool, until one round over every pool claims nothing.
async fn until_idle<B: Backend>(
    shared: &Arc<Shared<B>>,
    plans: &[PoolPlan],
    tally: &mut Tally,
) -> Result<(), StoreError> {
    loop {
        // A run whose worker died is due again once rescued, as the service's rescuer would.
        rescuer::rescue_expired(shared).await?;
        let mut found = false;
        for plan in plans {
            // At most the pool's concurrency at once, as the service runs them.
            let limit = u32::try_from(plan.capacity)
                .unwrap_or(u32::MAX)
                .min(shared.config.batch_size);
            loop {
                let runs = plan.claim(shared, limit).await?;
                if runs.is_empty() {
                    break;
                }
                found = true;
                run_batch(shared, runs, tally).await?;
            }
        }
        if !found {
            return Ok(());
        }
    }
}

/// Runs claimed runs concurrently, as the service's executor does, and records each result.
async fn run_batch<B: Backend>(
    shared: &Arc<Shared<B>>,
    runs: Vec<ClaimedRun>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let (results, mut ended) = mpsc::unbounded_channel();
    // The service's producer waits on this for room in the pool; here the batch is awaited
    // whole instead.
    let finished = Arc::new(Notify::new());
    let mut running = JoinSet::new();
    let started = runs.len() as u64;
    for run in runs {
        start_attempt(shared, &mut running, run, &results, &finished);
    }
    drop(results);
    while let Some(joined) = running.join_next().await {
        // Panics of the job are caught inside the attempt; an error here is an attempt the
        // heartbeat stopped, which sends no result.
        if let Err(error) = joined
            && error.is_panic()
        {
            tracing::error!(%error, "job attempt task panicked");
        }
    }
    let mut reported = 0;
    while let Some(result) = ended.recv().await {
        reported += 1;
        // One write per result, where the service's completer writes a batch: a fenced result
        // is then known by its run, and the counts stay exact.
        let recorded = completer::record(shared, std::slice::from_ref(&result)).await?;
        tally.attempt(&result, recorded > 0);
    }
    tally.summary.fenced += started.saturating_sub(reported);
    Ok(())
}

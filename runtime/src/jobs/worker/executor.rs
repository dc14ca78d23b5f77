//! The executor: runs one attempt under its timeout, catches panics, and decides what the
//! attempt's end means for the run (completed, retry, failed, timed out).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{InFlight, Shared};
use crate::clock::later;
use crate::jobs::JobContext;
use crate::jobs::set::{RunFailure, Runner};
use crate::service::panic_message;
use crate::store::{AttemptOutcome, AttemptResult, Backend, ClaimedRun, JobStore};

pub(super) fn start_attempt<B: Backend>(
    shared: &Arc<Shared<B>>,
    running: &mut JoinSet<()>,
    run: ClaimedRun,
    results: &mpsc::UnboundedSender<AttemptResult>,
    finished: &Arc<Notify>,
) {
    let Some(runner) = shared.jobs.get(run.job.as_str()).cloned() else {
        return;
    };
    let store: Arc<dyn JobStore> = Arc::new(shared.store.backend().clone());
    let ctx = JobContext {
        run_id: run.id,
        root_id: run.root_id,
        attempt: run.attempt,
        tenant_id: run.tenant_id.clone(),
        store,
        clock: shared.store.clock(),
        states: shared.states.clone(),
    };
    let span = tracing::info_span!(
        "herald.job",
        job = %run.job,
        run.id = %run.id,
        attempt = run.attempt,
    );
    if let Some(trace) = &run.trace {
        trace.set_as_parent_of(&span);
    }
    let (shared_for_task, results, finished) = (shared.clone(), results.clone(), finished.clone());
    let (id, attempt) = (run.id, run.attempt);
    // Registered before the attempt starts, so that the heartbeat covers it from its first
    // instant; the task removes itself when it ends.
    let mut in_flight = shared.in_flight();
    let abort = running.spawn(
        async move {
            let outcome = execute(&runner, &shared_for_task, ctx, run).await;
            let _ = results.send(AttemptResult {
                id,
                attempt,
                outcome,
            });
            shared_for_task.in_flight().remove(&id);
            finished.notify_one();
        }
        .instrument(span),
    );
    in_flight.insert(id, InFlight { attempt, abort });
}

async fn execute<B: Backend>(
    runner: &Runner,
    shared: &Shared<B>,
    ctx: JobContext,
    run: ClaimedRun,
) -> AttemptOutcome {
    crate::metrics::job_started(&run.job);
    let started = std::time::Instant::now();
    let job = run.job.clone();
    let outcome = decide(runner, shared, ctx, run).await;
    let label = match &outcome {
        AttemptOutcome::Completed { .. } => "completed",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::Failed { .. } => "failed",
        AttemptOutcome::TimedOut { .. } => "timed_out",
    };
    crate::metrics::job_finished(&job, label, started.elapsed());
    outcome
}

/// Runs the attempt and says what its end means for the run.
async fn decide<B: Backend>(
    runner: &Runner,
    shared: &Shared<B>,
    ctx: JobContext,
    run: ClaimedRun,
) -> AttemptOutcome {
    let attempt = AssertUnwindSafe((runner.run)(ctx, run.input)).catch_unwind();
    let error = match tokio::time::timeout(runner.timeout, attempt).await {
        Ok(Ok(Ok(output))) => {
            tracing::debug!("job completed");
            return AttemptOutcome::Completed { output };
        }
        Ok(Ok(Err(RunFailure::Failed(error)))) => error,
        Ok(Ok(Err(RunFailure::Undecodable(error)))) => {
            tracing::error!(%error, "job input cannot be decoded");
            return AttemptOutcome::Failed { error };
        }
        Ok(Err(panic)) => format!("job panicked: {}", panic_message(&panic)),
        Err(_) => {
            let error = format!("timed out after {:?}", runner.timeout);
            tracing::warn!(%error, "job timed out");
            return AttemptOutcome::TimedOut { error };
        }
    };
    if run.attempt >= run.max_attempts {
        tracing::error!(%error, "job failed on its last attempt");
        AttemptOutcome::Failed { error }
    } else {
        let delay = shared.config.retry.delay(runner.retry.backoff, run.attempt);
        tracing::warn!(%error, retry_in = ?delay, "job failed; will retry");
        AttemptOutcome::Retry {
            at: later(shared.store.now(), delay),
            error,
        }
    }
}

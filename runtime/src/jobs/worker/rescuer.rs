//! The rescuer: gives runs whose lease expired (their worker died or stalled) back to the
//! queue, or fails them when that was their last attempt. The decision is made here, once,
//! for every backend; the backend only lists expired runs and writes the decisions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::ops::RunStatus;
use crate::outage::Outage;
use crate::store::{Backend, ExpiredRun, Rescue, Rescued, Store, StoreError};

/// Expired runs handled per round trip.
const RESCUE_BATCH: u32 = 500;

/// What becomes of a run whose lease expired during `attempt`: another attempt if it has one
/// left, otherwise it fails, with an error that says why.
pub(crate) fn decide(run: &ExpiredRun) -> Rescue {
    let last = run.attempt >= run.max_attempts;
    Rescue {
        id: run.id,
        attempt: run.attempt,
        status: if last {
            RunStatus::Failed
        } else {
            RunStatus::Pending
        },
        error: if last {
            "lease expired on the last attempt: the worker crashed or stalled".to_owned()
        } else {
            "lease expired: the worker crashed or stalled".to_owned()
        },
    }
}

/// Lists the expired runs, decides, writes, until none is left. Runs another worker rescued
/// first are not counted.
async fn rescue_all<B: Backend>(store: &Store<B>) -> Result<Rescued, StoreError> {
    let now = store.now();
    let mut rescued = Rescued::default();
    loop {
        let expired = store.backend().expired_runs(now, RESCUE_BATCH).await?;
        if expired.is_empty() {
            return Ok(rescued);
        }
        let rescues: Vec<Rescue> = expired.iter().map(decide).collect();
        let written = store.backend().write_rescues(&rescues, now).await?;
        let mut batch = Rescued::default();
        for rescue in rescues.iter().filter(|rescue| written.contains(&rescue.id)) {
            match rescue.status {
                RunStatus::Failed => batch.failed += 1,
                _ => batch.retried += 1,
            }
        }
        crate::metrics::runs_rescued(batch.retried, batch.failed);
        rescued.retried += batch.retried;
        rescued.failed += batch.failed;
        if expired.len() < RESCUE_BATCH as usize || written.is_empty() {
            return Ok(rescued);
        }
    }
}

/// Rescues runs whose lease expired, whichever worker held them, about once a second.
pub(super) async fn rescue<B: Backend>(shared: Arc<Shared<B>>, mut stopped: watch::Receiver<bool>) {
    let interval = shared
        .config
        .poll_interval
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    let mut outage = Outage::new("job rescuer");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        match rescue_expired(&shared).await {
            Ok(_) => outage.succeeded(&"rescuing expired runs"),
            Err(error) => outage.failed(&"rescuing expired runs", &error),
        }
    }
}

/// One pass of the rescuer, shared with [`super::Worker::run_until_idle`]: expired runs go back
/// to pending (or fail, after their last attempt), and the workers are woken to claim them.
pub(super) async fn rescue_expired<B: Backend>(shared: &Shared<B>) -> Result<Rescued, StoreError> {
    let rescued = rescue_all(&shared.store).await?;
    if rescued.retried + rescued.failed > 0 {
        tracing::warn!(
            retried = rescued.retried,
            failed = rescued.failed,
            "rescued runs whose lease expired"
        );
        shared.store.wakes().jobs.notify();
    }
    Ok(rescued)
}

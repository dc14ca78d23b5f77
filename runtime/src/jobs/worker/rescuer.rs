//! The rescuer: gives runs whose lease expired (their worker died or stalled) back to the
//! queue, or fails them when that was their last attempt. The decision is made here, once,
//! for every backend; the backend only lists expired runs and writes the decisions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::ops::RunStatus;
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

/// One round: lists the expired runs, decides, writes. Runs another worker rescued first are
/// not counted.
pub(crate) async fn rescue_expired<B: Backend>(store: &Store<B>) -> Result<Rescued, StoreError> {
    let now = store.now();
    let mut rescued = Rescued::default();
    loop {
        let expired = store.backend().expired_runs(now, RESCUE_BATCH).await?;
        if expired.is_empty() {
            return Ok(rescued);
        }
        let rescues: Vec<Rescue> = expired.iter().map(decide).collect();
        let written = store.backend().write_rescues(&rescues, now).await?;
        for rescue in rescues.iter().filter(|rescue| written.contains(&rescue.id)) {
            match rescue.status {
                RunStatus::Failed => rescued.failed += 1,
                _ => rescued.retried += 1,
            }
        }
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
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        match rescue_expired(&shared.store).await {
            Ok(rescued) if rescued.retried + rescued.failed > 0 => {
                tracing::warn!(
                    retried = rescued.retried,
                    failed = rescued.failed,
                    "rescued runs whose lease expired"
                );
                shared.store.wakes().jobs.notify();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "rescuing expired runs failed"),
        }
    }
}

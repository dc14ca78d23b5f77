//! The rescuer: gives runs whose lease expired (their worker died or stalled) back to the
//! queue, or fails them when that was their last attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::store::{Backend, Rescued, StoreError};

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
        if let Err(error) = rescue_expired(&shared).await {
            tracing::warn!(%error, "rescuing expired runs failed");
        }
    }
}

/// One pass of the rescuer, shared with [`super::Worker::run_until_idle`]: expired runs go back
/// to pending (or fail, after their last attempt), and the workers are woken to claim them.
pub(super) async fn rescue_expired<B: Backend>(shared: &Shared<B>) -> Result<Rescued, StoreError> {
    let rescued = shared.store.backend().rescue_expired().await?;
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

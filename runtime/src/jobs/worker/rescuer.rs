//! The rescuer: gives runs whose lease expired (their worker died or stalled) back to the
//! queue, or fails them when that was their last attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::store::Backend;

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
        match shared.store.backend().rescue_expired().await {
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

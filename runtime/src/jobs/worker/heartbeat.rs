//! The heartbeat: renews the leases of the attempts in flight, and stops those that are no
//! longer theirs (canceled, or rescued by another worker).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::Shared;
use crate::outage::Outage;
use crate::store::Backend;

/// Beats until dropped (or its task aborted): it does not watch for shutdown, so that attempts
/// finishing within the shutdown timeout keep their leases.
pub(super) async fn heartbeat<B: Backend>(shared: Arc<Shared<B>>) -> Infallible {
    let mut outage = Outage::new("job heartbeat");
    loop {
        tokio::time::sleep(shared.config.heartbeat).await;
        let held: Vec<(Uuid, u32)> = shared
            .in_flight()
            .iter()
            .map(|(id, flight)| (*id, flight.attempt))
            .collect();
        if held.is_empty() {
            shared.healthy.store(true, Ordering::Relaxed);
            continue;
        }
        match shared
            .store
            .backend()
            .heartbeat(
                &held,
                crate::clock::later(shared.store.now(), shared.config.lease),
            )
            .await
        {
            Ok(ours) => {
                outage.succeeded(&"leases renewed; claiming again");
                shared.healthy.store(true, Ordering::Relaxed);
                let mut in_flight = shared.in_flight();
                for (id, _) in held {
                    if !ours.contains(&id)
                        && let Some(flight) = in_flight.remove(&id)
                    {
                        // Canceled, or rescued by another worker: this attempt is fenced.
                        tracing::info!(run = %id, "run no longer ours (canceled or rescued); stopping it");
                        flight.abort.abort();
                    }
                }
            }
            Err(error) => {
                outage.failed(
                    &"heartbeat failed: claiming no new runs until it succeeds",
                    &error,
                );
                shared.healthy.store(false, Ordering::Relaxed);
            }
        }
    }
}

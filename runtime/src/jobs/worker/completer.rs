//! The completer: records ended attempts in batches, and keeps them until the write succeeds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use crate::outage::Outage;
use crate::store::{AttemptResult, Backend, StoreError};

/// Writes ended attempts in batches: whatever has arrived while the previous write ran.
pub(super) async fn record_results<B: Backend>(
    shared: Arc<Shared<B>>,
    mut completions: mpsc::UnboundedReceiver<AttemptResult>,
) {
    let mut batch = Vec::new();
    let mut outage = Outage::new("job results");
    while completions.recv_many(&mut batch, 1000).await > 0 {
        let mut pause = Duration::from_millis(50);
        loop {
            match record(&shared, &batch).await {
                Ok(_) => {
                    outage.succeeded(&"results recorded");
                    break;
                }
                Err(error) => {
                    // Keep the results and try again: they are lost only if the process dies,
                    // and then the leases expire and the runs are rescued.
                    outage.failed(&"recording job results failed", &error);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// Records ended attempts in one write; returns how many still held their run (the others were
/// canceled or rescued meanwhile, and their results are discarded).
pub(super) async fn record<B: Backend>(
    shared: &Shared<B>,
    results: &[AttemptResult],
) -> Result<u64, StoreError> {
    let recorded = shared
        .store
        .backend()
        .finish_runs(results, shared.store.now())
        .await?;
    if recorded < results.len() as u64 {
        tracing::warn!(
            fenced = results.len() as u64 - recorded,
            "results of attempts that no longer held their run were discarded"
        );
    }
    Ok(recorded)
}

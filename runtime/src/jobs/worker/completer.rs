//! The completer: records ended attempts in batches, and keeps them until the write succeeds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use crate::store::{AttemptResult, Backend};

/// Writes ended attempts in batches: whatever has arrived while the previous write ran.
pub(super) async fn record_results<B: Backend>(
    shared: Arc<Shared<B>>,
    mut completions: mpsc::UnboundedReceiver<AttemptResult>,
) {
    let mut batch = Vec::new();
    while completions.recv_many(&mut batch, 1000).await > 0 {
        let mut pause = Duration::from_millis(50);
        loop {
            match shared
                .store
                .backend()
                .finish_runs(&batch, shared.store.now())
                .await
            {
                Ok(recorded) => {
                    if recorded < batch.len() as u64 {
                        tracing::warn!(
                            fenced = batch.len() as u64 - recorded,
                            "results of attempts that no longer held their run were discarded"
                        );
                    }
                    break;
                }
                Err(error) => {
                    // Keep the results and try again: they are lost only if the process dies,
                    // and then the leases expire and the runs are rescued.
                    tracing::warn!(%error, "recording job results failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

//! The watchdog: says when runs of a job this worker does not know have been waiting in its
//! pools for longer than they should (a job left out of `EventBus::with_jobs`, or a rolling
//! deploy where another release enqueues a job this one lacks). Such runs stay pending —
//! another worker may know them — but never silently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::ops::DueRuns;
use crate::outage::Outage;
use crate::store::{Backend, StoreError};

/// Runs waiting longer than `unclaimed_after` in `pools` whose job this worker does not know.
pub(super) async fn unknown_jobs<B: Backend>(
    shared: &Shared<B>,
    pools: &[String],
) -> Result<Vec<DueRuns>, StoreError> {
    let due = shared
        .store
        .jobs()
        .due(shared.config.unclaimed_after)
        .await?;
    Ok(due
        .into_iter()
        .filter(|due| pools.contains(&due.pool) && !shared.jobs.contains_key(due.job.as_str()))
        .collect())
}

/// Checks every `unclaimed_after` and warns once per job while its runs keep waiting (again
/// when more of them wait than at the last warning).
pub(super) async fn watch_unknown_jobs<B: Backend>(
    shared: Arc<Shared<B>>,
    pools: Vec<String>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = shared
        .config
        .unclaimed_after
        .max(Duration::from_millis(100));
    let mut warned: HashMap<(String, String), u64> = HashMap::new();
    let mut outage = Outage::new("job watchdog");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        match unknown_jobs(&shared, &pools).await {
            Ok(unknown) => {
                outage.succeeded(&"looking for runs of unknown jobs");
                warned.retain(|key, _| {
                    unknown
                        .iter()
                        .any(|due| (&due.pool, &due.job) == (&key.0, &key.1))
                });
                for due in unknown {
                    let key = (due.pool.clone(), due.job.clone());
                    if warned.get(&key).is_some_and(|&runs| runs >= due.runs) {
                        continue;
                    }
                    tracing::warn!(
                        pool = %due.pool,
                        job = %due.job,
                        runs = due.runs,
                        oldest_due_at = %due.oldest_due_at,
                        "runs of a job this worker does not know are waiting in its pool: \
                         register the job with `EventBus::with_jobs` in the process that runs \
                         this pool, or start a worker that has it"
                    );
                    warned.insert(key, due.runs);
                }
            }
            Err(error) => outage.failed(&"looking for runs of unknown jobs", &error),
        }
    }
}

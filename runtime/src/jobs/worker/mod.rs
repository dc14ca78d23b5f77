//! The job worker, split by role: the [`producer`] claims due runs per pool, the [`executor`]
//! runs each attempt under its timeout, the [`completer`] records results in batches, the
//! [`heartbeat`] renews leases and stops fenced attempts, and the [`rescuer`] gives expired runs
//! back.

mod completer;
mod executor;
mod heartbeat;
mod producer;
pub(crate) mod rescuer;

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::jobs::job::States;
use crate::jobs::set::Runners;
use crate::retry::RetryTiming;
use crate::service::ServiceHandle;
use crate::store::{Backend, Store};

/// Worker settings; every field has a production default.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Runs claimed per round trip, at most.
    pub batch_size: u32,
    /// Runs executing at once, per pool (default 10 for every pool).
    pub concurrency: BTreeMap<String, usize>,
    pub default_concurrency: usize,
    /// How often an idle pool looks for due runs without being woken (scheduled runs, retries
    /// whose backoff ended, lost wake-ups).
    pub poll_interval: Duration,
    /// How long a claim lasts without a heartbeat. A run whose worker stops heartbeating is
    /// rescued this long after its last heartbeat.
    pub lease: Duration,
    /// How often leases are renewed (a third of the lease by default).
    pub heartbeat: Duration,
    pub retry: RetryTiming,
    /// On shutdown, how long running attempts may take before they are stopped and their runs
    /// released (not failed: they run again elsewhere).
    pub shutdown_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            concurrency: BTreeMap::new(),
            default_concurrency: 10,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            retry: RetryTiming::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Runs the jobs of one job set from one store; from [`crate::EventBus::worker`], so that the
/// jobs a worker runs are the jobs the bus enqueues.
pub struct Worker<B: Backend> {
    store: Store<B>,
    jobs: Runners,
    states: States,
    pools: Option<Vec<String>>,
    config: WorkerConfig,
    id: String,
}

impl<B: Backend> Worker<B> {
    pub(crate) fn new(store: Store<B>, jobs: Runners) -> Self {
        Self {
            store,
            jobs,
            states: States::new(),
            pools: None,
            config: WorkerConfig::default(),
            id: format!("{}-{}", std::process::id(), Uuid::now_v7().simple()),
        }
    }

    /// Hands `state` to every job, which reads it with [`JobContext::state`]: a connection
    /// pool, an HTTP client, a bus to publish follow-up events with.
    pub fn state<T: Send + Sync + 'static>(mut self, state: T) -> Self {
        self.states.insert(TypeId::of::<T>(), Arc::new(state));
        self
    }

    /// Runs only the jobs of these pools (default: the pools of every registered job).
    pub fn pools<I, S>(mut self, pools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.pools = Some(pools.into_iter().map(Into::into).collect());
        self
    }

    /// How many runs of `pool` execute at once in this worker.
    pub fn concurrency(mut self, pool: impl Into<String>, runs: usize) -> Self {
        self.config.concurrency.insert(pool.into(), runs.max(1));
        self
    }

    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self.config.heartbeat = lease / 3;
        self
    }

    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    pub fn retry(mut self, retry: RetryTiming) -> Self {
        self.config.retry = retry;
        self
    }

    pub fn batch_size(mut self, size: u32) -> Self {
        self.config.batch_size = size.max(1);
        self
    }

    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Starts the worker on the current tokio runtime. A pool named with [`Worker::pools`] that
    /// none of the registered jobs runs in is reported (its runs would wait for another
    /// worker).
    pub fn spawn(self) -> ServiceHandle {
        let known: Vec<&'static str> = {
            let mut pools: Vec<&'static str> = self.jobs.values().map(|job| job.pool).collect();
            pools.sort_unstable();
            pools.dedup();
            pools
        };
        let pools: Vec<String> = match &self.pools {
            Some(pools) => {
                let mut pools = pools.clone();
                pools.sort();
                pools.dedup();
                for pool in &pools {
                    if !known.contains(&pool.as_str()) {
                        tracing::warn!(
                            %pool,
                            registered = ?known,
                            "worker asked to run a pool that none of its jobs runs in; \
                             register those jobs with `EventBus::with_jobs`"
                        );
                    }
                }
                pools
            }
            None => known.iter().map(|pool| (*pool).to_owned()).collect(),
        };
        if self.jobs.is_empty() {
            tracing::warn!(
                "worker started with no jobs: register them with `EventBus::with_jobs` and \
                 start the worker from that bus"
            );
        }
        let shared = Arc::new(Shared {
            store: self.store,
            jobs: self.jobs,
            states: Arc::new(self.states),
            config: self.config,
            owner: self.id,
            in_flight: Mutex::default(),
            healthy: AtomicBool::new(true),
        });
        ServiceHandle::spawn("worker", move |stopped| run(shared, pools, stopped))
    }
}

struct InFlight {
    attempt: u32,
    abort: AbortHandle,
}

struct Shared<B: Backend> {
    store: Store<B>,
    jobs: Runners,
    states: Arc<States>,
    config: WorkerConfig,
    owner: String,
    /// Attempts executing now, by run id: the heartbeat renews them and stops the fenced ones.
    in_flight: Mutex<HashMap<Uuid, InFlight>>,
    /// False while heartbeats fail: the worker then claims nothing new.
    healthy: AtomicBool,
}

impl<B: Backend> Shared<B> {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, InFlight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn run<B: Backend>(
    shared: Arc<Shared<B>>,
    pools: Vec<String>,
    stopped: watch::Receiver<bool>,
) {
    shared.store.ensure_listening().await;
    let (results, completions) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(completer::record_results(shared.clone(), completions));
    let heartbeat = tokio::spawn(heartbeat::heartbeat(shared.clone(), stopped.clone()));
    let rescuer = tokio::spawn(rescuer::rescue(shared.clone(), stopped.clone()));
    let mut lanes = Vec::new();
    for pool in pools {
        lanes.push(tokio::spawn(producer::pool_lane(
            shared.clone(),
            pool,
            results.clone(),
            stopped.clone(),
        )));
    }
    drop(results);
    for lane in lanes {
        if let Err(error) = lane.await {
            tracing::error!(%error, "worker pool lane panicked");
        }
    }
    // Every lane has finished or abandoned its attempts: record what finished, then release the
    // rest so that it runs again elsewhere without waiting for the lease.
    if let Err(error) = recorder.await {
        tracing::error!(%error, "result recorder panicked");
    }
    heartbeat.abort();
    rescuer.abort();
    match shared.store.backend().release_runs(&shared.owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "released running jobs on shutdown"),
        Err(error) => {
            tracing::warn!(%error, "could not release runs; they are rescued after their lease")
        }
    }
}

//! The job worker, split by role: the [`producer`] claims due runs per pool, the [`executor`]
//! runs each attempt under its timeout, the [`completer`] records results in batches, the
//! [`heartbeat`] renews leases and stops fenced attempts, and the [`rescuer`] gives expired runs
//! back. [`idle`] runs the same parts in the calling task until nothing is due, for tests.

mod completer;
mod executor;
mod heartbeat;
mod idle;
mod producer;
pub(crate) mod rescuer;
mod watchdog;

pub use idle::WorkerSummary;

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
use crate::store::{Backend, Store, StoreError};

/// Worker settings; every field has a production default.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Runs claimed per round trip, at most.
    pub batch_size: u32,
    /// Runs executing at once, per pool (default 10 for every pool).
    pub concurrency: BTreeMap<String, usize>,
    /// Runs executing at once in a pool without an entry in `concurrency`.
    pub default_concurrency: usize,
    /// How often an idle pool looks for due runs without being woken (scheduled runs, retries
    /// whose backoff ended, lost wake-ups).
    pub poll_interval: Duration,
    /// How long a claim lasts without a heartbeat. A run whose worker stops heartbeating is
    /// rescued this long after its last heartbeat.
    pub lease: Duration,
    /// How often leases are renewed (a third of the lease by default).
    pub heartbeat: Duration,
    /// Delays between a failed attempt and the next, shaped by each job's backoff.
    pub retry: RetryTiming,
    /// On shutdown, how long running attempts may take before they are stopped and their runs
    /// released (not failed: they run again elsewhere).
    pub shutdown_timeout: Duration,
    /// Runs of a job this worker does not know, due in its pools for longer than this, are
    /// reported (and checked for this often).
    pub unclaimed_after: Duration,
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
            unclaimed_after: Duration::from_secs(60),
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

    /// Hands `state` to every job, which reads it with [`crate::JobContext::state`]: a
    /// connection pool, an HTTP client, a bus to publish follow-up events with.
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

    /// Replaces every [`WorkerConfig`] setting, those of earlier calls such as
    /// [`Worker::concurrency`] and [`Worker::lease`] included.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// How long a claim lasts without a heartbeat (see [`WorkerConfig::lease`]); the heartbeat
    /// becomes a third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self.config.heartbeat = lease / 3;
        self
    }

    /// How often an idle pool looks for due runs without being woken.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// Delays between a failed attempt and the next.
    pub fn retry(mut self, retry: RetryTiming) -> Self {
        self.config.retry = retry;
        self
    }

    /// Runs claimed per round trip, at most (at least 1).
    pub fn batch_size(mut self, size: u32) -> Self {
        self.config.batch_size = size.max(1);
        self
    }

    /// How long running attempts may take on shutdown before they are stopped and released.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long runs of a job this worker does not know may wait in its pools before it says
    /// so (default a minute); [`crate::JobClient::due`] lists them at any time.
    pub fn unclaimed_after(mut self, after: Duration) -> Self {
        self.config.unclaimed_after = after;
        self
    }

    /// Names this worker in lease columns (default: pid and a unique suffix).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Starts the worker on the current tokio runtime. A pool named with [`Worker::pools`] that
    /// none of the registered jobs runs in is reported (its runs would wait for another
    /// worker).
    pub fn spawn(self) -> ServiceHandle {
        let (shared, pools) = self.build();
        ServiceHandle::spawn("worker", move |stopped| run(shared, pools, stopped))
    }

    /// Runs every run that is due now, in the calling task, then returns what happened: the
    /// test helper that replaces "spawn a worker, poll until the run has ended", after Oban's
    /// `drain_queue` and River's test helpers.
    ///
    /// Due runs of the worker's pools are claimed and executed with the service's code (the
    /// job's timeout, panics caught, retries scheduled by its backoff, results recorded and
    /// fenced as the service records them), at most each pool's concurrency at once, until one
    /// look at every pool claims nothing. Runs whose lease expired are rescued first, as the
    /// service's rescuer would. The heartbeat runs meanwhile, so an attempt may outlive its
    /// lease. A run that an attempt enqueues due now (a child, say) is run too.
    ///
    /// A run scheduled later — `RunAt::In(..)`, or a retry whose backoff has not ended — is
    /// **not waited for**; retries this call scheduled are counted in
    /// [`WorkerSummary::retries_scheduled`]. To run every attempt of a failing job in one call,
    /// make retries due at once with `.retry(RetryTiming { base: Duration::ZERO, cap:
    /// Duration::ZERO })`.
    ///
    /// ```
    /// # use herald::{Catalog, JobContext, JobError, Jobs, Registry, job_handler};
    /// # struct App;
    /// # static REGISTRY: Registry = Registry::new(&[]);
    /// # impl Catalog for App { fn registry() -> &'static Registry { &REGISTRY } }
    /// #[job_handler(retries = 3)]
    /// async fn send_welcome(_ctx: JobContext, name: String) -> Result<(), JobError> {
    ///     println!("welcome, {name}");
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = herald::memory();
    /// let bus = herald::EventBus::<App, _>::new(store.clone())
    ///     .with_jobs(Jobs::new().register::<SendWelcome>());
    /// let mut tx = store.begin().await?;
    /// store.jobs().start::<SendWelcome>(&mut tx, "Ada".to_owned()).await?;
    /// store.commit(tx).await?;
    ///
    /// let summary = bus.worker().run_until_idle().await?;
    /// assert_eq!(summary.completed, 1);
    /// assert_eq!(summary.retries_scheduled, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The first error of the database; the runs the call still holds by then are released
    /// without spending their attempt.
    pub async fn run_until_idle(self) -> Result<WorkerSummary, StoreError> {
        let (shared, pools) = self.build();
        idle::run(shared, pools).await
    }

    /// The shared state of a worker and the pools it runs, with a warning for pools none of its
    /// jobs runs in.
    fn build(self) -> (Arc<Shared<B>>, Vec<String>) {
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
        (shared, pools)
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
    let heartbeat = tokio::spawn(heartbeat::heartbeat(shared.clone()));
    let rescuer = tokio::spawn(rescuer::rescue(shared.clone(), stopped.clone()));
    let watchdog = tokio::spawn(watchdog::watch_unknown_jobs(
        shared.clone(),
        pools.clone(),
        stopped.clone(),
    ));
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
    watchdog.abort();
    release(&shared).await;
}

/// Puts the runs this worker still holds back to pending, so that they run again elsewhere
/// without waiting for their lease.
async fn release<B: Backend>(shared: &Shared<B>) {
    match shared.store.backend().release_runs(&shared.owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "released running jobs"),
        Err(error) => {
            tracing::warn!(%error, "could not release runs; they are rescued after their lease")
        }
    }
}

//! The job worker: per pool, claims due runs up to the pool's concurrency, runs each attempt
//! under its timeout while a heartbeat renews the leases, and records results in batches.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;
use uuid::Uuid;

use crate::event::RetryPolicy;
use crate::job::Job;
use crate::job_context::{JobContext, States};
use crate::retry::RetryTiming;
use crate::store::{AttemptOutcome, AttemptResult, Backend, ClaimedRun, JobStore, Store};

/// A registered job without its type.
struct Runner {
    pool: &'static str,
    retry: RetryPolicy,
    timeout: Duration,
    concurrency: Option<u32>,
    run: fn(JobContext, String) -> BoxFuture<'static, Result<String, String>>,
}

fn run_erased<J: Job>(
    ctx: JobContext,
    input: String,
) -> BoxFuture<'static, Result<String, String>> {
    Box::pin(async move {
        let input: J::Input = serde_json::from_str(&input).map_err(|error| {
            format!(
                "stored input does not decode as the input of `{}`: {error}",
                J::NAME
            )
        })?;
        let output = J::run(ctx, input)
            .await
            .map_err(|error| error.to_string())?;
        serde_json::to_string(&output)
            .map_err(|error| format!("output of `{}` cannot be serialized: {error}", J::NAME))
    })
}

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

/// Runs jobs from one store. The set of jobs is explicit: a worker only claims runs of the jobs
/// registered with [`Worker::job`].
pub struct Worker<B: Backend> {
    store: Store<B>,
    jobs: HashMap<&'static str, Arc<Runner>>,
    states: States,
    pools: Option<Vec<String>>,
    config: WorkerConfig,
    id: String,
}

impl<B: Backend> Worker<B> {
    pub fn new(store: Store<B>) -> Self {
        Self {
            store,
            jobs: HashMap::new(),
            states: States::new(),
            pools: None,
            config: WorkerConfig::default(),
            id: format!("{}-{}", std::process::id(), Uuid::now_v7().simple()),
        }
    }

    pub fn job<J: Job>(mut self) -> Self {
        self.jobs.insert(
            J::NAME,
            Arc::new(Runner {
                pool: J::POOL,
                retry: J::RETRY,
                timeout: J::TIMEOUT,
                concurrency: J::CONCURRENCY,
                run: run_erased::<J>,
            }),
        );
        self
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

    /// Starts the worker on the current tokio runtime.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let mut pools: Vec<String> = match &self.pools {
            Some(pools) => pools.clone(),
            None => self
                .jobs
                .values()
                .map(|runner| runner.pool.to_owned())
                .collect(),
        };
        pools.sort();
        pools.dedup();
        let shared = Arc::new(Shared {
            store: self.store,
            jobs: self.jobs,
            states: Arc::new(self.states),
            config: self.config,
            owner: self.id,
            in_flight: Mutex::default(),
            healthy: AtomicBool::new(true),
        });
        let task = tokio::spawn(run(shared, pools, stopped));
        WorkerHandle { stop, task }
    }
}

/// A running worker; [`WorkerHandle::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops claiming, lets running attempts finish (up to the shutdown timeout), records their
    /// results, and releases what is still running so that other workers take it at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "worker task failed");
        }
    }
}

struct InFlight {
    attempt: u32,
    abort: AbortHandle,
}

struct Shared<B: Backend> {
    store: Store<B>,
    jobs: HashMap<&'static str, Arc<Runner>>,
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
    let recorder = tokio::spawn(record_results(shared.clone(), completions));
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), stopped.clone()));
    let rescuer = tokio::spawn(rescue(shared.clone(), stopped.clone()));
    let mut lanes = Vec::new();
    for pool in pools {
        lanes.push(tokio::spawn(pool_lane(
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

async fn pool_lane<B: Backend>(
    shared: Arc<Shared<B>>,
    pool: String,
    results: mpsc::UnboundedSender<AttemptResult>,
    mut stopped: watch::Receiver<bool>,
) {
    let capacity = shared
        .config
        .concurrency
        .get(&pool)
        .copied()
        .unwrap_or(shared.config.default_concurrency);
    let uncapped: Vec<&'static str> = shared
        .jobs
        .iter()
        .filter(|(_, runner)| runner.pool == pool && runner.concurrency.is_none())
        .map(|(name, _)| *name)
        .collect();
    let capped: Vec<(&'static str, u32)> = shared
        .jobs
        .iter()
        .filter(|(_, runner)| runner.pool == pool)
        .filter_map(|(name, runner)| Some((*name, runner.concurrency?)))
        .collect();
    let mut woken = shared.store.wakes().jobs.subscribe();
    let finished = Arc::new(Notify::new());
    let mut running: JoinSet<()> = JoinSet::new();
    while !*stopped.borrow() {
        while running.try_join_next().is_some() {}
        let room = capacity.saturating_sub(running.len()) as u32;
        let mut claimed_any = false;
        if room > 0 && shared.healthy.load(Ordering::Relaxed) {
            woken.borrow_and_update();
            let limit = room.min(shared.config.batch_size);
            match claim(&shared, &pool, &uncapped, &capped, limit).await {
                Ok(runs) => {
                    claimed_any = !runs.is_empty();
                    for run in runs {
                        start_attempt(&shared, &mut running, run, &results, &finished);
                    }
                }
                Err(error) => {
                    tracing::warn!(%pool, %error, "claiming runs failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        if claimed_any && running.len() < capacity {
            continue;
        }
        tokio::select! {
            _ = woken.changed(), if running.len() < capacity => {}
            _ = finished.notified() => {}
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = stopped.changed() => {}
        }
    }
    // Shutdown: let running attempts finish, up to the timeout; stop the rest.
    let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(%pool, abandoned = running.len(), "shutdown timeout: stopping running jobs");
        running.shutdown().await;
    }
}

async fn claim<B: Backend>(
    shared: &Shared<B>,
    pool: &str,
    uncapped: &[&'static str],
    capped: &[(&'static str, u32)],
    limit: u32,
) -> Result<Vec<ClaimedRun>, crate::StoreError> {
    let backend = shared.store.backend();
    let (lease, owner) = (shared.config.lease, shared.owner.as_str());
    let mut runs = if uncapped.is_empty() {
        Vec::new()
    } else {
        backend
            .claim_runs(pool, uncapped, owner, limit, lease)
            .await?
    };
    for &(job, cap) in capped {
        let room = limit.saturating_sub(runs.len() as u32);
        if room == 0 {
            break;
        }
        runs.extend(
            backend
                .claim_capped(pool, job, cap, owner, room, lease)
                .await?,
        );
    }
    Ok(runs)
}

fn start_attempt<B: Backend>(
    shared: &Arc<Shared<B>>,
    running: &mut JoinSet<()>,
    run: ClaimedRun,
    results: &mpsc::UnboundedSender<AttemptResult>,
    finished: &Arc<Notify>,
) {
    let Some(runner) = shared.jobs.get(run.job.as_str()).cloned() else {
        return;
    };
    let store: Arc<dyn JobStore> = Arc::new(shared.store.backend().clone());
    let ctx = JobContext {
        run_id: run.id,
        root_id: run.root_id,
        attempt: run.attempt,
        store,
        states: shared.states.clone(),
    };
    let span = tracing::info_span!(
        "herald.job",
        job = %run.job,
        run.id = %run.id,
        attempt = run.attempt,
    );
    let (shared_for_task, results, finished) = (shared.clone(), results.clone(), finished.clone());
    let (id, attempt) = (run.id, run.attempt);
    // Registered before the attempt starts, so that the heartbeat covers it from its first
    // instant; the task removes itself when it ends.
    let mut in_flight = shared.in_flight();
    let abort = running.spawn(
        async move {
            let outcome = execute(&runner, &shared_for_task.config.retry, ctx, run).await;
            let _ = results.send(AttemptResult {
                id,
                attempt,
                outcome,
            });
            shared_for_task.in_flight().remove(&id);
            finished.notify_one();
        }
        .instrument(span),
    );
    in_flight.insert(id, InFlight { attempt, abort });
}

async fn execute(
    runner: &Runner,
    timing: &RetryTiming,
    ctx: JobContext,
    run: ClaimedRun,
) -> AttemptOutcome {
    let attempt = AssertUnwindSafe((runner.run)(ctx, run.input)).catch_unwind();
    let error = match tokio::time::timeout(runner.timeout, attempt).await {
        Ok(Ok(Ok(output))) => {
            tracing::debug!("job completed");
            return AttemptOutcome::Completed { output };
        }
        Ok(Ok(Err(error))) => error,
        Ok(Err(panic)) => format!("job panicked: {}", crate::drain::panic_message(&panic)),
        Err(_) => {
            let error = format!("timed out after {:?}", runner.timeout);
            tracing::warn!(%error, "job timed out");
            return AttemptOutcome::TimedOut { error };
        }
    };
    if run.attempt >= run.max_attempts {
        tracing::error!(%error, "job failed on its last attempt");
        AttemptOutcome::Failed { error }
    } else {
        let delay = timing.delay(runner.retry.backoff, run.attempt);
        tracing::warn!(%error, retry_in = ?delay, "job failed; will retry");
        AttemptOutcome::Retry {
            at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
            error,
        }
    }
}

/// Writes ended attempts in batches: whatever has arrived while the previous write ran.
async fn record_results<B: Backend>(
    shared: Arc<Shared<B>>,
    mut completions: mpsc::UnboundedReceiver<AttemptResult>,
) {
    let mut batch = Vec::new();
    while completions.recv_many(&mut batch, 1000).await > 0 {
        let mut pause = Duration::from_millis(50);
        loop {
            match shared.store.backend().finish_runs(&batch).await {
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

async fn heartbeat<B: Backend>(shared: Arc<Shared<B>>, mut stopped: watch::Receiver<bool>) {
    // Keeps beating during shutdown until the worker aborts it, so that attempts finishing
    // within the shutdown timeout keep their leases.
    let _ = &mut stopped;
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
            .heartbeat(&held, shared.config.lease)
            .await
        {
            Ok(ours) => {
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
                tracing::error!(%error, "heartbeat failed: claiming no new runs until it succeeds");
                shared.healthy.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// Rescues runs whose lease expired, whichever worker held them, about once a second.
async fn rescue<B: Backend>(shared: Arc<Shared<B>>, mut stopped: watch::Receiver<bool>) {
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

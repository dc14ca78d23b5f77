//! The drain: one lane per pool claims batches of committed events and delivers them to the
//! subscribers of this process ([`lanes`]); a retry lane per pool re-delivers what failed
//! ([`retries`]); [`deliver`] is one attempt and the decision that follows it. [`idle`] runs the
//! lanes' steps in the calling task until nothing is claimable, for tests.

mod deliver;
mod idle;
mod lanes;
mod retries;
pub(crate) mod subscribers;

pub use idle::DrainSummary;

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::event::catalog::Catalog;
use crate::outage::Outage;
use crate::retry::RetryTiming;
use crate::service::ServiceHandle;
use crate::store::{Backend, Claim, KnownType, Lane, Store, StoreError};
use subscribers::Subscribers;

/// Settings of a drain. Every field has a default fit for production.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// Events claimed per round trip.
    pub batch_size: u32,
    /// How often an idle lane looks without being woken: the backstop for commits whose
    /// wake-up was lost (another SQLite process, a dropped `LISTEN` connection).
    pub poll_interval: Duration,
    /// How long a claim stays ours. A worker that dies holding one loses it after this long,
    /// and another worker delivers its events again.
    pub lease: Duration,
    /// Delays between delivery attempts.
    pub retry: RetryTiming,
    /// How long one delivery to one subscriber may take, unless the subscriber set its own
    /// ([`crate::EventBus::subscribe_with_timeout`]). A delivery that takes longer is
    /// abandoned and counts as a failed attempt of that subscriber only: a hanging handler
    /// cannot hold its pool.
    pub delivery_timeout: Duration,
    /// On shutdown, how long in-flight deliveries may take before they are abandoned and their
    /// claims released.
    pub shutdown_timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            retry: RetryTiming::default(),
            delivery_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Configures and starts a drain; from [`crate::EventBus::drain`]. [`DrainBuilder::spawn`] starts
/// it as a background service; [`DrainBuilder::run_until_idle`] drains in the calling task and
/// returns, for tests.
#[must_use = "a drain does nothing until it is spawned or run until idle"]
pub struct DrainBuilder<C: Catalog, B: Backend> {
    store: Store<B>,
    subscribers: Subscribers,
    lanes: Option<Vec<Lane>>,
    config: DrainConfig,
    worker_id: String,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog, B: Backend> DrainBuilder<C, B> {
    pub(crate) fn new(store: Store<B>, subscribers: Subscribers) -> Self {
        Self {
            store,
            subscribers,
            lanes: None,
            config: DrainConfig::default(),
            worker_id: format!("{}-{}", std::process::id(), Uuid::now_v7().simple()),
            catalog: PhantomData,
        }
    }

    /// Drains only these pools; `"audit"` names the lane of audit-tier events.
    pub fn pools<I, S>(mut self, pools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.lanes = Some(
            pools
                .into_iter()
                .map(|pool| {
                    let pool = pool.into();
                    if pool == "audit" {
                        Lane::Audit
                    } else {
                        Lane::Pool(pool)
                    }
                })
                .collect(),
        );
        self
    }

    /// Replaces every [`DrainConfig`] setting, those of earlier calls such as
    /// [`DrainBuilder::lease`] included.
    pub fn config(mut self, config: DrainConfig) -> Self {
        self.config = config;
        self
    }

    /// Events claimed per round trip, at most (at least 1).
    pub fn batch_size(mut self, size: u32) -> Self {
        self.config.batch_size = size.max(1);
        self
    }

    /// How often an idle lane looks without being woken: see [`DrainConfig::poll_interval`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// How long a claim stays ours: see [`DrainConfig::lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// Delays between delivery attempts.
    pub fn retry(mut self, retry: RetryTiming) -> Self {
        self.config.retry = retry;
        self
    }

    /// How long one delivery may take: see [`DrainConfig::delivery_timeout`].
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.config.delivery_timeout = timeout;
        self
    }

    /// How long in-flight deliveries may take on shutdown before they are abandoned.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Names this worker in lease columns and traces (default: pid and a random suffix).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = id.into();
        self
    }

    fn lanes(&self) -> Vec<Lane> {
        if let Some(lanes) = &self.lanes {
            return lanes.clone();
        }
        let mut pools = BTreeSet::new();
        let mut audit = false;
        for descriptor in C::registry().iter() {
            match descriptor.meta.pool() {
                Some(pool) => {
                    pools.insert(pool);
                }
                None => audit = true,
            }
        }
        let mut lanes: Vec<Lane> = pools
            .into_iter()
            .map(|pool| Lane::Pool(pool.to_owned()))
            .collect();
        if audit {
            lanes.push(Lane::Audit);
        }
        lanes
    }

    /// Starts the lanes on the current tokio runtime.
    pub fn spawn(self) -> ServiceHandle {
        let (shared, lanes) = self.build();
        ServiceHandle::spawn("drain", move |stopped| run(shared, lanes, stopped))
    }

    /// Delivers everything that can be delivered now, in the calling task, then returns what it
    /// did: the test helper that replaces "spawn a drain, poll until the subscriber has seen
    /// it", after Oban's `drain_queue` and River's test helpers.
    ///
    /// Every lane of the drain (each pool's events and its retries) is claimed and delivered
    /// with the code of the spawned drain, batch after batch, until one look at every lane
    /// finds nothing claimable: no pending event, no retry due. Subscribers run as they would
    /// in the service (retries, dead letters and per-aggregate order included), and the claims
    /// still held at the end, if any, are released.
    ///
    /// A retry whose backoff ends later is **not waited for**: it is counted in
    /// [`DrainSummary::retries_scheduled`] and delivered by a later call once due. To run every
    /// attempt of a failing subscriber in one call, make retries due at once with
    /// `.retry(RetryTiming { base: Duration::ZERO, cap: Duration::ZERO })`. Events and
    /// deliveries that another worker holds under a live lease are that worker's, and are not
    /// waited for either.
    ///
    /// ```
    /// # use herald::{Catalog, Envelope, EventDescriptor, HandlerError, InCatalog, Registry};
    /// # #[derive(Debug, Clone, herald::serde::Serialize, herald::serde::Deserialize,
    /// #     herald::schemars::JsonSchema, herald::Event)]
    /// # #[serde(crate = "herald::serde")]
    /// # #[schemars(crate = "herald::schemars")]
    /// # #[event(type = "contact_created", direction = "change", aggregate = "contact")]
    /// # struct ContactCreated { name: String }
    /// # struct App;
    /// # static REGISTRY: Registry = Registry::new(&[EventDescriptor::of::<ContactCreated>()]);
    /// # impl Catalog for App { fn registry() -> &'static Registry { &REGISTRY } }
    /// # impl InCatalog<App> for ContactCreated {}
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = herald::memory();
    /// let bus = herald::EventBus::<App, _>::new(store.clone());
    /// bus.subscribe("welcome_mail", |e: Envelope<ContactCreated>| async move {
    ///     println!("welcome, {}", e.payload.name);
    ///     Ok::<_, HandlerError>(())
    /// });
    /// let mut tx = store.begin().await?;
    /// bus.publish(&mut tx, "c-1", ContactCreated { name: "Ada".into() }).await?;
    /// store.commit(tx).await?;
    ///
    /// let summary = bus.drain().run_until_idle().await?;
    /// assert_eq!(summary.events, 1);
    /// assert_eq!(summary.delivered, 1);
    /// assert_eq!(summary.retries_scheduled, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The first error of the database; what the call held by then is released (or expires
    /// with its lease).
    pub async fn run_until_idle(self) -> Result<DrainSummary, StoreError> {
        let (shared, lanes) = self.build();
        idle::run(&shared, &lanes).await
    }

    fn build(self) -> (Arc<Lanes<C, B>>, Vec<Lane>) {
        let lanes = self.lanes();
        let shared = Arc::new(Lanes::<C, B> {
            store: self.store,
            subscribers: self.subscribers,
            config: self.config,
            worker_id: self.worker_id,
            known_types: C::registry()
                .iter()
                .map(|descriptor| KnownType {
                    event_type: descriptor.meta.event_type,
                    version: descriptor.meta.version,
                })
                .collect(),
            catalog: PhantomData,
        });
        (shared, lanes)
    }
}

/// What every lane of one drain shares.
struct Lanes<C: Catalog, B: Backend> {
    store: Store<B>,
    subscribers: Subscribers,
    config: DrainConfig,
    worker_id: String,
    /// The event types of this process's registry, at their current versions: the only events
    /// its lanes claim. An event of a type it does not know, or stored at a newer version
    /// (published by a newer release during a rolling deploy), waits for a process that reads
    /// it instead of being acknowledged undelivered or failing to decode.
    known_types: Vec<KnownType>,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog, B: Backend> Lanes<C, B> {
    /// A claim of one batch by `owner`, now, with this drain's batch size and lease.
    fn claim<'a>(&self, owner: &'a str) -> Claim<'a> {
        Claim {
            owner,
            limit: self.config.batch_size,
            lease: self.config.lease,
            now: self.store.now(),
        }
    }

    /// The lease owner of `lane`'s event claims.
    fn event_owner(&self, lane: &Lane) -> String {
        format!("{}/{lane}", self.worker_id)
    }

    /// The lease owner of `lane`'s retry claims.
    fn retry_owner(&self, lane: &Lane) -> String {
        format!("{}/{lane}/retry", self.worker_id)
    }
}

async fn run<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lanes: Vec<Lane>,
    stopped: watch::Receiver<bool>,
) {
    shared.store.ensure_listening().await;
    let mut tasks = Vec::new();
    for lane in lanes {
        tasks.push(tokio::spawn(lanes::event_lane(
            shared.clone(),
            lane.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(retries::retry_lane(
            shared.clone(),
            lane,
            stopped.clone(),
        )));
    }
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "drain lane panicked");
        }
    }
}

/// Waits for a wake-up, the poll interval, or shutdown; true when shutting down.
async fn idle(
    woken: &mut watch::Receiver<u64>,
    stopped: &mut watch::Receiver<bool>,
    interval: Duration,
) -> bool {
    // A stop that came during the lane's last step was seen there (by `finish_or_abandon`) and
    // is no longer a change: without this look the lane would sleep a whole poll interval.
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = woken.changed() => false,
        _ = tokio::time::sleep(interval) => false,
        _ = stopped.changed() => true,
    }
}

/// Runs `work` to completion, unless shutdown comes and the shutdown timeout passes first.
/// Returns `None` when the work was abandoned.
async fn finish_or_abandon<T>(
    work: impl Future<Output = T>,
    stopped: &mut watch::Receiver<bool>,
    timeout: Duration,
) -> Option<T> {
    tokio::pin!(work);
    if !*stopped.borrow() {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = stopped.changed() => {}
        }
    }
    tokio::time::timeout(timeout, work).await.ok()
}

async fn release<C: Catalog, B: Backend>(shared: &Lanes<C, B>, owner: &str) {
    match shared.store.backend().release(owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(owner, released, "released claims"),
        Err(error) => {
            tracing::warn!(owner, %error, "could not release claims; they expire with their lease")
        }
    }
}

async fn pause_after_error(
    outage: &mut Outage,
    error: &StoreError,
    lane: &Lane,
    stopped: &mut watch::Receiver<bool>,
) {
    outage.failed(lane, error);
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        _ = stopped.changed() => {}
    }
}

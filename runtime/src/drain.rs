//! The drain: one lane per pool claims batches of committed events and delivers them to the
//! subscribers of this process; a retry lane per pool re-delivers what failed.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use crate::bus::{Catalog, EventBus, Subscriber};
use crate::event::RetryPolicy;
use crate::retry::RetryTiming;
use crate::store::{
    Backend, ClaimedDelivery, DeliveryOutcome, DeliveryState, Lane, NewDelivery, StoreError,
    StoredEvent,
};

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
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Configures and starts a drain; from [`EventBus::drain`].
#[must_use = "a drain does nothing until it is spawned"]
pub struct DrainBuilder<C: Catalog, B: Backend> {
    bus: EventBus<C, B>,
    lanes: Option<Vec<Lane>>,
    config: DrainConfig,
    worker_id: String,
}

impl<C: Catalog, B: Backend> EventBus<C, B> {
    /// A drain over every pool of the registry (and the audit lane, if the registry has audit
    /// events); narrow it with [`DrainBuilder::pools`].
    pub fn drain(&self) -> DrainBuilder<C, B> {
        DrainBuilder {
            bus: self.clone(),
            lanes: None,
            config: DrainConfig::default(),
            worker_id: format!("{}-{}", std::process::id(), Uuid::now_v7().simple()),
        }
    }
}

impl<C: Catalog, B: Backend> DrainBuilder<C, B> {
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

    pub fn config(mut self, config: DrainConfig) -> Self {
        self.config = config;
        self
    }

    pub fn batch_size(mut self, size: u32) -> Self {
        self.config.batch_size = size.max(1);
        self
    }

    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    pub fn retry(mut self, retry: RetryTiming) -> Self {
        self.config.retry = retry;
        self
    }

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
    pub fn spawn(self) -> DrainHandle {
        let (stop, stopped) = watch::channel(false);
        let lanes = self.lanes();
        let shared = Arc::new(Lanes {
            bus: self.bus,
            config: self.config,
            worker_id: self.worker_id,
        });
        let task = tokio::spawn(run(shared, lanes, stopped));
        DrainHandle { stop, task }
    }
}

/// A running drain. Dropping it leaves the drain running; [`DrainHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct DrainHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DrainHandle {
    /// Stops claiming, lets in-flight deliveries finish (up to the shutdown timeout, after which
    /// they are abandoned), and releases this worker's claims so that others take them at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "drain task failed");
        }
    }
}

struct Lanes<C: Catalog, B: Backend> {
    bus: EventBus<C, B>,
    config: DrainConfig,
    worker_id: String,
}

async fn run<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lanes: Vec<Lane>,
    stopped: watch::Receiver<bool>,
) {
    shared.bus.store().ensure_listening().await;
    let mut tasks = Vec::new();
    for lane in lanes {
        tasks.push(tokio::spawn(event_lane(
            shared.clone(),
            lane.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(retry_lane(
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
    match shared.bus.store().backend().release(owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(owner, released, "released claims on shutdown"),
        Err(error) => {
            tracing::warn!(owner, %error, "could not release claims; they expire with their lease")
        }
    }
}

async fn pause_after_error(error: &StoreError, lane: &Lane, stopped: &mut watch::Receiver<bool>) {
    tracing::warn!(%lane, %error, "outbox query failed; retrying shortly");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        _ = stopped.changed() => {}
    }
}

async fn event_lane<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lane: Lane,
    mut stopped: watch::Receiver<bool>,
) {
    let owner = format!("{}/{lane}", shared.worker_id);
    let store = shared.bus.store();
    let mut woken = store.wakes().events.subscribe();
    while !*stopped.borrow() {
        woken.borrow_and_update();
        let claim = store.backend().claim_events(
            &lane,
            &owner,
            shared.config.batch_size,
            shared.config.lease,
        );
        let (batch, claim) = match claim.await {
            Ok(claimed) => claimed,
            Err(error) => {
                pause_after_error(&error, &lane, &mut stopped).await;
                continue;
            }
        };
        if batch.is_empty() {
            drop(claim);
            if idle(&mut woken, &mut stopped, shared.config.poll_interval).await {
                break;
            }
            continue;
        }
        let span = tracing::debug_span!("herald.drain.batch", %lane, events = batch.len());
        let work = deliver_batch(&shared, &lane, claim, batch).instrument(span);
        match finish_or_abandon(work, &mut stopped, shared.config.shutdown_timeout).await {
            Some(Ok(())) => {}
            Some(Err(error)) => pause_after_error(&error, &lane, &mut stopped).await,
            None => tracing::warn!(%lane, "shutdown timeout: abandoned an in-flight batch"),
        }
    }
    release(&shared, &owner).await;
}

/// Runs one event's subscribers; returns the deliveries that must be tried again later.
async fn fan_out<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    event: &StoredEvent,
    subscribers: &[Subscriber],
) -> Vec<NewDelivery> {
    let policy = retry_policy::<C>(&event.event_type);
    let mut pending = Vec::new();
    for subscriber in subscribers {
        let is_blocked = event
            .blocked_subscribers
            .iter()
            .any(|blocked| **blocked == *subscriber.name);
        let state = if is_blocked {
            // An earlier event of this aggregate is still being retried for this subscriber:
            // queue behind it rather than overtake it.
            Some(DeliveryState::Retry {
                attempts: 0,
                at: Utc::now(),
                last_error: None,
            })
        } else {
            deliver(shared, event, subscriber, 0, policy).await
        };
        if let Some(state) = state {
            pending.push(NewDelivery {
                event_id: event.id,
                event_position: event.position,
                subscriber: subscriber.name.to_string(),
                pool: event.pool.clone(),
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                state,
            });
        }
    }
    pending
}

async fn deliver_batch<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    claim: B::EventClaim,
    batch: Vec<StoredEvent>,
) -> Result<(), StoreError> {
    let backend = shared.bus.store().backend();
    let subscribers = shared.bus.subscribers_by_type();
    let none = Vec::new();
    // At most one event per aggregate is in a batch (the claim takes heads only), so the
    // events of a batch can be delivered concurrently without reordering anything.
    let pending = join_all(batch.iter().map(|event| {
        let subscribers = subscribers.get(event.event_type.as_str()).unwrap_or(&none);
        fan_out(shared, event, subscribers)
    }))
    .await;
    let pending: Vec<NewDelivery> = pending.into_iter().flatten().collect();
    let positions: Vec<i64> = batch.iter().map(|event| event.position).collect();
    let completed = backend.complete_events(claim, &positions, &pending).await?;
    if !pending.is_empty() {
        shared.bus.store().wakes().retries.notify();
    }
    if completed < positions.len() as u64 {
        tracing::warn!(
            %lane,
            lost = positions.len() as u64 - completed,
            "lease expired during the batch; another worker delivers those events again"
        );
    }
    Ok(())
}

fn retry_policy<C: Catalog>(event_type: &str) -> RetryPolicy {
    C::registry()
        .get(event_type)
        .map(|descriptor| descriptor.meta.retry)
        .unwrap_or_default()
}

/// One delivery attempt. `None` when it succeeded; otherwise when (or whether) to try again.
async fn deliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    event: &StoredEvent,
    subscriber: &Subscriber,
    attempts_before: u32,
    policy: RetryPolicy,
) -> Option<DeliveryState> {
    let attempt = attempts_before + 1;
    let span = tracing::info_span!(
        "herald.deliver",
        event.id = %event.id,
        event.r#type = %event.event_type,
        subscriber = %subscriber.name,
        attempt,
    );
    let run = AssertUnwindSafe((subscriber.handler)(event, attempt)).catch_unwind();
    let error = match run.instrument(span.clone()).await {
        Ok(Ok(())) => return None,
        Ok(Err(error)) => error,
        Err(panic) => format!("subscriber panicked: {}", panic_message(&panic)),
    };
    let _entered = span.enter();
    if attempt >= policy.attempts.max(1) {
        tracing::error!(%error, "delivery failed for good: dead-lettered");
        Some(DeliveryState::Failed {
            attempts: attempt,
            last_error: error,
        })
    } else {
        let delay = shared.config.retry.delay(policy.backoff, attempt);
        tracing::warn!(%error, retry_in = ?delay, "delivery failed; will retry");
        Some(DeliveryState::Retry {
            attempts: attempt,
            at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
            last_error: Some(error),
        })
    }
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

async fn retry_lane<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lane: Lane,
    mut stopped: watch::Receiver<bool>,
) {
    let owner = format!("{}/{lane}/retry", shared.worker_id);
    let store = shared.bus.store();
    // Retries are due at times the lane knows only by looking; it looks at least this often.
    let interval = shared
        .config
        .poll_interval
        .min(shared.config.retry.base.max(Duration::from_millis(10)));
    let mut woken = store.wakes().retries.subscribe();
    while !*stopped.borrow() {
        woken.borrow_and_update();
        let claim = store.backend().claim_deliveries(
            &lane,
            &owner,
            shared.config.batch_size,
            shared.config.lease,
        );
        let claimed = match claim.await {
            Ok(claimed) => claimed,
            Err(error) => {
                pause_after_error(&error, &lane, &mut stopped).await;
                continue;
            }
        };
        if claimed.is_empty() {
            if idle(&mut woken, &mut stopped, interval).await {
                break;
            }
            continue;
        }
        let work = redeliver(&shared, &owner, claimed);
        match finish_or_abandon(work, &mut stopped, shared.config.shutdown_timeout).await {
            Some(Ok(())) => {}
            Some(Err(error)) => pause_after_error(&error, &lane, &mut stopped).await,
            None => tracing::warn!(%lane, "shutdown timeout: abandoned in-flight retries"),
        }
    }
    release(&shared, &owner).await;
}

async fn redeliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    owner: &str,
    claimed: Vec<ClaimedDelivery>,
) -> Result<(), StoreError> {
    let mut by_type: HashMap<String, Vec<Subscriber>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(claimed.len());
    // In position order, one at a time: a claim may hold consecutive heads of several
    // aggregates, never two of the same (subscriber, aggregate).
    for delivery in &claimed {
        let subscribers = by_type
            .entry(delivery.event.event_type.clone())
            .or_insert_with(|| shared.bus.subscribers_of(&delivery.event.event_type));
        let state = match subscribers.iter().find(|s| *s.name == *delivery.subscriber) {
            Some(subscriber) => {
                let policy = retry_policy::<C>(&delivery.event.event_type);
                deliver(
                    shared,
                    &delivery.event,
                    subscriber,
                    delivery.attempts,
                    policy,
                )
                .await
            }
            // The subscriber is gone from this process's code: keep the delivery, dead, for an
            // operator to see, rather than drop it silently.
            None => Some(DeliveryState::Failed {
                attempts: delivery.attempts,
                last_error: format!(
                    "no subscriber named `{}` is registered for `{}` in this process",
                    delivery.subscriber, delivery.event.event_type
                ),
            }),
        };
        outcomes.push(DeliveryOutcome {
            event_id: delivery.event.id,
            subscriber: delivery.subscriber.clone(),
            state,
        });
    }
    shared
        .bus
        .store()
        .backend()
        .finish_deliveries(owner, &outcomes)
        .await
}

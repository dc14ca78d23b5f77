//! The retry lane of one pool: re-delivers the deliveries that failed (or were queued behind
//! a failing one of the same aggregate) when they are due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::deliver::{deliver, lost_too_often, retry_policy, unreadable};
use super::lanes::renewal_interval;
use super::subscribers::Subscriber;
use super::{Lanes, finish_or_abandon, idle, pause_after_error, release};
use crate::event::catalog::Catalog;
use crate::outage::Outage;
use crate::store::{Backend, ClaimedDelivery, DeliveryOutcome, DeliveryState, Lane, StoreError};

pub(super) async fn retry_lane<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lane: Lane,
    mut stopped: watch::Receiver<bool>,
) {
    let owner = shared.retry_owner(&lane);
    // Retries are due at times the lane knows only by looking; it looks at least this often.
    let interval = shared
        .config
        .poll_interval
        .min(shared.config.retry.base.max(Duration::from_millis(10)));
    let mut woken = shared.store.wakes().retries.subscribe();
    let mut outage = Outage::new("drain retries");
    while !*stopped.borrow() {
        woken.borrow_and_update();
        let work = claim_and_redeliver(&shared, &lane, &owner);
        match finish_or_abandon(work, &mut stopped, shared.config.shutdown_timeout).await {
            Some(Ok(Some(_))) => outage.succeeded(&lane),
            Some(Ok(None)) => {
                outage.succeeded(&lane);
                if idle(&mut woken, &mut stopped, interval).await {
                    break;
                }
            }
            Some(Err(error)) => pause_after_error(&mut outage, &error, &lane, &mut stopped).await,
            None => tracing::warn!(%lane, "shutdown timeout: abandoned in-flight retries"),
        }
    }
    release(&shared, &owner).await;
}

/// The retry lane's one step, shared by its loop and [`super::DrainBuilder::run_until_idle`]:
/// claims the deliveries due now and tries each again. Returns what became of each, or `None`
/// when none was due.
pub(super) async fn claim_and_redeliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    owner: &str,
) -> Result<Option<Vec<DeliveryOutcome>>, StoreError> {
    let claimed = shared
        .store
        .backend()
        .claim_deliveries(lane, shared.claim(owner))
        .await?;
    if claimed.is_empty() {
        return Ok(None);
    }
    redeliver(shared, owner, claimed).await.map(Some)
}

/// Delivers the claimed retries one at a time, in position order (a claim may hold
/// consecutive heads of several aggregates, never two of the same (subscriber, aggregate)),
/// while their leases are renewed beside them, and records what became of each.
async fn redeliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    owner: &str,
    claimed: Vec<ClaimedDelivery>,
) -> Result<Vec<DeliveryOutcome>, StoreError> {
    let (delivered, mut finished) = oneshot::channel();
    let deliver_all = async move {
        let mut by_type: HashMap<String, Vec<Subscriber>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(claimed.len());
        for delivery in &claimed {
            let subscribers = by_type
                .entry(delivery.event.event_type.clone())
                .or_insert_with(|| shared.subscribers.of(&delivery.event.event_type));
            let subscriber = subscribers.iter().find(|s| *s.name == *delivery.subscriber);
            outcomes.push(DeliveryOutcome {
                event_id: delivery.event.id,
                subscriber: delivery.subscriber.clone(),
                state: attempt(shared, delivery, subscriber).await,
            });
        }
        let _ = delivered.send(());
        outcomes
    };
    // Joined, not selected, as in the event lane: a renewal waiting for a connection must not
    // stop the delivery that holds one.
    let keep_leases = async {
        let renewal = renewal_interval(shared.config.lease);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renewal, renewal);
        loop {
            tokio::select! {
                _ = &mut finished => break,
                _ = renew.tick() => extend_leases(shared, owner).await,
            }
        }
    };
    let (outcomes, ()) = tokio::join!(deliver_all, keep_leases);
    shared
        .store
        .backend()
        .finish_deliveries(owner, &outcomes, shared.store.now())
        .await?;
    Ok(outcomes)
}

/// One retry of one delivery, or why it is not made: the row cannot be read, its claims were
/// lost too often, or its subscriber is gone. `None` when it succeeded.
async fn attempt<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    delivery: &ClaimedDelivery,
    subscriber: Option<&Subscriber>,
) -> Option<DeliveryState> {
    let event = &delivery.event;
    if let Some(reason) = &event.unreadable {
        return Some(unreadable(event, reason));
    }
    let policy = retry_policy::<C>(&event.event_type);
    // Each lost claim was an attempt that never got to say how it ended.
    let lost_claims = delivery.claims.saturating_sub(1);
    let attempts = delivery.attempts + lost_claims;
    if lost_claims > 0 && attempts >= policy.max_attempts().get() {
        return Some(lost_too_often(
            event,
            &delivery.subscriber,
            attempts,
            lost_claims,
        ));
    }
    match subscriber {
        Some(subscriber) => deliver(shared, event, subscriber, attempts, policy).await,
        // The subscriber is gone from this process's code: keep the delivery, dead, for an
        // operator to see, rather than drop it silently.
        None => Some(DeliveryState::Failed {
            attempts: delivery.attempts,
            last_error: format!(
                "no subscriber named `{}` is registered for `{}` in this process",
                delivery.subscriber, event.event_type
            ),
        }),
    }
}

async fn extend_leases<C: Catalog, B: Backend>(shared: &Lanes<C, B>, owner: &str) {
    let until = shared.claim(owner).until();
    if let Err(error) = shared
        .store
        .backend()
        .extend_delivery_leases(owner, until)
        .await
    {
        tracing::warn!(%error, "could not extend the leases of the retries being delivered");
    }
}

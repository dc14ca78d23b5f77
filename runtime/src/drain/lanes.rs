//! The event lane of one pool: claims batches of committed events (at most one per aggregate),
//! delivers each to every subscriber, and completes the batch with the deliveries still owed.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::watch;
use tracing::Instrument;

use super::deliver::{deliver, retry_policy};
use super::subscribers::Subscriber;
use super::{Lanes, finish_or_abandon, idle, pause_after_error, release};
use crate::event::catalog::Catalog;
use crate::store::{Backend, DeliveryState, Lane, NewDelivery, StoreError, StoredEvent};

pub(super) async fn event_lane<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lane: Lane,
    mut stopped: watch::Receiver<bool>,
) {
    let owner = shared.event_owner(&lane);
    let mut woken = shared.store.wakes().events.subscribe();
    while !*stopped.borrow() {
        // Marked seen before the claim: a commit after this point wakes the next wait, one
        // before it is in the claim.
        woken.borrow_and_update();
        let work = claim_and_deliver(&shared, &lane, &owner);
        match finish_or_abandon(work, &mut stopped, shared.config.shutdown_timeout).await {
            Some(Ok(Some(_))) => {}
            Some(Ok(None)) => {
                if idle(&mut woken, &mut stopped, shared.config.poll_interval).await {
                    break;
                }
            }
            Some(Err(error)) => pause_after_error(&error, &lane, &mut stopped).await,
            None => tracing::warn!(%lane, "shutdown timeout: abandoned an in-flight batch"),
        }
    }
    release(&shared, &owner).await;
}

/// What one batch of the event lane did.
pub(super) struct DeliveredBatch {
    /// Events of the batch completed (still ours when the batch was acknowledged).
    pub(super) events: u64,
    /// Deliveries that succeeded on this first fan-out.
    pub(super) delivered: u64,
    /// The deliveries still owed, as recorded: failed ones, and those queued behind an
    /// earlier event of their aggregate.
    pub(super) pending: Vec<NewDelivery>,
}

/// The event lane's one step, shared by its loop and [`super::DrainBuilder::run_until_idle`]:
/// claims a batch and delivers it. `None` when there was nothing to claim.
pub(super) async fn claim_and_deliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    owner: &str,
) -> Result<Option<DeliveredBatch>, StoreError> {
    let (batch, claim) = shared
        .store
        .backend()
        .claim_events(lane, shared.claim(owner))
        .await?;
    if batch.is_empty() {
        // Dropping the claim ends it (on PostgreSQL, its transaction).
        return Ok(None);
    }
    let span = tracing::debug_span!("herald.drain.batch", %lane, events = batch.len());
    deliver_batch(shared, lane, claim, batch)
        .instrument(span)
        .await
        .map(Some)
}

/// Runs one event's subscribers; returns how many deliveries succeeded, and the deliveries that
/// must be tried again later.
async fn fan_out<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    event: &StoredEvent,
    subscribers: &[Subscriber],
) -> (u64, Vec<NewDelivery>) {
    let policy = retry_policy::<C>(&event.event_type);
    let mut delivered = 0;
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
                at: shared.store.now(),
                last_error: None,
            })
        } else {
            deliver(shared, event, subscriber, 0, policy).await
        };
        let Some(state) = state else {
            delivered += 1;
            continue;
        };
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
    (delivered, pending)
}

async fn deliver_batch<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    claim: B::EventClaim,
    batch: Vec<StoredEvent>,
) -> Result<DeliveredBatch, StoreError> {
    let backend = shared.store.backend();
    let subscribers = shared.subscribers.by_type();
    let none = Vec::new();
    // At most one event per aggregate is in a batch (the claim takes heads only), so the
    // events of a batch can be delivered concurrently without reordering anything.
    let fanned_out = join_all(batch.iter().map(|event| {
        let subscribers = subscribers.get(event.event_type.as_str()).unwrap_or(&none);
        fan_out(shared, event, subscribers)
    }))
    .await;
    let mut delivered = 0;
    let mut pending = Vec::new();
    for (succeeded, owed) in fanned_out {
        delivered += succeeded;
        pending.extend(owed);
    }
    let positions: Vec<i64> = batch.iter().map(|event| event.position).collect();
    let completed = backend
        .complete_events(claim, &positions, &pending, shared.store.now())
        .await?;
    if !pending.is_empty() {
        shared.store.wakes().retries.notify();
    }
    if completed < positions.len() as u64 {
        tracing::warn!(
            %lane,
            lost = positions.len() as u64 - completed,
            "lease expired during the batch; another worker delivers those events again"
        );
    }
    Ok(DeliveredBatch {
        events: completed,
        delivered,
        pending,
    })
}

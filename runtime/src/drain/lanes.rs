//! The event lane of one pool: claims batches of committed events (at most one per aggregate),
//! delivers each to every subscriber, and completes the batch with the deliveries still owed.

use std::sync::Arc;

use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::deliver::{deliver, lost_too_often, retry_policy, unreadable};
use super::subscribers::Subscriber;
use super::{Lanes, finish_or_abandon, idle, pause_after_error, release};
use crate::event::catalog::Catalog;
use crate::outage::Outage;
use crate::store::{Backend, DeliveryState, Lane, NewDelivery, StoreError, StoredEvent};

pub(super) async fn event_lane<C: Catalog, B: Backend>(
    shared: Arc<Lanes<C, B>>,
    lane: Lane,
    mut stopped: watch::Receiver<bool>,
) {
    let owner = shared.event_owner(&lane);
    let mut woken = shared.store.wakes().lane(&lane).subscribe();
    let mut outage = Outage::new("drain");
    while !*stopped.borrow() {
        // Marked seen before the claim: a commit after this point wakes the next wait, one
        // before it is in the claim.
        woken.borrow_and_update();
        let work = claim_and_deliver(&shared, &lane, &owner);
        match finish_or_abandon(work, &mut stopped, shared.config.shutdown_timeout).await {
            Some(Ok(Some(_))) => outage.succeeded(&lane),
            Some(Ok(None)) => {
                outage.succeeded(&lane);
                if idle(&mut woken, &mut stopped, shared.config.poll_interval).await {
                    break;
                }
            }
            Some(Err(error)) => pause_after_error(&mut outage, &error, &lane, &mut stopped).await,
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
    let batch = shared
        .store
        .backend()
        .claim_events(lane, Some(&shared.known_types), shared.claim(owner))
        .await?;
    if batch.is_empty() {
        return Ok(None);
    }
    crate::metrics::drain_batch(
        &lane.to_string(),
        batch.len(),
        batch.iter().map(|event| event.recorded_at).min(),
        shared.store.now(),
    );
    let span = tracing::debug_span!("herald.drain.batch", %lane, events = batch.len());
    deliver_batch(shared, lane, owner, batch)
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
    // Every earlier claim of this event was lost (a crash, a stall past the lease, a kill while
    // delivering): once they have spent its attempts, it is poison and is not run again.
    let lost_claims = event.claims.saturating_sub(1);
    let is_poison = lost_claims >= policy.max_attempts().get();
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
        } else if let Some(reason) = &event.unreadable {
            Some(unreadable(event, reason))
        } else if is_poison {
            Some(lost_too_often(
                event,
                &subscriber.name,
                lost_claims,
                lost_claims,
            ))
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

/// Delivers a claimed batch. The events are completed as their deliveries finish, at every
/// lease renewal and at the end, so that one slow subscriber neither holds the quick events of
/// its batch nor lets their leases run out; the leases of the events still running are
/// extended at each renewal.
async fn deliver_batch<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    owner: &str,
    batch: Vec<StoredEvent>,
) -> Result<DeliveredBatch, StoreError> {
    let subscribers = shared.subscribers.by_type();
    let none = Vec::new();
    // At most one event per aggregate is in a batch (the claim takes heads only), so the
    // events of a batch can be delivered concurrently without reordering anything.
    let mut running: FuturesUnordered<_> = batch
        .iter()
        .map(|event| {
            let subscribers = subscribers.get(event.event_type.as_str()).unwrap_or(&none);
            fan_out(shared, event, subscribers).map(|outcome| (event.position, outcome))
        })
        .collect();
    // The deliveries and the bookkeeping run side by side (joined, not selected): while a
    // renewal waits for the database, the deliveries keep being polled, so that those holding a
    // pooled connection finish and give it back instead of starving the renewal of one.
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let deliver_all = async move {
        while let Some(finished) = running.next().await {
            // The receiver lives until every delivery has been sent.
            let _ = finished_tx.send(finished);
        }
    };
    let keep_up = async {
        let mut still_running: Vec<i64> = batch.iter().map(|event| event.position).collect();
        let mut done = Finished::default();
        let mut result = DeliveredBatch {
            events: 0,
            delivered: 0,
            pending: Vec::new(),
        };
        let renewal = renewal_interval(shared.config.lease);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renewal, renewal);
        loop {
            tokio::select! {
                finished = finished_rx.recv() => {
                    let Some((position, (delivered, owed))) = finished else { break };
                    still_running.retain(|open| *open != position);
                    result.delivered += delivered;
                    done.positions.push(position);
                    done.owed.extend(owed);
                }
                _ = renew.tick() => {
                    // Best effort while deliveries still run: a failure here leaves the
                    // finished events for the next renewal or the end of the batch.
                    if let Err(error) = done.complete(shared, lane, owner, &mut result).await {
                        tracing::warn!(%lane, %error, "could not complete finished events yet");
                    }
                    extend_leases(shared, lane, owner, &still_running).await;
                }
            }
        }
        // The deliveries are made: a completion lost to a dropped connection is worth a few
        // more tries, rather than the redelivery of the whole batch after its lease.
        let mut pause = Duration::from_millis(50);
        for attempt in 1.. {
            match done.complete(shared, lane, owner, &mut result).await {
                Ok(()) => break,
                Err(error) if attempt < COMPLETION_TRIES => {
                    tracing::warn!(%lane, %error, attempt, "could not complete the batch; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(result)
    };
    let ((), result) = tokio::join!(deliver_all, keep_up);
    result
}

/// How many times a lane tries to complete a delivered batch before it leaves the batch to be
/// delivered again after its lease.
const COMPLETION_TRIES: u32 = 5;

/// How often a batch still being delivered renews its leases: well within the lease, so that a
/// renewal delayed by a busy database still lands in time.
pub(super) fn renewal_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(10))
}

async fn extend_leases<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    lane: &Lane,
    owner: &str,
    positions: &[i64],
) {
    if positions.is_empty() {
        return;
    }
    let until = shared.claim(owner).until();
    match shared
        .store
        .backend()
        .extend_event_leases(owner, positions, until)
        .await
    {
        Ok(ours) if ours.len() < positions.len() => tracing::warn!(
            %lane,
            lost = positions.len() - ours.len(),
            "lease expired while delivering; another worker delivers those events again"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%lane, %error, "could not extend the batch's leases"),
    }
}

/// Events of a batch whose deliveries finished, not yet completed.
#[derive(Default)]
struct Finished {
    positions: Vec<i64>,
    owed: Vec<NewDelivery>,
}

impl Finished {
    /// Completes the finished events (and records what they still owe) and adds them to
    /// `result`; kept for a later call when the database fails.
    async fn complete<C: Catalog, B: Backend>(
        &mut self,
        shared: &Lanes<C, B>,
        lane: &Lane,
        owner: &str,
        result: &mut DeliveredBatch,
    ) -> Result<(), StoreError> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let completed = shared
            .store
            .backend()
            .complete_events(owner, &self.positions, &self.owed, shared.store.now())
            .await?;
        if !self.owed.is_empty() {
            shared.store.wakes().retries.notify();
        }
        if completed < self.positions.len() as u64 {
            tracing::warn!(
                %lane,
                lost = self.positions.len() as u64 - completed,
                "lease expired during the batch; another worker delivers those events again"
            );
        }
        result.events += completed;
        result.pending.append(&mut self.owed);
        self.positions.clear();
        Ok(())
    }
}

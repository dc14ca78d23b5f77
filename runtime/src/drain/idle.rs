//! Draining until nothing is claimable, in the calling task: what
//! [`super::DrainBuilder::run_until_idle`] does with the lanes' own steps.

use std::collections::HashSet;

use uuid::Uuid;

use super::{Lanes, lanes, release, retries};
use crate::event::catalog::Catalog;
use crate::store::{Backend, DeliveryOutcome, DeliveryState, Lane, StoreError};

/// What [`crate::DrainBuilder::run_until_idle`] did. Deliveries are counted per (event, subscriber)
/// attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainSummary {
    /// Events claimed and processed: each offered once to every subscriber of its type (what
    /// became of those deliveries is counted below).
    pub events: u64,
    /// Deliveries that succeeded, first attempts and retries alike.
    pub delivered: u64,
    /// Delivery attempts that failed with attempts left: the delivery was scheduled again.
    pub retried: u64,
    /// Deliveries that failed their last attempt (or whose subscriber is no longer
    /// registered): dead letters, listed by [`crate::Store::dead_letters`].
    pub dead_lettered: u64,
    /// Deliveries this call left owed, because their retry is due later than its last look (or
    /// they queue behind one that is): not waited for; a later call delivers them once due.
    pub retries_scheduled: u64,
}

/// What [`super::DrainBuilder::run_until_idle`] counts as it goes.
#[derive(Default)]
struct Tally {
    summary: DrainSummary,
    /// The (event, subscriber) pairs whose latest state, written by this call, is owed.
    owed: HashSet<(Uuid, String)>,
}

impl Tally {
    fn batch(&mut self, batch: lanes::DeliveredBatch) {
        self.summary.events += batch.events;
        self.summary.delivered += batch.delivered;
        for delivery in batch.pending {
            self.delivery(
                delivery.event_id,
                delivery.subscriber,
                Some(&delivery.state),
            );
        }
    }

    fn retries(&mut self, outcomes: Vec<DeliveryOutcome>) {
        for outcome in outcomes {
            self.delivery(outcome.event_id, outcome.subscriber, outcome.state.as_ref());
        }
    }

    fn delivery(&mut self, event: Uuid, subscriber: String, state: Option<&DeliveryState>) {
        let key = (event, subscriber);
        match state {
            None => {
                self.summary.delivered += 1;
                self.owed.remove(&key);
            }
            // Queued behind an earlier event of its aggregate, without an attempt: owed, but
            // not a failure.
            Some(DeliveryState::Retry { attempts: 0, .. }) => {
                self.owed.insert(key);
            }
            Some(DeliveryState::Retry { .. }) => {
                self.summary.retried += 1;
                self.owed.insert(key);
            }
            Some(DeliveryState::Failed { .. }) => {
                self.summary.dead_lettered += 1;
                self.owed.remove(&key);
            }
        }
    }

    fn finish(mut self) -> DrainSummary {
        self.summary.retries_scheduled = self.owed.len() as u64;
        self.summary
    }
}

/// Claims and delivers on every lane until one round over all of them finds nothing. Within a
/// lane, events come before retries, so that a retry that became due meanwhile is seen in the
/// same round.
async fn until_idle<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    all: &[Lane],
    tally: &mut Tally,
) -> Result<(), StoreError> {
    loop {
        let mut found = false;
        for lane in all {
            let owner = shared.event_owner(lane);
            while let Some(batch) = lanes::claim_and_deliver(shared, lane, &owner).await? {
                found = true;
                tally.batch(batch);
            }
            let owner = shared.retry_owner(lane);
            while let Some(outcomes) = retries::claim_and_redeliver(shared, lane, &owner).await? {
                found = true;
                tally.retries(outcomes);
            }
        }
        if !found {
            return Ok(());
        }
    }
}

pub(super) async fn run<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    all: &[Lane],
) -> Result<DrainSummary, StoreError> {
    let mut tally = Tally::default();
    let drained = until_idle(shared, all, &mut tally).await;
    // Nothing is held after a clean run; after an error, claims may be.
    for lane in all {
        release(shared, &shared.event_owner(lane)).await;
        release(shared, &shared.retry_owner(lane)).await;
    }
    drained.map(|()| tally.finish())
}

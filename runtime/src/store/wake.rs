//! Wake-ups: how a commit (of this process, or of another through PostgreSQL `LISTEN`) wakes
//! the lanes that claim what it wrote, without waiting for their poll interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Lane;

/// Wakes drain lanes when events commit. A counter in a watch channel, so a lane that was busy
/// when the wake-up came sees it on its next wait instead of losing it.
#[derive(Debug, Clone)]
pub(crate) struct Wake(Arc<watch::Sender<u64>>);

impl Wake {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    pub(crate) fn notify(&self) {
        self.0
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The wake-ups of one store.
#[derive(Debug, Clone)]
pub struct Wakes {
    /// Committed events, in any lane: wakes projectors (event lanes have their own, below).
    pub(crate) events: Wake,
    /// Committed events of one lane: wakes that lane's claims, and no other lane's, when the
    /// commit says which lanes it wrote to (PostgreSQL's notification does).
    lanes: Arc<Mutex<HashMap<Lane, Wake>>>,
    /// New retries or re-driven dead letters: wakes retry lanes.
    pub(crate) retries: Wake,
    /// Enqueued runs: wakes job workers.
    pub(crate) jobs: Wake,
}

impl Wakes {
    pub(crate) fn new() -> Self {
        Self {
            events: Wake::new(),
            lanes: Arc::default(),
            retries: Wake::new(),
            jobs: Wake::new(),
        }
    }

    /// The wake of one event lane.
    pub(crate) fn lane(&self, lane: &Lane) -> Wake {
        self.lanes()
            .entry(lane.clone())
            .or_insert_with(Wake::new)
            .clone()
    }

    /// Events committed in these lanes: wakes them, and every projector.
    #[cfg(feature = "postgres")]
    pub(crate) fn events_in(&self, lanes: impl IntoIterator<Item = Lane>) {
        self.events.notify();
        let wakes = self.lanes();
        for lane in lanes {
            if let Some(wake) = wakes.get(&lane) {
                wake.notify();
            }
        }
    }

    /// Events committed in lanes this process was not told: wakes every lane and projector.
    pub(crate) fn all_events(&self) {
        self.events.notify();
        for wake in self.lanes().values() {
            wake.notify();
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<Lane, Wake>> {
        // A panic while holding this lock leaves the map whole: a wake is only ever added.
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

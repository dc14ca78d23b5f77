//! Wake-ups: how a commit (of this process, or of another through PostgreSQL `LISTEN`) wakes
//! the lanes that claim what it wrote, without waiting for their poll interval.

use std::sync::Arc;

use tokio::sync::watch;

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
    /// Committed events: wakes event lanes.
    pub(crate) events: Wake,
    /// New retries or re-driven dead letters: wakes retry lanes.
    pub(crate) retries: Wake,
    /// Enqueued runs: wakes job workers.
    pub(crate) jobs: Wake,
}

impl Wakes {
    pub(crate) fn new() -> Self {
        Self {
            events: Wake::new(),
            retries: Wake::new(),
            jobs: Wake::new(),
        }
    }
}

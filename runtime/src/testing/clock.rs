//! A clock that moves only when the test moves it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, later};

/// A [`Clock`] a test sets and advances by hand; clones share the same time. Give it to
/// [`crate::Store::with_clock`], then [`ManualClock::advance`] past a lease or a backoff instead
/// of sleeping through it.
///
/// ```
/// # use std::time::Duration;
/// let clock = herald::testing::ManualClock::starting_now();
/// let store = herald::memory().with_clock(clock.clone());
/// let before = store.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(store.now() - before, herald::chrono::Duration::seconds(60));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// A clock stopped at the system's current time.
    pub fn starting_now() -> Self {
        Self::at(Utc::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = later(*now, by);
    }

    /// Sets the clock, forward or back.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = at;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

//! The one clock the runtime reads: system time in production, a clock a test moves by hand
//! ([`crate::testing::ManualClock`]) so that leases and backoffs expire without sleeping.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

/// Where the runtime's "now" comes from. Every machine of one deployment must agree on it
/// within a small fraction of the shortest lease (NTP does this), as with any lease-based
/// queue.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// `at + duration`, saturating at the end of time instead of panicking on a huge duration.
pub(crate) fn later(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| at.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

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

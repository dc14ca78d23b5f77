//! Helpers for the tests of applications built on Herald: given/when/then for aggregates, and
//! the in-memory store's record of what was published, and fault injection (claims of a
//! worker gone silent, rows written by another release).

mod aggregate;
mod clock;
mod faults;

pub use crate::store::RecordedEvent;
pub use aggregate::{Given, Then, ThenState};
pub use clock::ManualClock;
pub use faults::{RawEvent, RawRun, SilentDeliveryClaim, SilentEventClaim, SilentRunClaim};

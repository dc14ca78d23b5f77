//! The vocabulary Herald's generator (`codegen-cli`), its macros (`herald-macros`) and its
//! runtime (`herald`) share: what an event's direction and tier are, how retries back off and
//! count, which pools events and jobs may use, and how names are spelled.
//!
//! It exists so that each rule is written once. The generator checks YAML, the macros check
//! attributes and the runtime acts on the result; when they disagree, a declaration that one
//! of them accepts is refused (or misrouted) by another. Each of them renders a broken rule
//! in its own words, so the rules here return typed answers and leave the wording to the
//! caller.
//!
//! The crate depends on nothing but `std`: build scripts link it through the generator, and
//! the generator must never pull in the runtime.

#![deny(missing_docs)]

mod keyword;
pub mod naming;
pub mod pool;
mod retry;
mod routing;

pub use keyword::Keyword;
pub use pool::DEFAULT_JOB_POOL;
pub use retry::{Backoff, MaxAttempts, RetryPolicy};
pub use routing::{Direction, Tier};

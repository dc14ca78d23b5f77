//! Herald: typed domain events made durable.
//!
//! Applications depend on this crate only. It holds the traits that the code generated from
//! `events/*.yaml` and `entities/*.yaml` implements ([`Event`], [`DomainEvent`], [`Entity`]),
//! the [`Registry`] of event metadata, and re-exports the crates that generated code names,
//! so that an application does not have to keep their versions in step by hand.

mod entity;
mod event;
mod registry;

pub use entity::{Entity, EntityMeta, FieldMeta};
pub use event::{Backoff, Direction, DomainEvent, Event, EventMeta, RetryPolicy, Routing, Tier};
pub use herald_macros::{Entity, Event};
pub use registry::{EventDescriptor, PayloadError, Registry, UnknownEventType};

// Generated code names these through `::herald::…` so that the application needs no direct
// dependency on them (and cannot pick an incompatible version).
pub use chrono;
pub use rust_decimal;
pub use schemars;
pub use serde;
pub use serde_json;
pub use uuid;

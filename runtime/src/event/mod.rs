//! What an event is: the [`Event`] trait the generated payloads implement, its static
//! metadata, the [`registry`] of an application's events, the [`catalog`] type that names that
//! registry, and the [`envelope`] consumers receive.

pub(crate) mod catalog;
pub(crate) mod envelope;
pub(crate) mod registry;
pub(crate) mod upcast;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use herald_vocabulary::{Backoff, Direction, RetryPolicy, Tier};

/// How an event is routed: a domain event has a direction and a delivery pool, an audit event
/// has neither (so neither can be set wrongly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Routing {
    /// A domain event: delivered in its pool, and it may trigger jobs.
    Domain {
        /// Whether it comes from outside, changes the application's own state, or goes outside.
        direction: Direction,
        /// The pool whose drain lanes deliver it: `events_<direction>` unless its YAML names one.
        pool: &'static str,
    },
    /// An audit event: a record, delivered in the `audit` lane, that never triggers work.
    Audit,
}

/// Everything the runtime knows about an event type, fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    /// The `type` of the YAML file, e.g. `contact_created`.
    pub event_type: &'static str,
    /// The payload's schema version: stored with each event, so older payloads can be upcast.
    pub version: u32,
    /// Domain (with its direction and pool) or audit.
    pub routing: Routing,
    /// The aggregate (entity) the event concerns, if any; always set for `change` events.
    pub aggregate: Option<&'static str>,
    /// The external system an inbound event comes from.
    pub source: Option<&'static str>,
    /// The external system an outbound event goes to.
    pub destination: Option<&'static str>,
    /// How deliveries of this event to a failing subscriber are retried.
    pub retry: RetryPolicy,
    /// The YAML's `description`, if any.
    pub description: Option<&'static str>,
}

impl EventMeta {
    /// Domain or audit, from the routing.
    pub const fn tier(&self) -> Tier {
        match self.routing {
            Routing::Domain { .. } => Tier::Domain,
            Routing::Audit => Tier::Audit,
        }
    }

    /// The domain event's direction; `None` for an audit event.
    pub const fn direction(&self) -> Option<Direction> {
        match self.routing {
            Routing::Domain { direction, .. } => Some(direction),
            Routing::Audit => None,
        }
    }

    /// The pool that delivers the event; `None` for an audit event.
    pub const fn pool(&self) -> Option<&'static str> {
        match self.routing {
            Routing::Domain { pool, .. } => Some(pool),
            Routing::Audit => None,
        }
    }
}

/// A typed event payload. Implemented by `#[derive(herald::Event)]`, which the generator puts on
/// every payload struct; hand-written events use the same derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Herald event",
    label = "not an event payload",
    note = "declare it in `events/*.yaml` and regenerate, or add `#[derive(herald::Event)]` with an `#[event(...)]` attribute"
)]
pub trait Event:
    Serialize + DeserializeOwned + schemars::JsonSchema + Clone + Send + Sync + 'static
{
    /// The event type's metadata, from its YAML (through `#[event(...)]`).
    const META: EventMeta;
}

/// A domain-tier event: one that may trigger jobs. Audit-tier events do not implement it, so
/// binding work to them does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is an audit-tier event; audit events never trigger work",
    label = "audit-tier event used where a domain event is required",
    note = "trigger the job from a domain event, or change `tier: audit` to a domain event with a `direction` in its YAML"
)]
pub trait DomainEvent: Event {}

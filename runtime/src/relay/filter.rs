//! Which event types a relay sends out.

use std::collections::BTreeSet;

use crate::event::{Direction, EventMeta};

/// Which event types a [`super::Relay`] publishes. Every criterion that is set must match.
///
/// The default sends every domain event whose direction is `change` or `outbound`: `inbound`
/// events came from outside (often from JetStream itself, through [`super::Inbound`]), and
/// sending them back out would echo them. Audit-tier events go out only after
/// [`EventFilter::include_audit`]; they have no pool and no direction, so only the type
/// criterion applies to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pools: Option<BTreeSet<String>>,
    directions: BTreeSet<&'static str>,
    types: Option<BTreeSet<String>>,
    audit: bool,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self {
            pools: None,
            directions: [Direction::Change, Direction::Outbound]
                .into_iter()
                .map(Direction::as_str)
                .collect(),
            types: None,
            audit: false,
        }
    }
}

impl EventFilter {
    /// Domain events of every direction, inbound included.
    pub fn every_direction() -> Self {
        Self::default().directions(Direction::ALL)
    }

    /// Only domain events of these directions (replaces the default `change` and `outbound`).
    pub fn directions(mut self, directions: impl IntoIterator<Item = Direction>) -> Self {
        self.directions = directions.into_iter().map(Direction::as_str).collect();
        self
    }

    /// Only domain events delivered in these pools.
    pub fn pools<I, S>(mut self, pools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.pools = Some(pools.into_iter().map(Into::into).collect());
        self
    }

    /// Only these event types.
    pub fn types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Audit-tier events go out too (those of [`EventFilter::types`], when it is set).
    pub fn include_audit(mut self) -> Self {
        self.audit = true;
        self
    }

    /// Whether events of the type `meta` are relayed.
    pub fn matches(&self, meta: &EventMeta) -> bool {
        if let Some(types) = &self.types
            && !types.contains(meta.event_type)
        {
            return false;
        }
        match (meta.direction(), meta.pool()) {
            (Some(direction), Some(pool)) => {
                self.directions.contains(direction.as_str())
                    && self.pools.as_ref().is_none_or(|pools| pools.contains(pool))
            }
            _ => self.audit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RetryPolicy, Routing};

    const fn meta(event_type: &'static str, routing: Routing) -> EventMeta {
        EventMeta {
            event_type,
            version: 1,
            routing,
            aggregate: None,
            source: None,
            destination: None,
            retry: RetryPolicy::DEFAULT,
            description: None,
        }
    }

    const CHANGE: EventMeta = meta(
        "contact_created",
        Routing::Domain {
            direction: Direction::Change,
            pool: "events_change",
        },
    );
    const INBOUND: EventMeta = meta(
        "payment_received",
        Routing::Domain {
            direction: Direction::Inbound,
            pool: "events_inbound",
        },
    );
    const AUDIT: EventMeta = meta("sync_completed", Routing::Audit);

    #[test]
    fn the_default_sends_change_and_outbound_but_not_inbound_or_audit() {
        let filter = EventFilter::default();
        assert!(filter.matches(&CHANGE));
        assert!(!filter.matches(&INBOUND));
        assert!(!filter.matches(&AUDIT));
        assert!(EventFilter::every_direction().matches(&INBOUND));
    }

    #[test]
    fn audit_only_when_asked_and_types_narrow_it() {
        assert!(EventFilter::default().include_audit().matches(&AUDIT));
        let narrowed = EventFilter::default()
            .include_audit()
            .types(["contact_created"]);
        assert!(!narrowed.matches(&AUDIT));
        assert!(narrowed.matches(&CHANGE));
    }

    #[test]
    fn pools_narrow_domain_events() {
        let filter = EventFilter::default().pools(["events_outbound"]);
        assert!(!filter.matches(&CHANGE));
        assert!(
            EventFilter::default()
                .pools(["events_change"])
                .matches(&CHANGE)
        );
    }
}

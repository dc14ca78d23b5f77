//! What kind of event something is: its tier, and for a domain event its direction.

use crate::keyword::keyword;

/// Whether an event is a domain fact that may trigger work, or an observation kept for audit.
///
/// The split exists so that audit trails (who looked at what, which request came in) can be
/// stored through the same outbox without any risk of starting work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// A domain fact: delivered to subscribers and may trigger jobs.
    Domain,
    /// An observation: stored and visible to in-process subscribers, never triggers jobs.
    Audit,
}

impl Tier {
    /// Every tier, in the order the documentation lists them (the default first), so that
    /// messages listing the accepted values read the same everywhere.
    pub const ALL: [Tier; 2] = [Tier::Domain, Tier::Audit];

    /// The spelling in YAML (`tier: audit`), in attributes and in the outbox's `tier` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Domain => "domain",
            Tier::Audit => "audit",
        }
    }
}

keyword!(Tier, "tier");

/// Where a domain event comes from or goes to.
///
/// The direction decides the event's delivery lane, so that a slow outbound webhook can never
/// hold up the propagation of state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Arrived from the outside world (a webhook, a message from another system).
    Inbound,
    /// A state change of one of this application's aggregates.
    Change,
    /// Leaves for the outside world (a webhook to send, a sync to run).
    Outbound,
}

impl Direction {
    /// Every direction, in the order the documentation lists them.
    pub const ALL: [Direction; 3] = [Direction::Inbound, Direction::Change, Direction::Outbound];

    /// The spelling in YAML (`direction: change`), in attributes and in the outbox's
    /// `direction` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Change => "change",
            Direction::Outbound => "outbound",
        }
    }

    /// The delivery pool used when an event names none: the reserved prefix and the
    /// direction. A `const fn` returning `&'static str` so that generated `EventMeta`
    /// constants can name it; other pools of the direction extend it (see
    /// [`pool::check_event_pool`](crate::pool::check_event_pool)).
    pub const fn default_pool(self) -> &'static str {
        match self {
            Direction::Inbound => "events_inbound",
            Direction::Change => "events_change",
            Direction::Outbound => "events_outbound",
        }
    }
}

keyword!(Direction, "direction");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::RESERVED_PREFIX;

    #[test]
    fn default_pools_are_the_reserved_prefix_and_the_direction() {
        for direction in Direction::ALL {
            assert_eq!(
                direction.default_pool(),
                format!("{RESERVED_PREFIX}{}", direction.as_str())
            );
        }
    }

    #[test]
    fn default_pool_is_usable_in_constants() {
        const POOL: &str = Direction::Outbound.default_pool();
        assert_eq!(POOL, "events_outbound");
    }
}

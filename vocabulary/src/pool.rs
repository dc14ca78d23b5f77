//! Which pools events and jobs may run in.
//!
//! Event delivery and jobs are claimed by pool. Event pools are reserved (they all start
//! with [`RESERVED_PREFIX`]) so that a job can never land in a delivery lane, where it would
//! compete with, and stall, the propagation of events; and each direction keeps its own
//! pools, so that one event can never sit in another direction's lane.
//!
//! The checks return what is wrong, never a message: the generator, the macros and the runtime
//! each say it in their own words, next to their own spans.

use std::fmt;

use crate::Direction;
use crate::naming::is_snake_case;

/// The start of every event delivery pool's name; job pools may not use it.
pub const RESERVED_PREFIX: &str = "events_";

/// The pool jobs run in unless they say otherwise.
pub const DEFAULT_JOB_POOL: &str = "batch";

/// Whether `pool` is an event delivery pool's name, which jobs may not use.
pub fn is_reserved(pool: &str) -> bool {
    pool.starts_with(RESERVED_PREFIX)
}

/// Why a name is not a pool for events of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventPoolError {
    /// It does not start with [`RESERVED_PREFIX`]: it names a job pool (such as `batch`).
    JobPool,
    /// It starts with [`RESERVED_PREFIX`] but is neither the direction's default pool nor that
    /// pool followed by `_<name>`: most often another direction's pool.
    OtherDirection,
    /// It has the direction's prefix but is not snake_case (`events_change_Bulk`), so it
    /// would not survive being written as a column value and read back by name.
    NotSnakeCase,
}

impl fmt::Display for EventPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventPoolError::JobPool => "a job pool, not an event pool",
            EventPoolError::OtherDirection => "not a pool of the event's direction",
            EventPoolError::NotSnakeCase => "not snake_case",
        })
    }
}

impl std::error::Error for EventPoolError {}

/// Checks that `pool` may deliver events of `direction`: `events_<direction>` (the default)
/// or `events_<direction>_<name>`, in snake_case.
pub fn check_event_pool(direction: Direction, pool: &str) -> Result<(), EventPoolError> {
    let default = direction.default_pool();
    let in_direction = match pool.strip_prefix(default) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('_').is_some_and(|name| !name.is_empty()),
        None => false,
    };
    if !in_direction {
        return Err(if is_reserved(pool) {
            EventPoolError::OtherDirection
        } else {
            EventPoolError::JobPool
        });
    }
    if !is_snake_case(pool) {
        return Err(EventPoolError::NotSnakeCase);
    }
    Ok(())
}

/// Why a name is not a pool for jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobPoolError {
    /// The name is empty, which no worker can be configured for.
    Empty,
    /// It starts with [`RESERVED_PREFIX`], which belongs to event delivery.
    Reserved,
}

impl fmt::Display for JobPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobPoolError::Empty => "the pool name is empty",
            JobPoolError::Reserved => "`events_*` pools are reserved for event delivery",
        })
    }
}

impl std::error::Error for JobPoolError {}

/// Checks that jobs may run in `pool`: any non-empty name outside the reserved prefix.
pub fn check_job_pool(pool: &str) -> Result<(), JobPoolError> {
    if pool.is_empty() {
        Err(JobPoolError::Empty)
    } else if is_reserved(pool) {
        Err(JobPoolError::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_means_the_events_prefix() {
        assert!(is_reserved("events_change"));
        assert!(is_reserved("events_"));
        assert!(!is_reserved("events"));
        assert!(!is_reserved("batch"));
        assert!(!is_reserved("my_events_pool"));
    }

    #[test]
    fn default_pools_are_event_pools() {
        for direction in Direction::ALL {
            assert_eq!(
                check_event_pool(direction, direction.default_pool()),
                Ok(())
            );
        }
    }

    #[test]
    fn named_pools_extend_the_default() {
        assert_eq!(
            check_event_pool(Direction::Change, "events_change_bulk"),
            Ok(())
        );
        assert_eq!(
            check_event_pool(Direction::Outbound, "events_outbound_crm_2"),
            Ok(())
        );
    }

    #[test]
    fn another_directions_pool_is_refused() {
        use EventPoolError::OtherDirection;
        assert_eq!(
            check_event_pool(Direction::Inbound, "events_change"),
            Err(OtherDirection)
        );
        assert_eq!(
            check_event_pool(Direction::Change, "events_outbound_crm"),
            Err(OtherDirection)
        );
        // The prefix must end at a word boundary, and a named pool needs a name.
        assert_eq!(
            check_event_pool(Direction::Change, "events_changes"),
            Err(OtherDirection)
        );
        assert_eq!(
            check_event_pool(Direction::Change, "events_change_"),
            Err(OtherDirection)
        );
        assert_eq!(
            check_event_pool(Direction::Change, "events_"),
            Err(OtherDirection)
        );
    }

    #[test]
    fn job_pools_are_not_event_pools() {
        use EventPoolError::JobPool;
        for pool in ["batch", "interactive", "", "change", "Events_change"] {
            assert_eq!(
                check_event_pool(Direction::Change, pool),
                Err(JobPool),
                "{pool:?}"
            );
        }
    }

    #[test]
    fn event_pools_are_snake_case() {
        use EventPoolError::NotSnakeCase;
        assert_eq!(
            check_event_pool(Direction::Change, "events_change_Bulk"),
            Err(NotSnakeCase)
        );
        assert_eq!(
            check_event_pool(Direction::Change, "events_change__bulk"),
            Err(NotSnakeCase)
        );
    }

    #[test]
    fn job_pools() {
        assert_eq!(check_job_pool(DEFAULT_JOB_POOL), Ok(()));
        assert_eq!(check_job_pool("interactive"), Ok(()));
        assert_eq!(check_job_pool("events"), Ok(()));
        assert_eq!(check_job_pool(""), Err(JobPoolError::Empty));
        assert_eq!(check_job_pool("events_change"), Err(JobPoolError::Reserved));
        assert_eq!(check_job_pool("events_mine"), Err(JobPoolError::Reserved));
    }

    #[test]
    fn errors_display_the_rule() {
        assert_eq!(
            EventPoolError::JobPool.to_string(),
            "a job pool, not an event pool"
        );
        assert_eq!(
            EventPoolError::OtherDirection.to_string(),
            "not a pool of the event's direction"
        );
        assert_eq!(EventPoolError::NotSnakeCase.to_string(), "not snake_case");
        assert_eq!(JobPoolError::Empty.to_string(), "the pool name is empty");
        assert!(JobPoolError::Reserved.to_string().contains("reserved"));
    }
}

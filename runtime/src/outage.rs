//! How a background loop reports a database that fails: once when an outage begins (a
//! warning), once when it ends (how long it lasted, how many tries failed), and the tries in
//! between only at debug level — a server down for a minute is two lines per loop, not 240.

use std::fmt::Display;
use std::time::Instant;

/// One loop's outage, if it is in one.
#[derive(Debug)]
pub(crate) struct Outage {
    task: &'static str,
    current: Option<Streak>,
}

#[derive(Debug)]
struct Streak {
    since: Instant,
    failures: u32,
}

impl Outage {
    /// `task` names the loop in every line it logs.
    pub(crate) const fn new(task: &'static str) -> Self {
        Self {
            task,
            current: None,
        }
    }

    /// A try failed: logged as a warning if it begins an outage, at debug level otherwise.
    pub(crate) fn failed(&mut self, scope: &dyn Display, error: &dyn Display) {
        match &mut self.current {
            None => {
                tracing::warn!(
                    task = self.task,
                    %scope,
                    %error,
                    "database query failed; retrying until it succeeds"
                );
                self.current = Some(Streak {
                    since: Instant::now(),
                    failures: 1,
                });
            }
            Some(streak) => {
                streak.failures += 1;
                tracing::debug!(task = self.task, %scope, %error, failures = streak.failures, "still failing");
            }
        }
    }

    /// A try succeeded: ends the outage, if there was one, with a line that says so.
    pub(crate) fn succeeded(&mut self, scope: &dyn Display) {
        if let Some(streak) = self.current.take() {
            tracing::info!(
                task = self.task,
                %scope,
                failures = streak.failures,
                lasted = ?streak.since.elapsed(),
                "database queries succeed again; resumed"
            );
        }
    }

    /// Whether the loop is in an outage (for tests of the loops).
    #[cfg(test)]
    pub(crate) fn is_ongoing(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_begins_at_the_first_failure_and_ends_at_the_next_success() {
        let mut outage = Outage::new("test");
        outage.succeeded(&"lane");
        assert!(!outage.is_ongoing());
        outage.failed(&"lane", &"connection refused");
        outage.failed(&"lane", &"connection refused");
        assert!(outage.is_ongoing());
        assert_eq!(outage.current.as_ref().map(|s| s.failures), Some(2));
        outage.succeeded(&"lane");
        assert!(!outage.is_ongoing());
    }
}

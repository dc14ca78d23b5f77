//! Given/when/then for aggregates: `decide` and `apply` tested without a database.

use crate::aggregate::{Decide, JobQueue};

/// Given these events, when this command, then these events (or this error) and these jobs —
/// without a database. For unit tests of `decide` and `apply`.
pub struct Given<A: Decide> {
    state: A,
}

impl<A: Decide> Given<A> {
    /// The aggregate after `history`, applied in order to `A::default()`.
    pub fn events(history: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        for event in history {
            state.apply(&event);
        }
        Self { state }
    }

    /// The decision on `command`.
    pub fn when(self, command: A::Command) -> Then<A> {
        let mut jobs = JobQueue::new();
        let result = self.state.decide(command, &mut jobs);
        Then {
            state: self.state,
            result,
            jobs,
        }
    }
}

/// What a command decided, to assert on.
pub struct Then<A: Decide> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
    jobs: JobQueue,
}

impl<A: Decide> Then<A> {
    /// Asserts the decision produced exactly `expected`; returns the state after applying them.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> ThenState<A> {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command decided other events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                ThenState {
                    state,
                    jobs: self.jobs,
                }
            }
            Err(error) => panic!("expected events {expected:?}, the command failed: {error}"),
        }
    }

    /// Asserts the decision failed, and that the error satisfies `check`; nothing is enqueued
    /// with a failed decision.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, the command decided {events:?}"),
            Err(error) => assert!(check(&error), "unexpected error: {error}"),
        }
    }
}

/// The state and the jobs after an accepted command.
pub struct ThenState<A: Decide> {
    /// The state after the decided events.
    pub state: A,
    /// The jobs the decision enqueued.
    pub jobs: JobQueue,
}

impl<A: Decide> ThenState<A> {
    /// Asserts the decision enqueued exactly these jobs, in order.
    #[track_caller]
    pub fn then_jobs(self, expected: &[&str]) -> Self {
        assert_eq!(
            self.jobs.job_names(),
            expected,
            "the command enqueued other jobs"
        );
        self
    }
}

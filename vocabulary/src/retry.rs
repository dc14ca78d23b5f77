//! How often work is attempted, and how long to wait between attempts.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::keyword::keyword;

/// The growth of the delay between attempts.
///
/// Only the shape lives here; the base, the cap and the jitter belong to whoever runs the
/// attempts (the runtime's `RetryTiming`), so that a test can shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backoff {
    /// base · 2^(attempt-1), capped.
    Exponential,
    /// base · attempt, capped.
    Linear,
    /// base every time.
    Fixed,
}

impl Backoff {
    /// Every backoff, in the order the documentation lists them (the default first).
    pub const ALL: [Backoff; 3] = [Backoff::Exponential, Backoff::Linear, Backoff::Fixed];

    /// The spelling in YAML (`backoff: linear`) and in attributes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backoff::Exponential => "exponential",
            Backoff::Linear => "linear",
            Backoff::Fixed => "fixed",
        }
    }

    /// The delay after failed attempt number `attempt` (1-based; 0 counts as 1), never more
    /// than `cap`.
    ///
    /// Deliberately without jitter, so that it is pure and testable: the caller spreads it
    /// (the runtime takes a random point of its upper half) so that attempts that failed
    /// together do not retry together. Saturates instead of overflowing, because an attempt
    /// number comes from a database row and may be anything.
    pub fn delay(self, base: Duration, cap: Duration, attempt: u32) -> Duration {
        let steps = attempt.max(1);
        let full = match self {
            Backoff::Fixed => base,
            Backoff::Linear => base.saturating_mul(steps),
            Backoff::Exponential => base.saturating_mul(2u32.saturating_pow((steps - 1).min(31))),
        };
        full.min(cap)
    }
}

keyword!(Backoff, "backoff");

/// How many times a piece of work is attempted in all, the first attempt included.
///
/// Two counts meet here: an event's `retry: { attempts: N }` counts every attempt (N = 1 is
/// "never retry"), while `#[job_handler(retries = N)]` counts the re-runs after the first one
/// (N = 0 is "never retry"). Neither can change, so the only way to get from either to the
/// other is through a constructor that names its unit, and the value inside is always the
/// total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaxAttempts(NonZeroU32);

impl MaxAttempts {
    /// A single attempt: no retry at all.
    pub const ONCE: MaxAttempts = MaxAttempts(NonZeroU32::MIN);

    /// `attempts` attempts in all, the first one included; `None` for 0, since work that is
    /// never attempted is not a retry policy.
    pub const fn total(attempts: u32) -> Option<Self> {
        match NonZeroU32::new(attempts) {
            Some(attempts) => Some(MaxAttempts(attempts)),
            None => None,
        }
    }

    /// A first attempt and then up to `retries` more; `None` when the total does not fit in
    /// a `u32` (`retries = u32::MAX`).
    pub const fn after_first(retries: u32) -> Option<Self> {
        match retries.checked_add(1) {
            Some(total) => Self::total(total),
            None => None,
        }
    }

    /// The total number of attempts, the first one included (at least 1).
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The attempts after the first one: what `retries = N` would say.
    pub const fn retries(self) -> u32 {
        self.0.get() - 1
    }
}

/// How often, and how patiently, something is attempted before it is given up (an event
/// dead-lettered, a job run `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (at least 1; 0 is treated as 1, see
    /// [`RetryPolicy::max_attempts`]). A plain number rather than [`MaxAttempts`] because
    /// generated code writes the struct literally in `const` items; build it with
    /// [`RetryPolicy::new`] to have the unit checked.
    pub attempts: u32,
    /// How the delay grows from one attempt to the next.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// The policy of an event whose YAML has no `retry:` block: ten attempts in all, with
    /// exponential backoff.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 10,
        backoff: Backoff::Exponential,
    };

    /// The policy of a `#[job_handler]` without `retries` or `max_attempts`: a first attempt
    /// and ten re-runs (`retries = 10`), with exponential backoff. One more attempt than
    /// [`RetryPolicy::DEFAULT`] because the jobs' default has always been counted in
    /// retries.
    pub const JOB_DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 11,
        backoff: Backoff::Exponential,
    };

    /// A policy whose number of attempts was counted in a named unit.
    pub const fn new(attempts: MaxAttempts, backoff: Backoff) -> Self {
        RetryPolicy {
            attempts: attempts.get(),
            backoff,
        }
    }

    /// The total attempts, with a hand-written `attempts: 0` read as a single attempt: the
    /// work has to run once for there to be anything to retry.
    pub const fn max_attempts(self) -> MaxAttempts {
        match MaxAttempts::total(self.attempts) {
            Some(attempts) => attempts,
            None => MaxAttempts::ONCE,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(1);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let delay = |attempt| Backoff::Exponential.delay(BASE, CAP, attempt);
        assert_eq!(delay(1), ms(100));
        assert_eq!(delay(2), ms(200));
        assert_eq!(delay(3), ms(400));
        assert_eq!(delay(4), ms(800));
        assert_eq!(delay(5), CAP);
        assert_eq!(delay(u32::MAX), CAP, "a huge attempt number saturates");
    }

    #[test]
    fn linear_grows_by_the_base_then_caps() {
        let delay = |attempt| Backoff::Linear.delay(BASE, CAP, attempt);
        assert_eq!(delay(1), ms(100));
        assert_eq!(delay(4), ms(400));
        assert_eq!(delay(11), CAP);
        assert_eq!(delay(u32::MAX), CAP);
    }

    #[test]
    fn fixed_stays_at_the_base() {
        for attempt in [1, 2, 9, u32::MAX] {
            assert_eq!(Backoff::Fixed.delay(BASE, CAP, attempt), BASE);
        }
        assert_eq!(Backoff::Fixed.delay(BASE, ms(50), 1), ms(50), "capped too");
    }

    #[test]
    fn attempt_zero_counts_as_the_first() {
        for backoff in Backoff::ALL {
            assert_eq!(
                backoff.delay(BASE, CAP, 0),
                backoff.delay(BASE, CAP, 1),
                "{backoff:?}"
            );
        }
    }

    #[test]
    fn huge_bases_saturate_instead_of_overflowing() {
        let base = Duration::MAX;
        for backoff in Backoff::ALL {
            assert_eq!(backoff.delay(base, Duration::MAX, 40), Duration::MAX);
        }
    }

    #[test]
    fn max_attempts_in_total() {
        assert_eq!(MaxAttempts::total(0), None);
        let one = MaxAttempts::total(1).expect("1 attempt");
        assert_eq!((one.get(), one.retries()), (1, 0));
        assert_eq!(one, MaxAttempts::ONCE);
        let max = MaxAttempts::total(u32::MAX).expect("u32::MAX attempts");
        assert_eq!(max.retries(), u32::MAX - 1);
    }

    #[test]
    fn max_attempts_after_the_first() {
        let none = MaxAttempts::after_first(0).expect("no retry");
        assert_eq!((none.get(), none.retries()), (1, 0));
        let five = MaxAttempts::after_first(5).expect("5 retries");
        assert_eq!((five.get(), five.retries()), (6, 5));
        assert_eq!(Some(five), MaxAttempts::total(6));
        assert_eq!(MaxAttempts::after_first(u32::MAX), None);
        assert!(MaxAttempts::after_first(u32::MAX - 1).is_some());
    }

    #[test]
    fn max_attempts_order_by_total() {
        assert!(MaxAttempts::total(2) < MaxAttempts::total(3));
        assert!(MaxAttempts::after_first(2) > MaxAttempts::total(2));
    }

    #[test]
    fn event_default_is_ten_attempts_exponential() {
        assert_eq!(RetryPolicy::DEFAULT.attempts, 10);
        assert_eq!(RetryPolicy::DEFAULT.backoff, Backoff::Exponential);
        assert_eq!(RetryPolicy::default(), RetryPolicy::DEFAULT);
    }

    #[test]
    fn job_default_is_ten_retries() {
        assert_eq!(
            RetryPolicy::JOB_DEFAULT,
            RetryPolicy::new(
                MaxAttempts::after_first(10).expect("10 retries"),
                Backoff::Exponential
            )
        );
    }

    #[test]
    fn new_stores_the_total() {
        let policy = RetryPolicy::new(
            MaxAttempts::after_first(2).expect("2 retries"),
            Backoff::Fixed,
        );
        assert_eq!(
            policy,
            RetryPolicy {
                attempts: 3,
                backoff: Backoff::Fixed
            }
        );
    }

    #[test]
    fn max_attempts_reads_zero_as_once() {
        let written = RetryPolicy {
            attempts: 0,
            backoff: Backoff::Fixed,
        };
        assert_eq!(written.max_attempts(), MaxAttempts::ONCE);
        assert_eq!(RetryPolicy::DEFAULT.max_attempts().get(), 10);
    }

    #[test]
    fn policies_are_usable_in_constants() {
        const POLICY: RetryPolicy = RetryPolicy::new(MaxAttempts::ONCE, Backoff::Linear);
        const TOTAL: u32 = POLICY.max_attempts().get();
        assert_eq!(TOTAL, 1);
    }
}

//! Delays between delivery attempts.

use std::time::Duration;

use crate::event::Backoff;

/// The clock of retries: what an attempt's delay grows from, and where it stops growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTiming {
    /// The delay before the second attempt.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Default for RetryTiming {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl RetryTiming {
    /// The delay after failed attempt number `attempt` (1-based): the backoff's delay, capped,
    /// then jittered down by up to half so that deliveries that failed together do not retry
    /// together ("equal jitter").
    pub fn delay(&self, backoff: Backoff, attempt: u32) -> Duration {
        let full = backoff.delay(self.base, self.cap, attempt);
        let half = full / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A uniform number in [0, 1) from the operating system's randomness that UUID v4 already uses.
fn unit_random() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: RetryTiming = RetryTiming {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };

    fn assert_between(delay: Duration, low_ms: u64, high_ms: u64) {
        assert!(
            delay >= Duration::from_millis(low_ms) && delay <= Duration::from_millis(high_ms),
            "{delay:?} not in [{low_ms}ms, {high_ms}ms]"
        );
    }

    #[test]
    fn exponential_doubles_then_caps() {
        for _ in 0..50 {
            assert_between(TIMING.delay(Backoff::Exponential, 1), 50, 100);
            assert_between(TIMING.delay(Backoff::Exponential, 3), 200, 400);
            assert_between(TIMING.delay(Backoff::Exponential, 30), 500, 1000);
        }
    }

    #[test]
    fn linear_grows_by_the_base() {
        for _ in 0..50 {
            assert_between(TIMING.delay(Backoff::Linear, 4), 200, 400);
        }
    }

    #[test]
    fn fixed_stays_at_the_base() {
        for _ in 0..50 {
            assert_between(TIMING.delay(Backoff::Fixed, 9), 50, 100);
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| TIMING.delay(Backoff::Fixed, 1)).collect();
        assert!(delays.len() > 1, "20 jittered delays were all equal");
    }
}

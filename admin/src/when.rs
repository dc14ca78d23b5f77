//! Ages (`90s`, `15m`, `2h`, `7d`, `2w`) and points in time as flags take them.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A length of time written as a number and a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Age(pub(crate) Duration);

impl FromStr for Age {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let hint = || {
            format!("`{text}` is not an age: write a number and a unit, e.g. 90s, 15m, 2h, 7d, 2w")
        };
        let number: u64 = number.parse().map_err(|_| hint())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(hint()),
        };
        number
            .checked_mul(seconds)
            .map(|seconds| Age(Duration::from_secs(seconds)))
            .ok_or_else(|| format!("`{text}` is longer than any retention can be"))
    }
}

/// A point in time: an age before now, or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    Ago(Age),
    At(DateTime<Utc>),
}

impl Since {
    pub(crate) fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(at) => at,
            Since::Ago(Age(age)) => chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| now.checked_sub_signed(age))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

impl FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
            return Ok(Since::At(at.with_timezone(&Utc)));
        }
        text.parse::<Age>().map(Since::Ago).map_err(|_| {
            format!(
                "`{text}` is neither an age (90s, 15m, 2h, 7d) nor a time \
                 (2026-12-01T09:00:00Z)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!("90s".parse(), Ok(Age(Duration::from_secs(90))));
        assert_eq!("7d".parse(), Ok(Age(Duration::from_secs(7 * 86_400))));
        for bad in ["", "7", "d", "7 days", "-1d", "1.5h"] {
            let error = bad.parse::<Age>().expect_err(bad);
            assert!(error.contains("e.g. 90s, 15m, 2h, 7d"), "{error}");
        }
        assert!(
            "99999999999999999w"
                .parse::<Age>()
                .expect_err("overflow")
                .contains("longer")
        );
    }

    #[test]
    fn a_point_in_time_is_an_age_ago_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let hour_ago: Since = "1h".parse().expect("an age");
        assert_eq!(hour_ago.resolve(now), now - chrono::Duration::hours(1));
        let at: Since = "2026-12-01T09:00:00+01:00".parse().expect("a time");
        assert_eq!(at.resolve(now).to_rfc3339(), "2026-12-01T08:00:00+00:00");
        assert!(
            "yesterday"
                .parse::<Since>()
                .expect_err("not a time")
                .contains("neither an age")
        );
    }
}

//! How values are written for people, the same in the CLI's tables and the dashboard's pages.

use std::time::Duration;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use herald::ops::{RunInfo, RunStatus};
use herald::uuid::Uuid;

/// `45s`, `3m 04s`, `2h 05m`, `3d 04h`: precise enough to read a lag at a glance.
pub fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3_600..86_400 => format!("{}h {:02}m", seconds / 3_600, seconds % 3_600 / 60),
        _ => format!("{}d {:02}h", seconds / 86_400, seconds % 86_400 / 3_600),
    }
}

/// How long ago `at` was, or how far ahead (`in 3m 04s`) when it is in the future.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (now - at).to_std() {
        Ok(ago) => format!("{} ago", duration(ago)),
        Err(_) => format!("in {}", duration((at - now).to_std().unwrap_or_default())),
    }
}

/// A time in UTC to the second.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional cell: `-` when there is nothing.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// The trace an event or run belongs to, by the id a tracing backend finds it by: `-` when it
/// was stored without one.
pub fn trace_id(trace: Option<&herald::TraceContext>) -> String {
    or_dash(trace.map(herald::TraceContext::trace_id))
}

/// The aggregate of an event or run, as `type:id`.
pub fn aggregate(kind: Option<&str>, id: Option<&str>) -> String {
    match (kind, id) {
        (Some(kind), Some(id)) => format!("{kind}:{id}"),
        (Some(kind), None) => kind.to_owned(),
        _ => "-".to_owned(),
    }
}

/// The first line of an error, cut to fit a table cell.
pub fn first_line(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let cut: String = line.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// A run's status, with when a pending run is due and until when a running one is leased.
pub fn run_status(run: &RunInfo, now: DateTime<Utc>) -> String {
    match (run.status, run.lease_expires_at) {
        (RunStatus::Pending, _) if run.run_at > now => {
            format!("pending (due {})", relative(run.run_at, now))
        }
        (RunStatus::Running, Some(lease)) => format!("running (lease {})", relative(lease, now)),
        (status, _) => status.as_str().to_owned(),
    }
}

/// An aggregate named as `contact` (every one of the type) or `contact:<id>` (one), as the
/// event filters take it.
pub fn aggregate_filter(text: &str) -> (String, Option<String>) {
    match text.split_once(':') {
        Some((kind, id)) => (kind.to_owned(), Some(id.to_owned())),
        None => (text.to_owned(), None),
    }
}

/// The runs of one tree by parent (`None`: the top-level run), each level oldest first: what
/// the CLI and the dashboard draw a tree from.
pub fn run_tree(runs: &[RunInfo]) -> BTreeMap<Option<Uuid>, Vec<&RunInfo>> {
    let mut children: BTreeMap<Option<Uuid>, Vec<&RunInfo>> = BTreeMap::new();
    for run in runs {
        children.entry(run.parent_id).or_default().push(run);
    }
    for level in children.values_mut() {
        level.sort_by_key(|run| (run.created_at, run.id));
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (184, "3m 04s"),
            (7_500, "2h 05m"),
            (273_600, "3d 04h"),
        ];
        for (seconds, text) in cases {
            assert_eq!(duration(Duration::from_secs(seconds)), text);
        }
    }

    #[test]
    fn long_errors_are_cut_to_their_cell() {
        assert_eq!(first_line("short\nsecond line", 20), "short");
        assert_eq!(first_line("abcdefghij", 5), "abcd…");
    }
}

//! Tables for people and JSON for scripts, and the few ways a value is written in them.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a command's result goes, and in which form.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints `value` as one JSON document, or `human` as text.
    pub(crate) fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)
        } else {
            human(&mut out)
        }
    }

    /// Prints `value` as one line of JSON (for following), or `human` as a line of text.
    pub(crate) fn print_line<T: Serialize>(&self, value: &T, human: &str) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if self.json {
            serde_json::to_writer(&mut out, value)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{human}")?;
        }
        out.flush()
    }
}

/// Columns aligned on their widest cell; numbers right-aligned.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a header ending in `#` is numeric (the `#` is not shown).
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.trim_end_matches('#')).collect(),
            numeric: headers.iter().map(|h| h.ends_with('#')).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .chain([self.headers[column].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (column, cell) in cells.iter().enumerate() {
                if column > 0 {
                    text.push_str("  ");
                }
                let pad = widths[column].saturating_sub(cell.chars().count());
                if self.numeric[column] {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if column + 1 < cells.len() {
                        text.push_str(&" ".repeat(pad));
                    }
                }
            }
            text
        };
        writeln!(out, "{}", line(self.headers.clone()))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    }
}

/// `45s`, `3m 04s`, `2h 05m`, `3d 04h`: precise enough to read a lag at a glance.
pub(crate) fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3_600..86_400 => format!("{}h {:02}m", seconds / 3_600, seconds % 3_600 / 60),
        _ => format!("{}d {:02}h", seconds / 86_400, seconds % 86_400 / 3_600),
    }
}

/// How long ago `at` was, or how far ahead (`in 3m 04s`) when it is in the future.
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (now - at).to_std() {
        Ok(ago) => format!("{} ago", duration(ago)),
        Err(_) => format!("in {}", duration((at - now).to_std().unwrap_or_default())),
    }
}

/// A time in UTC to the second.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional cell: `-` when there is nothing.
pub(crate) fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// The aggregate of an event or run, as `type:id`.
pub(crate) fn aggregate(kind: Option<&str>, id: Option<&str>) -> String {
    match (kind, id) {
        (Some(kind), Some(id)) => format!("{kind}:{id}"),
        (Some(kind), None) => kind.to_owned(),
        _ => "-".to_owned(),
    }
}

/// The first line of an error, cut to fit a table cell.
pub(crate) fn first_line(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let cut: String = line.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
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
    fn tables_align_text_left_and_numbers_right() {
        let mut table = Table::new(&["LANE", "PENDING#"]);
        table.row(vec!["events_change".to_owned(), "7".to_owned()]);
        table.row(vec!["audit".to_owned(), "1200".to_owned()]);
        let mut out = Vec::new();
        table.write(&mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "LANE           PENDING\nevents_change        7\naudit             1200\n"
        );
    }

    #[test]
    fn long_errors_are_cut_to_their_cell() {
        assert_eq!(first_line("short\nsecond line", 20), "short");
        assert_eq!(first_line("abcdefghij", 5), "abcd…");
    }
}

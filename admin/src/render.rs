//! Tables for people and JSON for scripts.

use std::io::Write;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

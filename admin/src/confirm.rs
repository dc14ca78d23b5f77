//! The question every destructive command asks unless `--yes` is given.

use std::io::{BufRead, Write};

use crate::Failure;

/// Asks `question` on the terminal and reads the answer from standard input: only `y` or `yes`
/// goes ahead. With no answer to read (standard input closed, as in a script that forgot
/// `--yes`) nothing changes.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => {
            eprintln!("(answered no; pass --yes to skip this question)");
            Err(Failure::Declined)
        }
    }
}

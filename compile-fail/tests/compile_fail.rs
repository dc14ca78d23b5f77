//! What the compiler refuses, one file per rule with its message pinned beside it (regenerate
//! with `TRYBUILD=overwrite` and read every `.stderr`):
//!
//! - `tests/generated/`: the rules of the code generated from `events/` and `entities/`
//!   (publishing outside a transaction, triggers on audit events, reserved pools, ...), against
//!   this crate's `app::domain`;
//! - `tests/macros/`: the mistakes `#[derive(Event)]`, `#[derive(Entity)]`,
//!   `#[derive(Aggregate)]` and `#[job_handler]` report, on hand-written types.
//!
//! One `TestCases`, so that every case is compiled in one project and herald is built once.

use std::io::Write;

const SUITES: [&str; 2] = ["tests/generated", "tests/macros"];

#[test]
fn compile_fail() {
    let cases: usize = SUITES
        .iter()
        .map(|suite| {
            std::fs::read_dir(suite).map_or(0, |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "rs"))
                    .count()
            })
        })
        .sum();
    // The harness shows nothing of a passing test but "has been running for over 60 seconds":
    // say what the wait is, past its capture (which takes only `print!` output).
    let _ = writeln!(
        std::io::stderr(),
        "compile-fail: {cases} cases, compiled against herald in target/tests/trybuild \
         (a minute or two the first time, seconds after)"
    );
    let cases = trybuild::TestCases::new();
    for suite in SUITES {
        cases.compile_fail(format!("{suite}/*.rs"));
    }
}

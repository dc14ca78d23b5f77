//! The short form of the chaos suite (`herald_chaos`, see its documentation and README's
//! "Chaos" section for the full run): a few SIGKILLs of workers and of the producer mid
//! transaction, connection storms on PostgreSQL; nothing lost, reordered or half-written.

use std::process::Command;

use integration_tests::support::postgres_url;

fn short_run(extra: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald_chaos"))
        .args([
            "run",
            "--events",
            "600",
            "--workers",
            "2",
            "--kills",
            "5",
            "--pause-ms",
            "200..500",
            "--seed",
            "7",
        ])
        .args(extra)
        .output()
        .expect("run herald_chaos");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}");
    assert!(
        output.status.success() && report.contains("verdict: sound"),
        "the chaos run found a hole:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn sqlite_chaos_loses_nothing() {
    short_run(&[]);
}

#[test]
fn postgres_chaos_loses_nothing() {
    let Some(url) = postgres_url("postgres_chaos_loses_nothing") else {
        return;
    };
    short_run(&["--postgres-url", &url]);
}

//! Generates the example domain into OUT_DIR, as an application using the build.rs path would.
//!
//! It also says, once per build and where `cargo test` shows it, which database and NATS tests
//! will skip: their own SKIPPED lines are printed by passing tests, whose output the test
//! harness hides.

/// The servers behind the tests that skip without them, and what each one runs.
const SERVERS: [(&str, &str); 3] = [
    (
        "HERALD_TEST_POSTGRES_URL",
        "the PostgreSQL tests will be skipped; set it to a server, e.g. postgres://postgres@127.0.0.1:5432/test (.ci/run does)",
    ),
    (
        "HERALD_TEST_NATS_URL",
        "the NATS relay tests will be skipped; set it to a server with JetStream, e.g. nats://127.0.0.1:4222 (.ci/run does)",
    ),
    (
        "HERALD_TEST_POSTGRES_BIN",
        "the PostgreSQL server-restart test will be skipped; set it to the directory of initdb and pg_ctl, e.g. /usr/lib/postgresql/15/bin (.ci/run does)",
    ),
];

fn main() -> Result<(), herald_codegen::BuildError> {
    for (var, skipped) in SERVERS {
        println!("cargo:rerun-if-env-changed={var}");
        if std::env::var_os(var).is_none_or(|url| url.is_empty()) {
            println!("cargo:warning={var} is unset: {skipped}");
        }
    }
    herald_codegen::Builder::new()
        .events_dir("../events")
        .entities_dir("../entities")
        .compile()
}

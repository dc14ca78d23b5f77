//! Under `CI=true` nothing may skip: the PostgreSQL and NATS tests pass without their server
//! (printing SKIPPED, which the harness hides for passing tests), so this test is what fails
//! when CI lost a variable. Outside CI the build script's warning says what will be skipped.

use integration_tests::nats::NATS_URL_VAR;
use integration_tests::support::{POSTGRES_BIN_VAR, POSTGRES_URL_VAR};

#[test]
fn ci_names_every_test_server() {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        let missing: Vec<&str> = [POSTGRES_URL_VAR, NATS_URL_VAR, POSTGRES_BIN_VAR]
            .into_iter()
            .filter(|var| !std::env::var(var).is_ok_and(|url| !url.is_empty()))
            .collect();
        assert!(
            missing.is_empty(),
            "CI=true but {} {} unset: the tests that need {} would be skipped; .ci/run sets {}",
            missing.join(" and "),
            if missing.len() == 1 { "is" } else { "are" },
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        );
    }
}

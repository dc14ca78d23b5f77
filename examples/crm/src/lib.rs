//! The example CRM. `generated/` is the checked-in output of `cargo run -p codegen-cli
//! generate` for the repository's `events/` and `entities/`; CI fails when it is stale.

// prettyplease, not rustfmt, formats generated code; `cargo fmt` must leave it alone so that
// `generate --check` keeps passing.
#[rustfmt::skip]
pub mod generated;

pub mod contact;
pub mod jobs;

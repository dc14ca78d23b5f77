//! Compile errors of the derives: one file per rule under `tests/ui/`, each with the exact
//! output expected (regenerate with `TRYBUILD=overwrite` and read every `.stderr`).

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}

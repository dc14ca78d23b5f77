//! Rules the type system enforces on generated code: one file per rule under `tests/ui/`,
//! with the compiler's message pinned beside it.

#[test]
fn compile_fail() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}

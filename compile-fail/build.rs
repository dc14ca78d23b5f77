//! Generates the example domain into OUT_DIR, as an application using the build.rs path would.

fn main() -> Result<(), herald_codegen::BuildError> {
    herald_codegen::Builder::new()
        .events_dir("../events")
        .entities_dir("../entities")
        .compile()
}

//! The build.rs entry point, in the style of `prost_build::Config`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::emit::Layout;
use crate::output::write_files;
use crate::source::SourceMap;
use crate::{Diagnostics, Generator, Options, generate, load_sources, yaml_files};

/// Generates the code in a build script.
///
/// ```no_run
/// fn main() -> Result<(), herald_codegen::BuildError> {
///     herald_codegen::Builder::new().events_dir("../events").compile()
/// }
/// ```
/// The output is one file, `herald.rs` in `OUT_DIR`, for `include!`.
#[derive(Debug, Clone)]
pub struct Builder {
    events_dir: PathBuf,
    entities_dir: PathBuf,
    out_dir: Option<PathBuf>,
    emit_rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Reads `events/` and `entities/` beside `Cargo.toml`.
    pub fn new() -> Self {
        Self {
            events_dir: PathBuf::from("events"),
            entities_dir: PathBuf::from("entities"),
            out_dir: None,
            emit_rerun_if_changed: true,
        }
    }

    pub fn events_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.events_dir = dir.into();
        self
    }

    pub fn entities_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.entities_dir = dir.into();
        self
    }

    /// Where `herald.rs` goes; `OUT_DIR` by default.
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (on by default).
    pub fn emit_rerun_if_changed(&mut self, yes: bool) -> &mut Self {
        self.emit_rerun_if_changed = yes;
        self
    }

    /// Checks the YAML and writes `herald.rs`, or returns every problem found.
    pub fn compile(&self) -> Result<(), BuildError> {
        if self.emit_rerun_if_changed {
            // The directories too: a new file must trigger a rebuild.
            for dir in [&self.events_dir, &self.entities_dir] {
                println!("cargo:rerun-if-changed={}", dir.display());
                for file in yaml_files(dir).map_err(BuildError::Io)? {
                    println!("cargo:rerun-if-changed={}", file.display());
                }
            }
        }
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(BuildError::NoOutDir)?,
        };
        let sources = load_sources(&self.events_dir, &self.entities_dir).map_err(BuildError::Io)?;
        let options = Options {
            layout: Layout::SingleFile,
            generator: Generator::BuildScript,
        };
        let files = generate(&sources, &options).map_err(|diagnostics| BuildError::Invalid {
            rendered: diagnostics.render(&sources),
            diagnostics,
            sources,
        })?;
        write_files(Path::new(&out_dir), &files).map_err(BuildError::Io)?;
        Ok(())
    }
}

/// Why a build-script generation failed. Its `Debug` is the rendered report, so a build
/// script's `main` can return it and cargo shows the diagnostics as they are.
pub enum BuildError {
    /// The YAML has problems; nothing was written.
    Invalid {
        diagnostics: Diagnostics,
        sources: SourceMap,
        rendered: String,
    },
    Io(std::io::Error),
    NoOutDir,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid { rendered, .. } => f.write_str(rendered),
            BuildError::Io(err) => write!(f, "herald code generation failed: {err}"),
            BuildError::NoOutDir => f.write_str(
                "OUT_DIR is not set: call Builder::compile from build.rs, or set Builder::out_dir",
            ),
        }
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `main` returning Err prints Debug: make that the readable report.
        writeln!(f)?;
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Io(err) => Some(err),
            _ => None,
        }
    }
}

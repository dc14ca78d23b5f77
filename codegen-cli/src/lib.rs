//! Herald's schema compiler: `events/*.yaml` and `entities/*.yaml` in, typed Rust out.
//!
//! The engine is pure: [`generate`] takes a [`SourceMap`] and returns
//! [`GeneratedFile`]s or every [`Diagnostic`] at once. Where bytes come from and go to is
//! decided at the edges: the `codegen-cli` binary (checked-in output, `--check` for CI) and
//! [`Builder`] (build.rs, output in `OUT_DIR`).
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), herald_codegen::BuildError> {
//!     herald_codegen::Builder::new()
//!         .events_dir("events")
//!         .entities_dir("entities")
//!         .compile()
//! }
//! // src/lib.rs: include!(concat!(env!("OUT_DIR"), "/herald.rs"));
//! ```

pub mod asyncapi;
mod builder;
pub mod catalog;
mod check;
pub mod compat;
pub mod diagnostic;
mod emit;
pub mod git;
pub mod jobs;
pub mod migrate;
pub mod model;
mod names;
pub mod output;
mod parse;
pub mod payload;
mod repository;
pub mod scaffold;
pub mod schema;
pub mod source;
pub mod sql;
mod yaml;

use std::io;
use std::path::Path;

pub use builder::{BuildError, Builder};
pub use diagnostic::{Diagnostic, Diagnostics, Subject};
pub use emit::{GENERATED_MARKER, GeneratedFile, Layout};
pub use migrate::{DatabaseFiles, MigrationError, MigrationOptions, MigrationsDir};
pub use model::Model;
pub use source::{FileId, FileKind, SourceMap};
pub use sql::Database;

/// How generated code is laid out and what its header says.
#[derive(Debug, Clone)]
pub struct Options {
    pub layout: Layout,
    /// The command named in the "do not edit" header of every file.
    pub regenerate_command: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            layout: Layout::Tree,
            regenerate_command: "cargo run -p codegen-cli generate".into(),
        }
    }
}

/// Parses and checks every file, reporting every problem of every file at once.
pub fn check(sources: &SourceMap) -> Result<Model, Diagnostics> {
    let read = read(sources);
    if read.diagnostics.is_empty() {
        Ok(read.model)
    } else {
        Err(read.diagnostics)
    }
}

/// What one run read: the model of every declaration that passed, the raw events (with their
/// spans, which the model does not keep) and every problem, sorted.
pub(crate) struct Read {
    pub model: Model,
    /// The events of `events/` and of entities' `events:` blocks, valid or not.
    pub events: Vec<parse::RawEvent>,
    pub diagnostics: Diagnostics,
}

pub(crate) fn read(sources: &SourceMap) -> Read {
    let mut diagnostics = Diagnostics::default();
    let mut events = Vec::new();
    let mut entities = Vec::new();
    let mut unreadable = Vec::new();
    for id in sources.ids() {
        let file = sources.file(id);
        let stem = sources.stem(id).unwrap_or_default().to_owned();
        let mut ctx = parse::Ctx {
            file: id,
            subject: match file.kind {
                FileKind::Event => Subject::Event(stem),
                FileKind::Entity => Subject::Entity(stem),
            },
            diagnostics: &mut diagnostics,
        };
        let root = match yaml::parse(&file.contents) {
            Ok(root) => root,
            Err(err) => {
                ctx.report(
                    "yaml-syntax",
                    err.span,
                    format!("invalid YAML: {}", err.message),
                )
                .set_help("fix the YAML syntax; the file was not read further");
                unreadable.push(id);
                continue;
            }
        };
        let read = match file.kind {
            FileKind::Event => parse::event_file(&mut ctx, &root).map(|e| events.push(e)),
            FileKind::Entity => parse::entity_file(&mut ctx, &root).map(|e| entities.push(e)),
        };
        if read.is_none() {
            unreadable.push(id);
        }
    }
    let model = check::check(sources, &events, &entities, &unreadable, &mut diagnostics);
    diagnostics.sort(sources);
    events.extend(entities.into_iter().flat_map(|entity| entity.events));
    Read {
        model,
        events,
        diagnostics,
    }
}

/// Checks the sources and generates the Rust code for them.
pub fn generate(sources: &SourceMap, options: &Options) -> Result<Vec<GeneratedFile>, Diagnostics> {
    let model = check(sources)?;
    Ok(generate_rust(&model, options))
}

/// The Rust code of a checked model.
pub fn generate_rust(model: &Model, options: &Options) -> Vec<GeneratedFile> {
    emit::emit(
        model,
        &emit::EmitOptions {
            layout: options.layout,
            regenerate: &options.regenerate_command,
        },
    )
}

/// The SQL of the entities for each database: `schema.sql`, `snapshot.json` and, when the
/// entities changed since the snapshot, the next migration. `dirs` is what each database's
/// migrations directory holds. Every database's problems are returned at once; a database
/// that has no entity tables and no snapshot yet gets no files.
pub fn generate_sql(
    model: &Model,
    dirs: &[(Database, MigrationsDir)],
    options: MigrationOptions<'_>,
) -> Result<Vec<DatabaseFiles>, Vec<MigrationError>> {
    let schema = sql::schema(model);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (database, dir) in dirs {
        if schema.tables.is_empty() && dir.snapshot.is_none() {
            continue;
        }
        match migrate::database_files(&schema, *database, dir, options) {
            Ok(files) => out.push(files),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Reads every `*.yaml`/`*.yml` file of the two directories, in name order so that output
/// does not depend on the order the file system lists them in. A missing directory holds no
/// declarations.
pub fn load_sources(events_dir: &Path, entities_dir: &Path) -> io::Result<SourceMap> {
    let mut sources = SourceMap::new();
    for (kind, dir) in [
        (FileKind::Entity, entities_dir),
        (FileKind::Event, events_dir),
    ] {
        for path in yaml_files(dir)? {
            let contents = std::fs::read_to_string(&path).map_err(|err| {
                io::Error::new(err.kind(), format!("cannot read {}: {err}", path.display()))
            })?;
            sources.add(kind, path, contents);
        }
    }
    Ok(sources)
}

/// Reads a migrations directory: its snapshot and the names of its migrations (and whether
/// Herald wrote them). A missing directory is an empty one.
pub fn read_migrations_dir(dir: &Path) -> io::Result<MigrationsDir> {
    let mut out = MigrationsDir::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(err) => {
            return Err(io::Error::new(
                err.kind(),
                format!("cannot list {}: {err}", dir.display()),
            ));
        }
    };
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|err| {
            io::Error::new(err.kind(), format!("cannot read {}: {err}", path.display()))
        })
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        if name == migrate::SNAPSHOT_FILE {
            out.snapshot = Some(read(&path)?);
        } else if name.ends_with(".sql")
            && let Some(migration) = migrate::ExistingMigration::from_file(name, &read(&path)?)
        {
            out.migrations.push(migration);
        }
    }
    out.migrations
        .sort_by(|a, b| (a.version, &a.file_name).cmp(&(b.version, &b.file_name)));
    Ok(out)
}

/// The YAML files directly in `dir`, sorted.
pub fn yaml_files(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(io::Error::new(
                err.kind(),
                format!("cannot list {}: {err}", dir.display()),
            ));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

//! `codegen-cli`: the command-line front of the Herald schema compiler.
//!
//! Exit codes: 0 success, 1 invalid YAML, stale output (`--check`) or an incompatible change
//! (`check --against`), 2 usage, git or I/O error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, Subcommand};
use herald_codegen::asyncapi::{AsyncApiOptions, SubjectTemplate, asyncapi_json};
use herald_codegen::catalog::{CatalogOptions, catalog_markdown};
use herald_codegen::compat::{self, Compatibility, Declarations};
use herald_codegen::jobs::{find_jobs, read_rust_sources};
use herald_codegen::output::{
    OutputDir, Staleness, check_file, check_files, write_all, write_file,
};
use herald_codegen::schema::{Format, json_schema_text};
use herald_codegen::{
    Database, DatabaseFiles, Generator, MigrationError, MigrationOptions, Options, SourceMap,
    generate_rust, generate_sql, load_sources, read_migrations_dir, scaffold,
};
use herald_vocabulary::naming::{closest, list_or};
use herald_vocabulary::{Direction, Keyword as _};
use serde::Deserialize;

const CONFIG_FILE: &str = "codegen.yaml";

#[derive(Parser)]
#[command(
    name = "codegen-cli",
    version,
    about = "Turn events/ and entities/ YAML into typed Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the YAML and write the generated Rust (or, with --check, compare it).
    Generate {
        #[command(flatten)]
        dirs: Dirs,
        /// Output directory [default: `out` of codegen.yaml].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Directory of the migrations, one subdirectory per database [default: `migrations`
        /// of codegen.yaml, else `migrations/` of the crate that holds the output directory].
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// Write nothing; fail listing the files that differ from what would be generated,
        /// and the migrations that are missing.
        #[arg(long)]
        check: bool,
        /// The entity changes since the snapshots are made by migrations written by hand:
        /// record them in the snapshots instead of writing a migration.
        #[arg(long)]
        hand_written_migrations: bool,
    },
    /// Check the YAML and report every problem, writing nothing.
    Validate {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Check the YAML, then compare every event with its declaration at a git revision:
    /// report the payload changes that break the readers its `compatibility` names while
    /// `version` stayed the same, removed events and versions that went down.
    Check {
        #[command(flatten)]
        dirs: Dirs,
        /// The git revision to compare with: a branch, tag or commit (`main`, `HEAD~1`).
        #[arg(long, value_name = "REF")]
        against: String,
    },
    /// Scaffold a new declaration from the templates built into the binary.
    New {
        #[command(subcommand)]
        what: New,
    },
    /// Print the JSON Schema of the event or entity YAML format (for editors).
    Schema { format: Format },
    /// Check the YAML, read the jobs, and write the Markdown event catalog (or, with --check,
    /// compare it).
    Catalog {
        #[command(flatten)]
        dirs: Dirs,
        /// The Markdown file [default: `catalog` of codegen.yaml, else docs/catalog.md].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rust files or directories holding the `#[job_handler]` functions [default: `jobs`
        /// of codegen.yaml, else none].
        #[arg(long = "jobs", value_name = "PATH")]
        jobs: Vec<PathBuf>,
        /// Write nothing; fail when the file differs from what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Check the YAML and write the AsyncAPI 3.0 document of the events as the NATS relay
    /// carries them (or, with --check, compare it).
    Asyncapi {
        #[command(flatten)]
        dirs: Dirs,
        /// The JSON file [default: `asyncapi.out` of codegen.yaml, else docs/asyncapi.json].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write nothing; fail when the file differs from what would be written.
        #[arg(long)]
        check: bool,
    },
}

#[derive(clap::Args)]
struct Dirs {
    /// Directory of event YAML files [default: `events` of codegen.yaml, else events/].
    #[arg(long)]
    events: Option<PathBuf>,
    /// Directory of entity YAML files [default: `entities` of codegen.yaml, else entities/].
    #[arg(long)]
    entities: Option<PathBuf>,
}

#[derive(Subcommand)]
enum New {
    /// Write events/<type>.yaml.
    Event {
        /// snake_case event type, e.g. contact_archived.
        event_type: String,
        #[arg(long, value_parser = direction_parser())]
        direction: Direction,
        /// The entity a change event concerns.
        #[arg(long)]
        aggregate: Option<String>,
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Write entities/<name>.yaml.
    Entity {
        /// snake_case entity name, e.g. deal.
        name: String,
        #[arg(long)]
        entities: Option<PathBuf>,
    },
}

/// `codegen.yaml`: where the declarations are and where the checked-in output goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    events: Option<PathBuf>,
    entities: Option<PathBuf>,
    out: Option<PathBuf>,
    /// `<migrations>/sqlite/` and `<migrations>/postgres/`.
    migrations: Option<PathBuf>,
    /// The databases that get SQL; both by default, `[]` for none.
    databases: Option<Vec<String>>,
    /// The `compatibility` of events that do not declare one; `backward` by default.
    compatibility: Option<String>,
    /// The Markdown event catalog written by `catalog`; docs/catalog.md by default.
    catalog: Option<PathBuf>,
    /// The Rust files and directories whose `#[job_handler]` functions the catalog shows.
    jobs: Option<Vec<PathBuf>>,
    asyncapi: Option<AsyncApiConfig>,
}

/// `asyncapi:` of codegen.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AsyncApiConfig {
    /// docs/asyncapi.json by default.
    out: Option<PathBuf>,
    /// `info.title`; "Herald events" by default.
    title: Option<String>,
    /// `info.version`; 1.0.0 by default.
    version: Option<String>,
    /// The relay's subject template, when the application sets one (`Relay::subjects`).
    subjects: Option<String>,
}

const DEFAULT_CATALOG: &str = "docs/catalog.md";
const DEFAULT_ASYNCAPI: &str = "docs/asyncapi.json";

/// A failure of the command itself (not of the YAML): exit code 2.
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, UsageError> {
    match command {
        Command::Generate {
            dirs,
            out,
            migrations,
            check,
            hand_written_migrations,
        } => {
            let config = load_config()?;
            let (flag_out, flag_migrations) = (out.clone(), migrations.clone());
            let out = out.or(config.out.clone()).ok_or_else(|| {
                UsageError(format!(
                    "no output directory: pass `--out DIR` or set `out:` in {CONFIG_FILE}"
                ))
            })?;
            let databases = databases(&config)?;
            let migrations = migrations
                .or(config.migrations.clone())
                .unwrap_or_else(|| default_migrations(&out));
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            let model = match herald_codegen::check(&sources) {
                Ok(model) => model,
                Err(diagnostics) => return Ok(report(&diagnostics, &sources)),
            };
            let command = command_line(
                "generate",
                &[
                    ("--events", dirs.events.as_slice()),
                    ("--entities", dirs.entities.as_slice()),
                    ("--out", flag_out.as_slice()),
                    ("--migrations", flag_migrations.as_slice()),
                ],
            );
            let options = Options {
                generator: Generator::Command(command.clone()),
                ..Options::default()
            };
            let files = generate_rust(&model, &options);
            let mut dirs_read = Vec::new();
            for database in &databases {
                let dir = migrations.join(database.as_str());
                let read = read_migrations_dir(&dir).map_err(|e| io_error(&dir, e))?;
                dirs_read.push((*database, read));
            }
            let sql = match generate_sql(
                &model,
                &dirs_read,
                MigrationOptions {
                    regenerate: &command,
                    hand_written: hand_written_migrations,
                },
            ) {
                Ok(sql) => sql,
                Err(errors) => return Ok(report_migrations(&errors, &migrations, &command)),
            };
            if check {
                return check_output(&out, &files, &migrations, &sql, &command);
            }
            let sql_dirs: Vec<PathBuf> = sql
                .iter()
                .map(|d| migrations.join(d.database.as_str()))
                .collect();
            let mut outputs = vec![OutputDir {
                dir: &out,
                files: &files,
                prune: true,
            }];
            for (dir, database) in sql_dirs.iter().zip(&sql) {
                outputs.push(OutputDir {
                    dir,
                    files: &database.files,
                    prune: false,
                });
            }
            let summary = write_all(&outputs).map_err(|e| io_error(&out, e))?;
            let sql_count: usize = sql.iter().map(|d| d.files.len()).sum();
            eprintln!(
                "generated {} files in {} and {sql_count} in {}: {} written, {} unchanged, {} removed",
                files.len(),
                out.display(),
                migrations.display(),
                summary.written.len(),
                summary.unchanged,
                summary.removed.len()
            );
            for (dir, database) in sql_dirs.iter().zip(&sql) {
                if let Some(name) = &database.new_migration {
                    eprintln!("new migration {}:", dir.join(name).display());
                } else if hand_written_migrations && !database.changes.is_empty() {
                    eprintln!(
                        "recorded in {} as migrated by hand:",
                        dir.join(herald_codegen::migrate::SNAPSHOT_FILE).display()
                    );
                }
                if database.new_migration.is_some() || hand_written_migrations {
                    for change in &database.changes {
                        eprintln!("  {change}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { dirs } => {
            let config = load_config()?;
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            match herald_codegen::check(&sources) {
                Ok(model) => {
                    eprintln!(
                        "{} events and {} entities are valid",
                        model.events.len(),
                        model.entities.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(diagnostics) => Ok(report(&diagnostics, &sources)),
            }
        }
        Command::Check { dirs, against } => {
            let config = load_config()?;
            let default = default_compatibility(&config)?;
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            let (events, entities) = source_dirs(&dirs, &config);
            let new = Declarations::read(sources);
            if !new.problems().is_empty() {
                return Ok(report(new.problems(), new.sources()));
            }
            let old_sources = herald_codegen::git::sources_at(&against, &events, &entities)
                .map_err(|e| UsageError(e.to_string()))?;
            let old = Declarations::read(old_sources);
            let outcome = compat::compare(&old, &new, default);
            let text = if std::io::stderr().is_terminal() {
                outcome.render_styled(&old, &new, &against)
            } else {
                outcome.render(&old, &new, &against)
            };
            eprintln!("{text}");
            Ok(if outcome.has_errors() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::New { what } => {
            let config = load_config()?;
            let written = match what {
                New::Event {
                    event_type,
                    direction,
                    aggregate,
                    events,
                } => {
                    let dir = events.or(config.events).unwrap_or_else(|| "events".into());
                    scaffold::new_event(&dir, &event_type, direction, aggregate.as_deref())
                }
                New::Entity { name, entities } => {
                    let dir = entities
                        .or(config.entities)
                        .unwrap_or_else(|| "entities".into());
                    scaffold::new_entity(&dir, &name)
                }
            }
            .map_err(|e| UsageError(e.to_string()))?;
            eprintln!("created {}", written.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { format } => {
            print!("{}", json_schema_text(format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            dirs,
            out,
            jobs,
            check,
        } => {
            let config = load_config()?;
            let command = command_line(
                "catalog",
                &[
                    ("--events", dirs.events.as_slice()),
                    ("--entities", dirs.entities.as_slice()),
                    ("--out", out.as_slice()),
                    ("--jobs", &jobs),
                ],
            );
            let out = out
                .or(config.catalog.clone())
                .unwrap_or_else(|| DEFAULT_CATALOG.into());
            let default_compatibility = default_compatibility(&config)?;
            let job_paths = if jobs.is_empty() {
                config.jobs.clone().unwrap_or_default()
            } else {
                jobs
            };
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            let model = match herald_codegen::check(&sources) {
                Ok(model) => model,
                Err(diagnostics) => return Ok(report(&diagnostics, &sources)),
            };
            let rust = read_rust_sources(&job_paths).map_err(|e| UsageError(e.to_string()))?;
            let jobs = match find_jobs(&model, &rust) {
                Ok(jobs) => jobs,
                Err(errors) => {
                    for error in &errors {
                        eprintln!("error: {error}");
                    }
                    eprintln!("error: the jobs could not be read; nothing was written");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let text = catalog_markdown(
                &model,
                &jobs,
                &CatalogOptions {
                    default_compatibility,
                    regenerate_command: &command,
                },
            );
            write_or_check(&out, &text, check, &command, "the event catalog")
        }
        Command::Asyncapi { dirs, out, check } => {
            let config = load_config()?;
            let command = command_line(
                "asyncapi",
                &[
                    ("--events", dirs.events.as_slice()),
                    ("--entities", dirs.entities.as_slice()),
                    ("--out", out.as_slice()),
                ],
            );
            let asyncapi = config.asyncapi.as_ref();
            let out = out
                .or_else(|| asyncapi.and_then(|a| a.out.clone()))
                .unwrap_or_else(|| DEFAULT_ASYNCAPI.into());
            let mut options = AsyncApiOptions::default();
            if let Some(asyncapi) = asyncapi {
                if let Some(title) = &asyncapi.title {
                    options.title.clone_from(title);
                }
                if let Some(version) = &asyncapi.version {
                    options.version.clone_from(version);
                }
                if let Some(subjects) = &asyncapi.subjects {
                    options.subjects = SubjectTemplate::parse(subjects).map_err(|e| {
                        UsageError(format!("{CONFIG_FILE}: `asyncapi.subjects`: {e}"))
                    })?;
                }
            }
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            let model = match herald_codegen::check(&sources) {
                Ok(model) => model,
                Err(diagnostics) => return Ok(report(&diagnostics, &sources)),
            };
            let text = asyncapi_json(&model, &options);
            write_or_check(&out, &text, check, &command, "the AsyncAPI document")
        }
    }
}

/// Writes one generated document, or with `check` compares it, failing like `generate
/// --check` does with the file that is stale and the command that fixes it.
fn write_or_check(
    path: &Path,
    text: &str,
    check: bool,
    command: &str,
    what: &str,
) -> Result<ExitCode, UsageError> {
    if check {
        return match check_file(path, text).map_err(|e| io_error(path, e))? {
            None => {
                eprintln!("{} is up to date", path.display());
                Ok(ExitCode::SUCCESS)
            }
            Some(stale) => {
                eprintln!("error: {what} is stale:");
                eprintln!("  {stale}");
                eprintln!("help: run `{command}` and commit the result");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let written = write_file(path, text).map_err(|e| io_error(path, e))?;
    eprintln!(
        "{} {}",
        if written { "wrote" } else { "unchanged:" },
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The command that writes this run's output again, for the header and for the help of
/// `--check`: the installed binary's name, the subcommand and the paths given as flags. The
/// rest comes from codegen.yaml, which the command reads again when it is run; `--check` and
/// one-off flags such as `--hand-written-migrations` are left out.
fn command_line(subcommand: &str, flags: &[(&str, &[PathBuf])]) -> String {
    let mut line = format!("codegen-cli {subcommand}");
    for (flag, paths) in flags {
        for path in *paths {
            line.push(' ');
            line.push_str(flag);
            line.push(' ');
            line.push_str(&shell_quoted(&path.to_string_lossy()));
        }
    }
    line
}

/// `word` as a POSIX shell reads it back: as is when it holds nothing the shell would
/// interpret, else in single quotes.
fn shell_quoted(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=+,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `--direction`: the vocabulary's spellings, listed by `--help` and in clap's error for any
/// other word.
fn direction_parser() -> impl clap::builder::TypedValueParser<Value = Direction> {
    PossibleValuesParser::new(Direction::ALL.map(Direction::as_str))
        .try_map(|word: String| Direction::parse(&word).ok_or("not a direction"))
}

fn load_config() -> Result<Config, UsageError> {
    let path = Path::new(CONFIG_FILE);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(err) => return Err(io_error(path, err)),
    };
    serde_saphyr::from_str(&text).map_err(|err| UsageError(format!("{CONFIG_FILE}: {err}")))
}

/// The events and entities directories: the flag, else codegen.yaml, else the default.
fn source_dirs(dirs: &Dirs, config: &Config) -> (PathBuf, PathBuf) {
    let pick = |flag: &Option<PathBuf>, configured: &Option<PathBuf>, default: &str| {
        flag.clone()
            .or_else(|| configured.clone())
            .unwrap_or_else(|| default.into())
    };
    (
        pick(&dirs.events, &config.events, "events"),
        pick(&dirs.entities, &config.entities, "entities"),
    )
}

/// A directory named by a flag or by codegen.yaml must exist (a typo must not read as "no
/// declarations"); a default one that is missing holds nothing, so a project with events and
/// no entities needs no empty `entities/`.
fn read_sources(dirs: &Dirs, config: &Config) -> Result<Option<SourceMap>, UsageError> {
    let (events, entities) = source_dirs(dirs, config);
    let named = [
        dirs.events.is_some() || config.events.is_some(),
        dirs.entities.is_some() || config.entities.is_some(),
    ];
    for (dir, named) in [&events, &entities].into_iter().zip(named) {
        if (named || dir.exists()) && !dir.is_dir() {
            return Err(UsageError(format!("{} is not a directory", dir.display())));
        }
    }
    load_sources(&events, &entities)
        .map(Some)
        .map_err(|err| UsageError(err.to_string()))
}

/// `compatibility:` of codegen.yaml, `backward` by default.
fn default_compatibility(config: &Config) -> Result<Compatibility, UsageError> {
    let Some(word) = &config.compatibility else {
        return Ok(Compatibility::default());
    };
    Compatibility::parse(word).ok_or_else(|| {
        let spellings = Compatibility::spellings();
        let hint = match closest(word, &spellings) {
            Some(near) => format!("did you mean `{near}`? "),
            None => String::new(),
        };
        UsageError(format!(
            "{CONFIG_FILE}: unknown compatibility `{word}`; {hint}`compatibility` is one of {}",
            list_or(&spellings, "`")
        ))
    })
}

/// `databases:` of codegen.yaml, both by default.
fn databases(config: &Config) -> Result<Vec<Database>, UsageError> {
    let Some(names) = &config.databases else {
        return Ok(Database::ALL.to_vec());
    };
    let mut out = Vec::new();
    for name in names {
        let database = Database::parse(name).ok_or_else(|| {
            UsageError(format!(
                "{CONFIG_FILE}: unknown database `{name}` in `databases`; it lists `sqlite`, `postgres` or both"
            ))
        })?;
        if !out.contains(&database) {
            out.push(database);
        }
    }
    out.sort();
    Ok(out)
}

/// `migrations/` beside the `Cargo.toml` of the crate that holds the generated code (the
/// nearest one above `out`), else in the current directory.
fn default_migrations(out: &Path) -> PathBuf {
    out.ancestors()
        .skip(1)
        .find(|dir| dir.join("Cargo.toml").is_file())
        .map_or_else(|| PathBuf::from("migrations"), |dir| dir.join("migrations"))
}

/// `--check`: the Rust and the SQL as they would be written, and the migrations that would be.
fn check_output(
    out: &Path,
    files: &[herald_codegen::GeneratedFile],
    migrations: &Path,
    sql: &[DatabaseFiles],
    command: &str,
) -> Result<ExitCode, UsageError> {
    let mut stale = check_files(out, files).map_err(|e| io_error(out, e))?;
    let mut count = files.len();
    for database in sql {
        let dir = migrations.join(database.database.as_str());
        let current: Vec<_> = database
            .files
            .iter()
            .filter(|f| database.new_migration.as_deref() != f.path.to_str())
            .cloned()
            .collect();
        count += current.len();
        stale.extend(check_files(&dir, &current).map_err(|e| io_error(&dir, e))?);
        if let Some(name) = &database.new_migration {
            stale.push(Staleness::MissingMigration(dir.join(name)));
        }
    }
    if stale.is_empty() {
        eprintln!(
            "{count} generated files in {} and {} are up to date",
            out.display(),
            migrations.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("error: the generated code or SQL is stale:");
    for file in &stale {
        eprintln!("  {file}");
    }
    eprintln!("help: run `{command}` and commit the result");
    Ok(ExitCode::FAILURE)
}

/// Migration problems, with the directory they are in and what to do.
fn report_migrations(errors: &[MigrationError], migrations: &Path, command: &str) -> ExitCode {
    for error in errors {
        let dir = |database: &Database| migrations.join(database.as_str());
        eprintln!("error: {error}");
        match error {
            MigrationError::Refused {
                database,
                refusals,
                also,
                next,
            } => {
                for refusal in refusals {
                    eprintln!("  - {refusal}");
                }
                if !also.is_empty() {
                    eprintln!(
                        "  the same migration must make the other changes since the snapshot:"
                    );
                    for change in also {
                        eprintln!("    {change}");
                    }
                }
                eprintln!(
                    "help: write these changes yourself as {}, then run `{command} --hand-written-migrations`: it records the entities as migrated by that file, in {}, and writes no migration",
                    dir(database).join(next).display(),
                    dir(database)
                        .join(herald_codegen::migrate::SNAPSHOT_FILE)
                        .display()
                );
            }
            MigrationError::BadSnapshot { database, .. } => eprintln!(
                "help: restore {} from version control (it is written by `generate`, never by hand)",
                dir(database)
                    .join(herald_codegen::migrate::SNAPSHOT_FILE)
                    .display()
            ),
            MigrationError::SnapshotMissing { database, .. } => eprintln!(
                "help: restore {} from version control: it records the tables those migrations made, from which the next one is computed",
                dir(database)
                    .join(herald_codegen::migrate::SNAPSHOT_FILE)
                    .display()
            ),
            MigrationError::NoHandWrittenMigration { database, next, .. } => eprintln!(
                "help: write {} first (without the `@generated` header), then run this again",
                dir(database).join(next).display()
            ),
        }
        eprintln!();
    }
    eprintln!("error: the migrations were not brought up to date; nothing was written");
    ExitCode::FAILURE
}

fn report(diagnostics: &herald_codegen::Diagnostics, sources: &SourceMap) -> ExitCode {
    let text = if std::io::stderr().is_terminal() {
        diagnostics.render_styled(sources)
    } else {
        diagnostics.render(sources)
    };
    eprintln!("{text}");
    ExitCode::FAILURE
}

fn io_error(path: &Path, err: std::io::Error) -> UsageError {
    UsageError(format!("{}: {err}", path.display()))
}

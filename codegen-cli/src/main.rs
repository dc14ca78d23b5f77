//! `codegen-cli`: the command-line front of the Herald schema compiler.
//!
//! Exit codes: 0 success, 1 invalid YAML or stale output (`--check`), 2 usage or I/O error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, Subcommand};
use herald_codegen::output::{check_files, write_files};
use herald_codegen::schema::{Format, json_schema_text};
use herald_codegen::{Options, SourceMap, generate, load_sources, scaffold};
use herald_vocabulary::Direction;
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
        /// Write nothing; fail listing the files that differ from what would be generated.
        #[arg(long)]
        check: bool,
    },
    /// Check the YAML and report every problem, writing nothing.
    Validate {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Scaffold a new declaration from templates/.
    New {
        #[command(subcommand)]
        what: New,
    },
    /// Print the JSON Schema of the event or entity YAML format (for editors).
    Schema { format: Format },
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
}

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
        Command::Generate { dirs, out, check } => {
            let config = load_config()?;
            let out = out.or(config.out.clone()).ok_or_else(|| {
                UsageError(format!(
                    "no output directory: pass `--out DIR` or set `out:` in {CONFIG_FILE}"
                ))
            })?;
            let Some(sources) = read_sources(&dirs, &config)? else {
                return Ok(ExitCode::FAILURE);
            };
            let files = match generate(&sources, &Options::default()) {
                Ok(files) => files,
                Err(diagnostics) => return Ok(report(&diagnostics, &sources)),
            };
            if check {
                let stale = check_files(&out, &files).map_err(|e| io_error(&out, e))?;
                if stale.is_empty() {
                    eprintln!(
                        "{} generated files in {} are up to date",
                        files.len(),
                        out.display()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("error: the generated code in {} is stale:", out.display());
                for file in &stale {
                    eprintln!("  {file}");
                }
                eprintln!("help: run `cargo run -p codegen-cli generate` and commit the result");
                return Ok(ExitCode::FAILURE);
            }
            let summary = write_files(&out, &files).map_err(|e| io_error(&out, e))?;
            eprintln!(
                "generated {} files in {}: {} written, {} unchanged, {} removed",
                files.len(),
                out.display(),
                summary.written.len(),
                summary.unchanged,
                summary.removed.len()
            );
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

/// `None` when a directory given explicitly does not exist (reported).
fn read_sources(dirs: &Dirs, config: &Config) -> Result<Option<SourceMap>, UsageError> {
    let pick = |flag: &Option<PathBuf>, configured: &Option<PathBuf>, default: &str| {
        flag.clone()
            .or_else(|| configured.clone())
            .unwrap_or_else(|| default.into())
    };
    let events = pick(&dirs.events, &config.events, "events");
    let entities = pick(&dirs.entities, &config.entities, "entities");
    for dir in [&events, &entities] {
        if !dir.is_dir() {
            return Err(UsageError(format!("{} is not a directory", dir.display())));
        }
    }
    load_sources(&events, &entities)
        .map(Some)
        .map_err(|err| UsageError(err.to_string()))
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

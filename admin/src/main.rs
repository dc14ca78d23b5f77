//! `herald`: the operations CLI over a Herald database (SQLite or PostgreSQL).
//!
//! Exit codes: 0 success; 1 the database failed or refused; 2 usage (a bad flag or value);
//! 3 what was asked for does not exist; 4 a confirmation was declined and nothing changed.

mod commands;
mod confirm;
mod database;
mod render;
mod when;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::database::Database;
use crate::when::{Age, Since};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Operate a Herald outbox: lanes and their lag, events, dead letters, job runs",
    after_help = "Exit codes: 0 success, 1 database error, 2 usage error, 3 not found, \
                  4 confirmation declined (nothing changed)."
)]
struct Cli {
    /// The database: `sqlite://path/app.db` or `postgres://user@host/db` (a schema with
    /// `?options=-c%20search_path%3Dname`).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Print JSON for scripts instead of tables (one JSON document; `events tail` prints one
    /// JSON object per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lanes (backlog, lag, rate, retries, dead letters), jobs by status, projections.
    Stats,
    /// List, show and follow the outbox's events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// List and re-drive deliveries that ran out of attempts.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// List, show, retry and cancel job runs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Delete processed events and finished runs older than a retention (never an
    /// aggregate's stream, an event still owing a delivery, or a tree with a live run).
    Prune(PruneArgs),
    /// Create or update Herald's tables (what the application does at start-up).
    Migrate,
    /// Serve the web dashboard: the same views in a browser, read-only unless
    /// --allow-actions. No authentication of its own: listen on localhost, or mount
    /// `herald_admin::dashboard` behind the application's.
    Dashboard {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Show the re-drive, retry and cancel buttons and accept them.
        #[arg(long)]
        allow_actions: bool,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// The newest events first.
    List(EventQuery),
    /// One event: envelope, payload, the deliveries it still owes and the runs it enqueued.
    Show {
        /// The event's id.
        id: Uuid,
    },
    /// Print events as they commit, oldest first, until interrupted.
    Tail {
        #[command(flatten)]
        query: EventSelection,
        /// Start at the beginning of the outbox instead of after its newest event.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// How often to look for new events, in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
}

#[derive(Args)]
struct EventQuery {
    #[command(flatten)]
    selection: EventSelection,
    /// Only events with this status: pending, processing, processed.
    #[arg(long, value_parser = ["pending", "processing", "processed"])]
    status: Option<String>,
    /// Only events committed since then: an age (`90s`, `15m`, `2h`, `7d`) or a time
    /// (`2026-12-01T09:00:00Z`).
    #[arg(long)]
    since: Option<Since>,
    /// Only events committed before then, as `--since`.
    #[arg(long)]
    until: Option<Since>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Args)]
struct EventSelection {
    /// Only events of this type, e.g. `contact_created`.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events of this aggregate: `contact` or `contact:<id>`.
    #[arg(long)]
    aggregate: Option<String>,
    /// Only events of this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// The dead letters, oldest first.
    List {
        #[command(flatten)]
        which: DeadLetterSelection,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put dead letters back in line with a fresh set of attempts.
    Redrive {
        #[command(flatten)]
        which: DeadLetterSelection,
        /// Every dead letter (required when no other filter is given).
        #[arg(long, conflicts_with_all = ["event", "subscriber", "event_type"])]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Args)]
struct DeadLetterSelection {
    /// Only those of this event.
    #[arg(long)]
    event: Option<Uuid>,
    /// Only those of this subscriber.
    #[arg(long)]
    subscriber: Option<String>,
    /// Only those of events of this type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only those of events of this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Runs, newest first.
    List(RunSelection),
    /// One run and the tree it belongs to.
    Show {
        /// The run's id.
        id: Uuid,
    },
    /// Send failed, timed-out or canceled runs back to pending with a fresh set of attempts:
    /// the runs named, or every run the filter matches.
    Retry(RunAction),
    /// Cancel pending or running runs and the live runs below them: the runs named, or every
    /// run the filter matches.
    Cancel(RunAction),
}

#[derive(Args)]
struct RunSelection {
    /// Only runs with this status: pending, running, completed, failed, timed_out, canceled.
    #[arg(long, value_parser = ["pending", "running", "completed", "failed", "timed_out", "canceled"])]
    status: Option<String>,
    /// Only runs of this job.
    #[arg(long)]
    job: Option<String>,
    /// Only runs concerning this aggregate: `<type>:<id>`.
    #[arg(long)]
    scope: Option<String>,
    /// Only the runs of the tree under this top-level run.
    #[arg(long)]
    root: Option<Uuid>,
    /// Only runs of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

#[derive(Args)]
struct RunAction {
    /// The runs to act on; without ids, the runs the filter matches.
    ids: Vec<Uuid>,
    #[command(flatten)]
    filter: RunSelection,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Args)]
struct PruneArgs {
    /// Delete processed events and completed runs older than this (`7d`, `12h`).
    #[arg(long)]
    older_than: Age,
    /// Keep failed, timed-out and canceled runs this long instead [default: --older-than].
    #[arg(long)]
    failed_runs_older_than: Option<Age>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

/// How a command ended, beyond success.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    #[error("{0}")]
    Store(#[from] herald::StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    #[error("nothing changed")]
    Declined,
    #[error("cannot print: {0}")]
    Output(#[from] std::io::Error),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Database(_) | Failure::Store(_) | Failure::Output(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Declined => 4,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let Some(url) = cli.database_url else {
        return Err(Failure::Usage(
            "no database: pass --database-url or set DATABASE_URL \
             (e.g. sqlite://app.db or postgres://user@host/db)"
                .to_owned(),
        ));
    };
    let creating = matches!(cli.command, Command::Migrate);
    let database = Database::open(&url, creating).await?;
    let output = render::Output::new(cli.json);
    database::with_store!(database, store => {
        commands::execute(&store, cli.command, &output).await.map_err(|failure| match failure {
            Failure::Store(error) => Failure::Database(database::explain(error, &url)),
            other => other,
        })
    })
}

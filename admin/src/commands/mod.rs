//! One module per command group, each generic over the backend so that the same code serves
//! SQLite and PostgreSQL.

mod dead_letters;
mod events;
mod jobs;
mod maintenance;
mod stats;

use herald::{Backend, Store};

use crate::render::Output;
use crate::{Command, Failure};

pub(crate) async fn execute<B: Backend>(
    store: &Store<B>,
    command: Command,
    output: &Output,
) -> Result<(), Failure> {
    match command {
        Command::Stats => stats::stats(store, output).await,
        Command::Events(command) => events::execute(store, command, output).await,
        Command::DeadLetters(command) => dead_letters::execute(store, command, output).await,
        Command::Jobs(command) => jobs::execute(store, command, output).await,
        Command::Prune(args) => maintenance::prune(store, args, output).await,
        Command::Migrate => maintenance::migrate(store, output).await,
    }
}

//! `herald dead-letters list|redrive`.

use herald::ops::Redrive;
use herald::{Backend, Store};
use serde::Serialize;

use crate::confirm::confirm;
use crate::render::{Output, Table};
use crate::{DeadLetterSelection, DeadLettersCommand, Failure};
use herald_admin::format::{aggregate, first_line, relative};

/// How many dead letters a re-drive may name before the count is shown as "at least".
const COUNT_LIMIT: u32 = 100_000;

pub(super) async fn execute<B: Backend>(
    store: &Store<B>,
    command: DeadLettersCommand,
    output: &Output,
) -> Result<(), Failure> {
    match command {
        DeadLettersCommand::List { which, limit } => list(store, which, limit, output).await,
        DeadLettersCommand::Redrive { which, all, yes } => {
            redrive(store, which, all, yes, output).await
        }
    }
}

fn selection(which: DeadLetterSelection) -> Redrive {
    Redrive {
        event_id: which.event,
        subscriber: which.subscriber,
        event_type: which.event_type,
        tenant: which.tenant,
    }
}

async fn list<B: Backend>(
    store: &Store<B>,
    which: DeadLetterSelection,
    limit: u32,
    output: &Output,
) -> Result<(), Failure> {
    let now = store.now();
    let letters = store.dead_letters_of(&selection(which), limit).await?;
    output.print(&letters, |out| {
        if letters.is_empty() {
            return writeln!(out, "(no dead letters)");
        }
        let mut table = Table::new(&[
            "EVENT",
            "TYPE",
            "SUBSCRIBER",
            "LANE",
            "AGGREGATE",
            "ATTEMPTS#",
            "FAILED",
            "LAST ERROR",
        ]);
        for letter in &letters {
            table.row(vec![
                letter.event_id.to_string(),
                letter.event_type.clone(),
                letter.subscriber.clone(),
                letter.lane.clone(),
                aggregate(
                    letter.aggregate_type.as_deref(),
                    letter.aggregate_id.as_deref(),
                ),
                letter.attempts.to_string(),
                relative(letter.failed_at, now),
                first_line(&letter.last_error, 60),
            ]);
        }
        table.write(out)
    })?;
    Ok(())
}

#[derive(Serialize)]
struct Redriven {
    redriven: u64,
}

async fn redrive<B: Backend>(
    store: &Store<B>,
    which: DeadLetterSelection,
    all: bool,
    yes: bool,
    output: &Output,
) -> Result<(), Failure> {
    let which = selection(which);
    if !which.is_narrowed() && !all {
        return Err(Failure::Usage(
            "say which dead letters to re-drive: --event, --subscriber, --type, --tenant, or --all"
                .to_owned(),
        ));
    }
    let named = store.dead_letters_of(&which, COUNT_LIMIT).await?.len();
    if named == 0 {
        return Err(Failure::NotFound("no dead letters match".to_owned()));
    }
    let count = if named == COUNT_LIMIT as usize {
        format!("at least {named}")
    } else {
        named.to_string()
    };
    confirm(
        &format!("Re-drive {count} dead letter(s) with a fresh set of attempts?"),
        yes,
    )?;
    let redriven = store.redrive(&which).await?;
    output.print(&Redriven { redriven }, |out| {
        writeln!(
            out,
            "re-drove {redriven} dead letter(s): a running drain retries them now"
        )
    })?;
    Ok(())
}

//! `herald prune` and `herald migrate`.

use herald::ops::Retention;
use herald::{Backend, Store};
use serde::Serialize;

use crate::confirm::confirm;
use crate::render::Output;
use crate::{Failure, PruneArgs};
use herald_admin::format::duration;

pub(super) async fn prune<B: Backend>(
    store: &Store<B>,
    args: PruneArgs,
    output: &Output,
) -> Result<(), Failure> {
    let age = args.older_than.0;
    let failed_age = args.failed_runs_older_than.map_or(age, |age| age.0);
    confirm(
        &format!(
            "Delete processed events and completed runs older than {}, and failed, timed-out \
             and canceled runs older than {}?",
            duration(age),
            duration(failed_age)
        ),
        args.yes,
    )?;
    let pruned = store
        .prune(&Retention::all(age).failed_runs(failed_age))
        .await?;
    output.print(&pruned, |out| {
        writeln!(
            out,
            "deleted {} processed event(s) and {} finished run(s)",
            pruned.events, pruned.runs
        )
    })?;
    Ok(())
}

#[derive(Serialize)]
struct Migrated {
    migrated: bool,
}

pub(super) async fn migrate<B: Backend>(store: &Store<B>, output: &Output) -> Result<(), Failure> {
    store.migrate().await?;
    output.print(&Migrated { migrated: true }, |out| {
        writeln!(out, "Herald's tables are up to date")
    })?;
    Ok(())
}

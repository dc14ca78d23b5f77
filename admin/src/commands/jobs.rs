//! `herald jobs list|show|retry|cancel`.

use std::collections::BTreeMap;
use std::io::Write;

use herald::ops::{RunFilter, RunInfo, RunStatus};
use herald::{Backend, Store};
use serde::Serialize;
use uuid::Uuid;

use crate::confirm::confirm;
use crate::render::{Output, Table};
use crate::{Failure, JobsCommand, RunAction, RunSelection};
use herald_admin::format::{
    aggregate, first_line, or_dash, relative, run_status, run_tree, time, trace_id,
};

pub(super) async fn execute<B: Backend>(
    store: &Store<B>,
    command: JobsCommand,
    output: &Output,
) -> Result<(), Failure> {
    match command {
        JobsCommand::List(selection) => list(store, selection, output).await,
        JobsCommand::Show { id } => show(store, id, output).await,
        JobsCommand::Retry(action) => act(store, action, Act::Retry, output).await,
        JobsCommand::Cancel(action) => act(store, action, Act::Cancel, output).await,
    }
}

fn filter(selection: RunSelection) -> Result<RunFilter, Failure> {
    let scope = match selection.scope {
        Some(scope) => match scope.split_once(':') {
            Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                Some((kind.to_owned(), id.to_owned()))
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "--scope `{scope}` is not `<aggregate type>:<id>`, e.g. contact:42"
                )));
            }
        },
        None => None,
    };
    Ok(RunFilter {
        status: selection.status.as_deref().and_then(RunStatus::parse),
        job: selection.job,
        scope,
        root: selection.root,
        tenant: selection.tenant,
        limit: selection.limit,
    })
}

fn runs_table(runs: &[RunInfo], now: chrono::DateTime<chrono::Utc>) -> Table {
    let mut table = Table::new(&[
        "RUN",
        "JOB",
        "POOL",
        "STATUS",
        "ATTEMPT",
        "SCOPE",
        "CREATED",
        "LAST ERROR",
    ]);
    for run in runs {
        table.row(vec![
            run.id.to_string(),
            run.job.clone(),
            run.pool.clone(),
            run_status(run, now),
            format!("{}/{}", run.attempt, run.max_attempts),
            aggregate(run.scope_type.as_deref(), run.scope_id.as_deref()),
            relative(run.created_at, now),
            run.last_error
                .as_deref()
                .map_or_else(|| "-".to_owned(), |error| first_line(error, 50)),
        ]);
    }
    table
}

async fn list<B: Backend>(
    store: &Store<B>,
    selection: RunSelection,
    output: &Output,
) -> Result<(), Failure> {
    let now = store.now();
    let runs = store.jobs().list(&filter(selection)?).await?;
    output.print(&runs, |out| {
        if runs.is_empty() {
            return writeln!(out, "(no runs match)");
        }
        runs_table(&runs, now).write(out)
    })?;
    Ok(())
}

#[derive(Serialize)]
struct RunDetail {
    run: RunInfo,
    tree: Vec<RunInfo>,
}

async fn show<B: Backend>(store: &Store<B>, id: Uuid, output: &Output) -> Result<(), Failure> {
    let jobs = store.jobs();
    let Some(run) = jobs.get(id).await? else {
        return Err(Failure::NotFound(format!(
            "no run {id} (it may have been pruned)"
        )));
    };
    let tree = jobs
        .list(&RunFilter::default().root(run.root_id).limit(1_000))
        .await?;
    let detail = RunDetail { run, tree };
    let now = store.now();
    output.print(&detail, |out| human_detail(&detail, now, out))?;
    Ok(())
}

fn human_detail(
    detail: &RunDetail,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let run = &detail.run;
    let rows: [(&str, String); 13] = [
        ("run", run.id.to_string()),
        ("job", run.job.clone()),
        ("pool", run.pool.clone()),
        ("status", run_status(run, now)),
        (
            "attempt",
            format!("{} of {}", run.attempt, run.max_attempts),
        ),
        (
            "scope",
            aggregate(run.scope_type.as_deref(), run.scope_id.as_deref()),
        ),
        ("tenant", or_dash(run.tenant_id.as_deref())),
        ("event", or_dash(run.event_id)),
        ("parent", or_dash(run.parent_id)),
        ("trace", trace_id(run.trace.as_ref())),
        ("dedupe key", or_dash(run.dedupe_key.as_deref())),
        ("created", time(run.created_at)),
        ("finished", or_dash(run.finished_at.map(time))),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<12}{value}")?;
    }
    let json = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    writeln!(out, "\ninput\n{}", indent(&json(&run.input)))?;
    if let Some(output) = &run.output {
        writeln!(out, "\noutput\n{}", indent(&json(output)))?;
    }
    if let Some(error) = &run.last_error {
        writeln!(out, "\nlast error\n{}", indent(error))?;
    }
    if detail.tree.len() > 1 {
        writeln!(out, "\ntree")?;
        let children = run_tree(&detail.tree);
        write_tree(&children, None, 1, run.id, now, out)?;
    }
    Ok(())
}

fn write_tree(
    children: &BTreeMap<Option<Uuid>, Vec<&RunInfo>>,
    parent: Option<Uuid>,
    depth: usize,
    shown: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for node in children.get(&parent).into_iter().flatten() {
        let marker = if node.id == shown {
            "  <- this run"
        } else {
            ""
        };
        writeln!(
            out,
            "{}{} {} {}{marker}",
            "  ".repeat(depth),
            node.job,
            node.id,
            run_status(node, now)
        )?;
        write_tree(children, Some(node.id), depth + 1, shown, now, out)?;
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Clone, Copy)]
enum Act {
    Retry,
    Cancel,
}

#[derive(Serialize)]
struct Acted {
    /// Runs named or matched.
    matched: usize,
    /// Runs retried, or runs canceled (with the live runs below them).
    changed: u64,
}

async fn act<B: Backend>(
    store: &Store<B>,
    action: RunAction,
    act: Act,
    output: &Output,
) -> Result<(), Failure> {
    let jobs = store.jobs();
    let filtered = action.filter.status.is_some()
        || action.filter.job.is_some()
        || action.filter.scope.is_some()
        || action.filter.root.is_some()
        || action.filter.tenant.is_some();
    let targets: Vec<Uuid> = if action.ids.is_empty() {
        if !filtered {
            return Err(Failure::Usage(
                "name the runs by id, or select them with --status, --job, --scope, --root \
                 or --tenant"
                    .to_owned(),
            ));
        }
        let mut filter = filter(action.filter)?;
        // Only the runs the action applies to, so that the count asked about is the count
        // that changes.
        let applies = |status: RunStatus| match act {
            Act::Retry => status.is_final() && status != RunStatus::Completed,
            Act::Cancel => !status.is_final(),
        };
        if let Some(status) = filter.status
            && !applies(status)
        {
            let verb = match act {
                Act::Retry => "retried (only failed, timed-out and canceled runs are)",
                Act::Cancel => "canceled (only pending and running runs are)",
            };
            return Err(Failure::Usage(format!(
                "{} runs cannot be {verb}",
                status.as_str()
            )));
        }
        filter.limit = filter.limit.max(1);
        jobs.list(&filter)
            .await?
            .into_iter()
            .filter(|run| applies(run.status))
            .map(|run| run.id)
            .collect()
    } else {
        if filtered {
            return Err(Failure::Usage(
                "give run ids or a filter, not both".to_owned(),
            ));
        }
        for id in &action.ids {
            if jobs.get(*id).await?.is_none() {
                return Err(Failure::NotFound(format!("no run {id}")));
            }
        }
        action.ids
    };
    if targets.is_empty() {
        return Err(Failure::NotFound("no runs match".to_owned()));
    }
    let question = match act {
        Act::Retry => format!(
            "Retry {} run(s) with a fresh set of attempts?",
            targets.len()
        ),
        Act::Cancel => format!(
            "Cancel {} run(s) and the live runs below them?",
            targets.len()
        ),
    };
    confirm(&question, action.yes)?;
    let mut changed = 0;
    for id in &targets {
        changed += match act {
            Act::Retry => u64::from(jobs.retry(*id).await?),
            Act::Cancel => jobs.cancel(*id).await?,
        };
    }
    let acted = Acted {
        matched: targets.len(),
        changed,
    };
    output.print(&acted, |out| match act {
        Act::Retry => writeln!(
            out,
            "retried {changed} of {} run(s) (a run that is not failed, timed out or canceled \
             is left as it is)",
            targets.len()
        ),
        Act::Cancel => writeln!(
            out,
            "canceled {changed} live run(s) (the runs named and the live runs below them)"
        ),
    })?;
    Ok(())
}

//! `herald events list|show|tail`.

use std::io::Write;
use std::time::Duration;

use herald::ops::{EventDetail, EventFilter, EventStatus, EventSummary};
use herald::{Backend, Checkpoint, Store};
use uuid::Uuid;

use crate::render::{Output, Table};
use crate::{EventQuery, EventSelection, EventsCommand, Failure};
use herald_admin::format::{aggregate, aggregate_filter, or_dash, relative, time, trace_id};

pub(super) async fn execute<B: Backend>(
    store: &Store<B>,
    command: EventsCommand,
    output: &Output,
) -> Result<(), Failure> {
    match command {
        EventsCommand::List(query) => list(store, query, output).await,
        EventsCommand::Show { id } => show(store, id, output).await,
        EventsCommand::Tail {
            query,
            from_start,
            count,
            interval_ms,
        } => tail(store, query, from_start, count, interval_ms, output).await,
    }
}

fn filter(selection: EventSelection) -> EventFilter {
    EventFilter {
        event_type: selection.event_type,
        aggregate: selection.aggregate.as_deref().map(aggregate_filter),
        tenant: selection.tenant,
        ..EventFilter::default()
    }
}

async fn list<B: Backend>(
    store: &Store<B>,
    query: EventQuery,
    output: &Output,
) -> Result<(), Failure> {
    let now = store.now();
    let filter = EventFilter {
        status: query.status.as_deref().and_then(EventStatus::parse),
        since: query.since.map(|since| since.resolve(now)),
        until: query.until.map(|until| until.resolve(now)),
        limit: query.limit,
        ..filter(query.selection)
    };
    let events = store.events(&filter).await?;
    output.print(&events, |out| {
        if events.is_empty() {
            return writeln!(out, "(no events match)");
        }
        let mut table = Table::new(&[
            "POSITION#",
            "ID",
            "TYPE",
            "V#",
            "LANE",
            "AGGREGATE",
            "STATUS",
            "CLAIMS#",
            "RECORDED",
        ]);
        for event in &events {
            table.row(vec![
                event.position.to_string(),
                event.id.to_string(),
                event.event_type.clone(),
                event.version.to_string(),
                event.lane.clone(),
                aggregate(
                    event.aggregate_type.as_deref(),
                    event.aggregate_id.as_deref(),
                ),
                event.status.as_str().to_owned(),
                event.claims.to_string(),
                relative(event.recorded_at, now),
            ]);
        }
        table.write(out)
    })?;
    Ok(())
}

async fn show<B: Backend>(store: &Store<B>, id: Uuid, output: &Output) -> Result<(), Failure> {
    let Some(detail) = store.event(id).await? else {
        return Err(Failure::NotFound(format!(
            "no event {id} in the outbox (it may have been pruned)"
        )));
    };
    output.print(&detail, |out| human_detail(&detail, out))?;
    Ok(())
}

fn human_detail(detail: &EventDetail, out: &mut dyn Write) -> std::io::Result<()> {
    let event = &detail.event;
    let rows: [(&str, String); 14] = [
        ("id", event.id.to_string()),
        (
            "type",
            format!("{} (version {})", event.event_type, event.version),
        ),
        ("position", event.position.to_string()),
        ("lane", event.lane.clone()),
        (
            "aggregate",
            aggregate(
                event.aggregate_type.as_deref(),
                event.aggregate_id.as_deref(),
            ),
        ),
        ("tenant", or_dash(event.tenant_id.as_deref())),
        ("correlation", or_dash(event.correlation_id)),
        ("causation", or_dash(event.causation_id)),
        ("trace", trace_id(event.trace.as_ref())),
        ("status", event.status.as_str().to_owned()),
        ("claims", event.claims.to_string()),
        ("occurred", time(event.occurred_at)),
        ("recorded", time(event.recorded_at)),
        ("processed", or_dash(event.processed_at.map(time))),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<12}{value}")?;
    }
    writeln!(out, "\npayload")?;
    let payload = serde_json::to_string_pretty(&detail.payload)
        .unwrap_or_else(|_| detail.payload.to_string());
    for line in payload.lines() {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "\ndeliveries owed")?;
    if detail.deliveries.is_empty() {
        let said = match event.status {
            EventStatus::Processed => "none: every subscriber has it",
            _ => "none yet: the lane has not delivered it",
        };
        writeln!(out, "  ({said})")?;
    } else {
        let mut table = Table::new(&["SUBSCRIBER", "STATUS", "ATTEMPTS#", "NEXT", "LAST ERROR"]);
        for delivery in &detail.deliveries {
            table.row(vec![
                delivery.subscriber.clone(),
                delivery.status.as_str().to_owned(),
                delivery.attempts.to_string(),
                time(delivery.next_attempt_at),
                or_dash(delivery.last_error.as_deref()),
            ]);
        }
        table.write(out)?;
    }
    writeln!(out, "\nruns enqueued")?;
    if detail.runs.is_empty() {
        writeln!(out, "  (none)")
    } else {
        let mut table = Table::new(&["RUN", "JOB", "STATUS", "ATTEMPT#"]);
        for run in &detail.runs {
            table.row(vec![
                run.id.to_string(),
                run.job.clone(),
                run.status.as_str().to_owned(),
                format!("{}/{}", run.attempt, run.max_attempts),
            ]);
        }
        table.write(out)
    }
}

/// Follows the outbox in commit order: polls for events committed after the last one printed.
/// Polling (not `LISTEN`) so that it works the same on SQLite, and reads nothing a lane has to
/// wait for. Commit order, not position order: on PostgreSQL an event can commit after one at
/// a later position, and following positions would skip it for good.
async fn tail<B: Backend>(
    store: &Store<B>,
    selection: EventSelection,
    from_start: bool,
    count: Option<u64>,
    interval_ms: u64,
    output: &Output,
) -> Result<(), Failure> {
    let mut after = if from_start {
        Checkpoint::default()
    } else {
        store.committed_head().await?
    };
    let selection = EventFilter {
        limit: 500,
        ..filter(selection)
    };
    let mut printed = 0;
    let interval = Duration::from_millis(interval_ms.max(10));
    loop {
        let events = store.events_committed_after(after, &selection).await?;
        for (_, event) in &events {
            if count.is_some_and(|count| printed >= count) {
                return Ok(());
            }
            output.print_line(event, &line(event))?;
            printed += 1;
        }
        if count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
        let full = events.len() == selection.limit as usize;
        if let Some((last, _)) = events.last() {
            after = *last;
        }
        // A full page: more are waiting, read them at once.
        if !full {
            tokio::time::sleep(interval).await;
        }
    }
}

fn line(event: &EventSummary) -> String {
    format!(
        "{} #{} {} v{} {} {} {}",
        time(event.recorded_at),
        event.position,
        event.event_type,
        event.version,
        aggregate(
            event.aggregate_type.as_deref(),
            event.aggregate_id.as_deref()
        ),
        event.lane,
        event.id
    )
}

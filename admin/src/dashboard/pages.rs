//! The pages people read: the overview, events, one event, dead letters, runs, one run.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use herald::ops::{
    DeliveryStatus, EventFilter, EventStatus, Redrive, RunFilter, RunInfo, RunStatus,
};
use herald::{Backend, uuid::Uuid};
use serde::Deserialize;

use super::Dashboard;
use super::html::{FilterForm, Markup, action_form, fields, link, pre, query_value, table, text};
use crate::format::{
    aggregate, aggregate_filter, duration, first_line, or_dash, relative, run_status, run_tree,
    time, trace_id,
};

type Shared<B> = State<Arc<Dashboard<B>>>;

/// A form field that was left empty says nothing.
fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn cell(value: impl AsRef<str>) -> Markup {
    text(value.as_ref())
}

#[derive(Deserialize, Default)]
pub(super) struct Notice {
    flash: Option<String>,
}

pub(super) async fn overview<B: Backend>(
    State(dashboard): Shared<B>,
    Query(notice): Query<Notice>,
) -> Response {
    let store = &dashboard.store;
    let base = dashboard.base();
    let now = store.now();
    let (lanes, jobs, projections) = match (
        store.lane_stats().await,
        store.jobs().stats().await,
        store.projections().await,
    ) {
        (Ok(lanes), Ok(jobs), Ok(projections)) => (lanes, jobs, projections),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return dashboard.store_error(error);
        }
    };
    let mut body = Markup::raw("<h2>Lanes</h2>");
    body.push(table(
        &[
            "Lane",
            "Pending#",
            "Lag#",
            "Processed/min#",
            "Retrying#",
            "Dead letters#",
        ],
        lanes
            .iter()
            .map(|lane| {
                let dead = if lane.dead_letters > 0 {
                    Markup::raw(format!(
                        "<span class=\"dead\">{}</span>",
                        link(
                            &format!("{base}/dead-letters"),
                            &lane.dead_letters.to_string()
                        )
                        .into_string()
                    ))
                } else {
                    cell("0")
                };
                vec![
                    cell(&lane.lane),
                    cell(lane.pending.to_string()),
                    cell(duration(lane.lag(now))),
                    cell(lane.processed_last_minute.to_string()),
                    cell(lane.retrying.to_string()),
                    dead,
                ]
            })
            .collect(),
        "Nothing pending, owed or processed in the last minute.",
    ));
    body.push(Markup::raw("<h2>Jobs</h2>"));
    body.push(table(
        &[
            "Pool",
            "Job",
            "Due#",
            "Scheduled#",
            "Running#",
            "Completed#",
            "Failed#",
            "Oldest due",
            "Next lease expiry",
        ],
        jobs.iter()
            .map(|job| {
                vec![
                    cell(&job.pool),
                    link(
                        &format!("{base}/jobs?job={}", query_value(&job.job)),
                        &job.job,
                    ),
                    cell(job.due.to_string()),
                    cell(job.scheduled.to_string()),
                    cell(job.running.to_string()),
                    cell(job.completed.to_string()),
                    cell(job.failed.to_string()),
                    cell(or_dash(job.oldest_due_at.map(|at| relative(at, now)))),
                    cell(or_dash(
                        job.earliest_lease_expiry.map(|at| relative(at, now)),
                    )),
                ]
            })
            .collect(),
        "No runs yet.",
    ));
    body.push(Markup::raw("<h2>Projections</h2>"));
    body.push(table(
        &["Projection", "Position#", "Behind#", "Held back#", "Saved"],
        projections
            .iter()
            .map(|projection| {
                vec![
                    cell(&projection.name),
                    cell(projection.position.to_string()),
                    cell(projection.lag.behind.to_string()),
                    cell(projection.lag.held_back.to_string()),
                    cell(relative(projection.updated_at, now)),
                ]
            })
            .collect(),
        "No projections yet.",
    ));
    dashboard.page("Overview", notice.flash.as_deref(), body)
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    aggregate: Option<String>,
    tenant: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn events<B: Backend>(
    State(dashboard): Shared<B>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let base = dashboard.base();
    let now = dashboard.store.now();
    let filter = EventFilter {
        event_type: given(&query.event_type).map(str::to_owned),
        aggregate: given(&query.aggregate).map(aggregate_filter),
        tenant: given(&query.tenant).map(str::to_owned),
        status: given(&query.status).and_then(EventStatus::parse),
        limit: query.limit.unwrap_or(100).min(1_000),
        ..EventFilter::default()
    };
    let events = match dashboard.store.events(&filter).await {
        Ok(events) => events,
        Err(error) => return dashboard.store_error(error),
    };
    let mut body = FilterForm::new(&format!("{base}/events"))
        .input("type", "Type", given(&query.event_type))
        .input(
            "aggregate",
            "Aggregate (type or type:id)",
            given(&query.aggregate),
        )
        .input("tenant", "Tenant", given(&query.tenant))
        .select(
            "status",
            "Status",
            &["pending", "processing", "processed"],
            given(&query.status),
        )
        .finish();
    body.push(table(
        &[
            "Position#",
            "Event",
            "Type",
            "Lane",
            "Aggregate",
            "Status",
            "Claims#",
            "Recorded",
        ],
        events
            .iter()
            .map(|event| {
                let aggregate_text = aggregate(
                    event.aggregate_type.as_deref(),
                    event.aggregate_id.as_deref(),
                );
                let aggregate_cell = match &event.aggregate_type {
                    Some(_) => link(
                        &format!("{base}/events?aggregate={}", query_value(&aggregate_text)),
                        &aggregate_text,
                    ),
                    None => cell("-"),
                };
                vec![
                    cell(event.position.to_string()),
                    link(
                        &format!("{base}/events/{}", event.id),
                        &event.id.to_string(),
                    ),
                    cell(format!("{} v{}", event.event_type, event.version)),
                    cell(&event.lane),
                    aggregate_cell,
                    cell(event.status.as_str()),
                    cell(event.claims.to_string()),
                    cell(relative(event.recorded_at, now)),
                ]
            })
            .collect(),
        "No events match.",
    ));
    dashboard.page("Events", None, body)
}

pub(super) async fn event<B: Backend>(
    State(dashboard): Shared<B>,
    Path(id): Path<Uuid>,
    Query(notice): Query<Notice>,
) -> Response {
    let base = dashboard.base();
    let detail = match dashboard.store.event(id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return dashboard.error(
                StatusCode::NOT_FOUND,
                &format!("No event {id} in the outbox (it may have been pruned)."),
            );
        }
        Err(error) => return dashboard.store_error(error),
    };
    let event = &detail.event;
    let mut body = fields(vec![
        ("Id", cell(event.id.to_string())),
        (
            "Type",
            cell(format!("{} (version {})", event.event_type, event.version)),
        ),
        ("Position", cell(event.position.to_string())),
        ("Lane", cell(&event.lane)),
        (
            "Aggregate",
            cell(aggregate(
                event.aggregate_type.as_deref(),
                event.aggregate_id.as_deref(),
            )),
        ),
        ("Tenant", cell(or_dash(event.tenant_id.as_deref()))),
        ("Correlation", cell(or_dash(event.correlation_id))),
        ("Causation", cell(or_dash(event.causation_id))),
        ("Trace", cell(trace_id(event.trace.as_ref()))),
        ("Status", cell(event.status.as_str())),
        ("Claims", cell(event.claims.to_string())),
        ("Occurred", cell(time(event.occurred_at))),
        ("Recorded", cell(time(event.recorded_at))),
        ("Processed", cell(or_dash(event.processed_at.map(time)))),
    ]);
    body.push(Markup::raw("<h2>Payload</h2>"));
    body.push(pre(&serde_json::to_string_pretty(&detail.payload)
        .unwrap_or_else(|_| detail.payload.to_string())));
    body.push(Markup::raw("<h2>Deliveries owed</h2>"));
    let none_owed = match event.status {
        EventStatus::Processed => "None: every subscriber has it.",
        _ => "None yet: its lane has not delivered it.",
    };
    let back = format!("/events/{id}");
    body.push(table(
        &[
            "Subscriber",
            "Status",
            "Attempts#",
            "Next",
            "Last error",
            "",
        ],
        detail
            .deliveries
            .iter()
            .map(|delivery| {
                let action = if delivery.status == DeliveryStatus::DeadLetter
                    && dashboard.options.allow_actions
                {
                    action_form(
                        &format!("{base}/dead-letters/redrive"),
                        &[
                            ("event", &id.to_string()),
                            ("subscriber", &delivery.subscriber),
                            ("back", &back),
                        ],
                        &dashboard.csrf_token,
                        "Re-drive",
                    )
                } else {
                    Markup::default()
                };
                vec![
                    cell(&delivery.subscriber),
                    status_cell(delivery.status),
                    cell(delivery.attempts.to_string()),
                    cell(time(delivery.next_attempt_at)),
                    cell(or_dash(delivery.last_error.as_deref())),
                    action,
                ]
            })
            .collect(),
        none_owed,
    ));
    body.push(Markup::raw("<h2>Runs enqueued</h2>"));
    body.push(runs_table(&dashboard, &detail.runs, "None."));
    dashboard.page(
        &format!("Event {}", event.event_type),
        notice.flash.as_deref(),
        body,
    )
}

fn status_cell(status: DeliveryStatus) -> Markup {
    match status {
        DeliveryStatus::DeadLetter => Markup::raw("<span class=\"dead\">dead letter</span>"),
        other => cell(other.as_str()),
    }
}

#[derive(Deserialize)]
pub(super) struct DeadLettersQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    subscriber: Option<String>,
    tenant: Option<String>,
    flash: Option<String>,
}

pub(super) async fn dead_letters<B: Backend>(
    State(dashboard): Shared<B>,
    Query(query): Query<DeadLettersQuery>,
) -> Response {
    let base = dashboard.base();
    let now = dashboard.store.now();
    let which = Redrive {
        event_type: given(&query.event_type).map(str::to_owned),
        subscriber: given(&query.subscriber).map(str::to_owned),
        tenant: given(&query.tenant).map(str::to_owned),
        event_id: None,
    };
    let letters = match dashboard.store.dead_letters_of(&which, 500).await {
        Ok(letters) => letters,
        Err(error) => return dashboard.store_error(error),
    };
    let mut back = String::from("/dead-letters");
    let narrowing: Vec<String> = [
        ("type", &which.event_type),
        ("subscriber", &which.subscriber),
        ("tenant", &which.tenant),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", query_value(v))))
    .collect();
    if !narrowing.is_empty() {
        back = format!("{back}?{}", narrowing.join("&"));
    }
    let mut body = FilterForm::new(&format!("{base}/dead-letters"))
        .input("type", "Event type", given(&query.event_type))
        .input("subscriber", "Subscriber", given(&query.subscriber))
        .input("tenant", "Tenant", given(&query.tenant))
        .finish();
    if dashboard.options.allow_actions && !letters.is_empty() {
        let mut all: Vec<(&str, &str)> = vec![("back", &back)];
        if let Some(event_type) = &which.event_type {
            all.push(("type", event_type));
        }
        if let Some(subscriber) = &which.subscriber {
            all.push(("subscriber", subscriber));
        }
        if let Some(tenant) = &which.tenant {
            all.push(("tenant", tenant));
        }
        let label = match narrowing.is_empty() {
            true => "Re-drive every dead letter".to_owned(),
            false => "Re-drive every dead letter shown".to_owned(),
        };
        all.push(("all", "yes"));
        body.push(action_form(
            &format!("{base}/dead-letters/redrive"),
            &all,
            &dashboard.csrf_token,
            &label,
        ));
    }
    body.push(table(
        &[
            "Event",
            "Type",
            "Subscriber",
            "Lane",
            "Aggregate",
            "Attempts#",
            "Failed",
            "Last error",
            "",
        ],
        letters
            .iter()
            .map(|letter| {
                let action = if dashboard.options.allow_actions {
                    action_form(
                        &format!("{base}/dead-letters/redrive"),
                        &[
                            ("event", &letter.event_id.to_string()),
                            ("subscriber", &letter.subscriber),
                            ("back", &back),
                        ],
                        &dashboard.csrf_token,
                        "Re-drive",
                    )
                } else {
                    Markup::default()
                };
                vec![
                    link(
                        &format!("{base}/events/{}", letter.event_id),
                        &letter.event_id.to_string(),
                    ),
                    cell(&letter.event_type),
                    cell(&letter.subscriber),
                    cell(&letter.lane),
                    cell(aggregate(
                        letter.aggregate_type.as_deref(),
                        letter.aggregate_id.as_deref(),
                    )),
                    cell(letter.attempts.to_string()),
                    cell(relative(letter.failed_at, now)),
                    cell(first_line(&letter.last_error, 80)),
                    action,
                ]
            })
            .collect(),
        "No dead letters.",
    ));
    dashboard.page("Dead letters", query.flash.as_deref(), body)
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    status: Option<String>,
    job: Option<String>,
    tenant: Option<String>,
    scope: Option<String>,
    limit: Option<u32>,
}

const RUN_STATUSES: [&str; 6] = [
    "pending",
    "running",
    "completed",
    "failed",
    "timed_out",
    "canceled",
];

pub(super) async fn runs<B: Backend>(
    State(dashboard): Shared<B>,
    Query(query): Query<RunsQuery>,
) -> Response {
    let base = dashboard.base();
    let filter = RunFilter {
        status: given(&query.status).and_then(RunStatus::parse),
        job: given(&query.job).map(str::to_owned),
        scope: given(&query.scope)
            .and_then(|scope| scope.split_once(':'))
            .map(|(kind, id)| (kind.to_owned(), id.to_owned())),
        tenant: given(&query.tenant).map(str::to_owned),
        limit: query.limit.unwrap_or(100).min(1_000),
        ..RunFilter::default()
    };
    let runs = match dashboard.store.jobs().list(&filter).await {
        Ok(runs) => runs,
        Err(error) => return dashboard.store_error(error),
    };
    let mut body = FilterForm::new(&format!("{base}/jobs"))
        .select("status", "Status", &RUN_STATUSES, given(&query.status))
        .input("job", "Job", given(&query.job))
        .input("scope", "Scope (type:id)", given(&query.scope))
        .input("tenant", "Tenant", given(&query.tenant))
        .finish();
    body.push(runs_table(&dashboard, &runs, "No runs match."));
    dashboard.page("Job runs", None, body)
}

fn runs_table<B: Backend>(dashboard: &Dashboard<B>, runs: &[RunInfo], empty: &str) -> Markup {
    let base = dashboard.base();
    let now = dashboard.store.now();
    table(
        &[
            "Run",
            "Job",
            "Pool",
            "Status",
            "Attempt",
            "Scope",
            "Created",
            "Last error",
        ],
        runs.iter()
            .map(|run| {
                vec![
                    link(&format!("{base}/jobs/{}", run.id), &run.id.to_string()),
                    cell(&run.job),
                    cell(&run.pool),
                    cell(run_status(run, now)),
                    cell(format!("{}/{}", run.attempt, run.max_attempts)),
                    cell(aggregate(
                        run.scope_type.as_deref(),
                        run.scope_id.as_deref(),
                    )),
                    cell(relative(run.created_at, now)),
                    cell(
                        run.last_error
                            .as_deref()
                            .map_or_else(|| "-".to_owned(), |error| first_line(error, 60)),
                    ),
                ]
            })
            .collect(),
        empty,
    )
}

pub(super) async fn run<B: Backend>(
    State(dashboard): Shared<B>,
    Path(id): Path<Uuid>,
    Query(notice): Query<Notice>,
) -> Response {
    let base = dashboard.base();
    let now = dashboard.store.now();
    let jobs = dashboard.store.jobs();
    let run = match jobs.get(id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return dashboard.error(
                StatusCode::NOT_FOUND,
                &format!("No run {id} (it may have been pruned)."),
            );
        }
        Err(error) => return dashboard.store_error(error),
    };
    let tree = match jobs
        .list(&RunFilter::default().root(run.root_id).limit(1_000))
        .await
    {
        Ok(tree) => tree,
        Err(error) => return dashboard.store_error(error),
    };
    let event = match run.event_id {
        Some(event) => link(&format!("{base}/events/{event}"), &event.to_string()),
        None => cell("-"),
    };
    let mut body = Markup::default();
    if dashboard.options.allow_actions {
        if run.status.is_final() && run.status != RunStatus::Completed {
            body.push(action_form(
                &format!("{base}/jobs/{id}/retry"),
                &[],
                &dashboard.csrf_token,
                "Retry",
            ));
        }
        if !run.status.is_final() {
            body.push(action_form(
                &format!("{base}/jobs/{id}/cancel"),
                &[],
                &dashboard.csrf_token,
                "Cancel",
            ));
        }
    }
    body.push(fields(vec![
        ("Run", cell(run.id.to_string())),
        ("Job", cell(&run.job)),
        ("Pool", cell(&run.pool)),
        ("Status", cell(run_status(&run, now))),
        (
            "Attempt",
            cell(format!("{} of {}", run.attempt, run.max_attempts)),
        ),
        (
            "Scope",
            cell(aggregate(
                run.scope_type.as_deref(),
                run.scope_id.as_deref(),
            )),
        ),
        ("Tenant", cell(or_dash(run.tenant_id.as_deref()))),
        ("Event", event),
        ("Trace", cell(trace_id(run.trace.as_ref()))),
        ("Dedupe key", cell(or_dash(run.dedupe_key.as_deref()))),
        ("Created", cell(time(run.created_at))),
        ("Finished", cell(or_dash(run.finished_at.map(time)))),
    ]));
    let json = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    body.push(Markup::raw("<h2>Input</h2>"));
    body.push(pre(&json(&run.input)));
    if let Some(output) = &run.output {
        body.push(Markup::raw("<h2>Output</h2>"));
        body.push(pre(&json(output)));
    }
    if let Some(error) = &run.last_error {
        body.push(Markup::raw("<h2>Last error</h2>"));
        body.push(pre(error));
    }
    if tree.len() > 1 {
        body.push(Markup::raw("<h2>Tree</h2>"));
        let children = run_tree(&tree);
        body.push(tree_list(&children, None, base, run.id, now));
    }
    dashboard.page(
        &format!("Run of {}", run.job),
        notice.flash.as_deref(),
        body,
    )
}

fn tree_list(
    children: &BTreeMap<Option<Uuid>, Vec<&RunInfo>>,
    parent: Option<Uuid>,
    base: &str,
    shown: Uuid,
    now: DateTime<Utc>,
) -> Markup {
    let Some(nodes) = children.get(&parent) else {
        return Markup::default();
    };
    let mut html = Markup::raw("<ul>");
    for node in nodes {
        html.push(Markup::raw("<li>"));
        let label = format!("{} · {}", node.job, run_status(node, now));
        if node.id == shown {
            html.push(Markup::raw(format!(
                "<strong>{}</strong>",
                text(&label).into_string()
            )));
        } else {
            html.push(link(&format!("{base}/jobs/{}", node.id), &label));
        }
        html.push(tree_list(children, Some(node.id), base, shown, now));
        html.push(Markup::raw("</li>"));
    }
    html.push(Markup::raw("</ul>"));
    html
}

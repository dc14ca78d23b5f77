//! The event catalog: one Markdown page that a person reads to learn the domain's events, what
//! publishes them and what they set off, with a Mermaid diagram of the flow.
//!
//! Everything is listed in name order and nothing depends on the machine, so the page is
//! byte-identical wherever it is generated and `catalog --check` can keep it current in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use herald_vocabulary::{Backoff, Direction, RetryPolicy};

use crate::emit::GENERATED_MARKER;
use crate::jobs::Job;
use crate::model::{
    Compatibility, DefaultValue, Entity, EntityType, Event, Model, PayloadType, Routing,
};

/// What the page says beyond the model.
#[derive(Debug, Clone)]
pub struct CatalogOptions<'a> {
    /// The command named in the "do not edit" header.
    pub regenerate_command: &'a str,
    /// The `compatibility` of events that declare none (`compatibility:` of codegen.yaml).
    pub default_compatibility: Compatibility,
}

impl Default for CatalogOptions<'_> {
    fn default() -> Self {
        Self {
            regenerate_command: "codegen-cli catalog",
            default_compatibility: Compatibility::default(),
        }
    }
}

/// Who is on the other end of an event, for the page and the diagram.
struct Links<'a> {
    /// Event type → the jobs it triggers.
    triggers: BTreeMap<&'a str, Vec<&'a str>>,
    /// Event type → the jobs that publish it.
    published_by: BTreeMap<&'a str, Vec<&'a str>>,
    /// Event type → the entity whose writes publish it, and the write (`None`: the entity lists
    /// it in `emits:` but no write publishes it, so the application does).
    emitted_by: BTreeMap<&'a str, Vec<(&'a str, Option<&'static str>)>>,
}

impl<'a> Links<'a> {
    fn new(model: &'a Model, jobs: &'a [Job]) -> Self {
        let mut links = Self {
            triggers: BTreeMap::new(),
            published_by: BTreeMap::new(),
            emitted_by: BTreeMap::new(),
        };
        for job in jobs {
            for event in &job.triggers {
                links.triggers.entry(event).or_default().push(&job.name);
            }
            for event in &job.publishes {
                links.published_by.entry(event).or_default().push(&job.name);
            }
        }
        for entity in &model.entities {
            for event in &entity.emits {
                let write = entity
                    .emit_bindings
                    .iter()
                    .find(|binding| &binding.event == event)
                    .map(|binding| binding.write.method());
                links
                    .emitted_by
                    .entry(event)
                    .or_default()
                    .push((&entity.name, write));
            }
        }
        links
    }
}

/// The catalog page.
pub fn catalog_markdown(model: &Model, jobs: &[Job], options: &CatalogOptions<'_>) -> String {
    let links = Links::new(model, jobs);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- {GENERATED_MARKER} by `{}`. Do not edit: change the YAML or the jobs and run it again. -->\n",
        options.regenerate_command
    );
    out.push_str("# Event catalog\n\n");
    let _ = writeln!(
        out,
        "{}, {} and {}, read from the YAML declarations and the `#[job_handler]` functions.\n",
        count(model.events.len(), "event"),
        count(model.entities.len(), "entity"),
        count(jobs.len(), "job"),
    );
    out.push_str("## Flow\n\n");
    out.push_str(
        "Entities' writes publish change events; events trigger jobs; jobs publish events. \
         Parallelograms are systems outside the service: inbound events come from them, \
         outbound events go to them.\n\n",
    );
    out.push_str(&flow_diagram(model, jobs));
    out.push('\n');
    write_event_index(&mut out, model);
    for event in &model.events {
        write_event(&mut out, event, &links, options);
    }
    out.push_str("## Entities\n\n");
    if model.entities.is_empty() {
        out.push_str("None.\n\n");
    }
    for entity in &model.entities {
        write_entity(&mut out, entity, model);
    }
    write_jobs(&mut out, jobs);
    // One trailing newline, whatever the last section wrote.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

fn count(n: usize, noun: &str) -> String {
    let plural = match noun.strip_suffix('y') {
        Some(stem) if n != 1 => format!("{stem}ies"),
        _ if n != 1 => format!("{noun}s"),
        _ => noun.to_owned(),
    };
    format!("{n} {plural}")
}

/// The Mermaid `flowchart LR` of who triggers what, in a fenced block: entities' writes →
/// change events, outside systems → inbound events, events → the jobs they trigger → the
/// events those jobs publish, outbound events → outside systems.
pub fn flow_diagram(model: &Model, jobs: &[Job]) -> String {
    let links = Links::new(model, jobs);
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    for entity in &model.entities {
        if !entity.emits.is_empty() {
            nodes.insert(format!(
                "    {}[(\"{}\")]",
                node_id("entity", &entity.name),
                label(&entity.name)
            ));
        }
    }
    for event in &model.events {
        let id = node_id("event", &event.name);
        nodes.insert(format!("    {id}([\"{}\"])", label(&event.name)));
        if let Routing::Domain { direction, .. } = &event.routing {
            match direction {
                Direction::Inbound => {
                    let system = event.source.as_deref().unwrap_or("outside");
                    let system_id = node_id("system", system);
                    nodes.insert(format!("    {system_id}[/\"{}\"/]", label(system)));
                    edges.insert(format!("    {system_id} --> {id}"));
                }
                Direction::Outbound => {
                    let system = event.destination.as_deref().unwrap_or("outside");
                    let system_id = node_id("system", system);
                    nodes.insert(format!("    {system_id}[/\"{}\"/]", label(system)));
                    edges.insert(format!("    {id} --> {system_id}"));
                }
                Direction::Change => {}
            }
        }
        for (entity, write) in links
            .emitted_by
            .get(event.name.as_str())
            .into_iter()
            .flatten()
        {
            let entity_id = node_id("entity", entity);
            edges.insert(match write {
                Some(write) => format!("    {entity_id} -- {write} --> {id}"),
                None => format!("    {entity_id} -. emits .-> {id}"),
            });
        }
    }
    for job in jobs {
        let id = node_id("job", &job.name);
        nodes.insert(format!("    {id}[[\"{}\"]]", label(&job.name)));
        for event in &job.triggers {
            edges.insert(format!("    {} --> {id}", node_id("event", event)));
        }
        for event in &job.publishes {
            edges.insert(format!("    {id} --> {}", node_id("event", event)));
        }
    }
    let mut out = String::from("```mermaid\nflowchart LR\n");
    for line in nodes.iter().chain(&edges) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// A Mermaid node id: a kind prefix keeps an event and a job of the same name apart, and only
/// word characters are left, which Mermaid reads as an id whatever the name holds.
fn node_id(kind: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{kind}_{name}")
}

/// Text inside a quoted Mermaid label: a `"` would end it.
fn label(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Text inside a Markdown table cell: a `|` would end the cell, a line break the row.
fn cell(text: &str) -> String {
    text.trim().replace('|', "\\|").replace('\n', " ")
}

fn direction_of(event: &Event) -> &'static str {
    match &event.routing {
        Routing::Domain { direction, .. } => direction.as_str(),
        Routing::Audit => "—",
    }
}

fn tier_of(event: &Event) -> &'static str {
    match event.routing {
        Routing::Domain { .. } => "domain",
        Routing::Audit => "audit",
    }
}

fn write_event_index(out: &mut String, model: &Model) {
    out.push_str("## Events\n\n");
    if model.events.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    out.push_str("| event | direction | tier | aggregate | version | description |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for event in &model.events {
        let _ = writeln!(
            out,
            "| [`{name}`](#{name}) | {} | {} | {} | {} | {} |",
            direction_of(event),
            tier_of(event),
            event
                .aggregate
                .as_deref()
                .map_or_else(|| "—".to_owned(), |a| format!("`{a}`")),
            event.version,
            event
                .description
                .as_deref()
                .map(first_sentence)
                .map(cell)
                .unwrap_or_default(),
            name = event.name,
        );
    }
    out.push('\n');
}

/// The description up to its first sentence's end, for the index.
fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

fn write_event(out: &mut String, event: &Event, links: &Links<'_>, options: &CatalogOptions<'_>) {
    let _ = writeln!(out, "### `{}`\n", event.name);
    if let Some(description) = &event.description {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    out.push_str("| | |\n| --- | --- |\n");
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "| {key} | {value} |");
    };
    match &event.routing {
        Routing::Domain { direction, pool } => {
            let meaning = match direction {
                Direction::Inbound => "from outside the service",
                Direction::Change => "an aggregate's state changed",
                Direction::Outbound => "to outside the service",
            };
            row("direction", format!("{} ({meaning})", direction.as_str()));
            row("tier", "domain".into());
            row("pool", format!("`{pool}`"));
        }
        Routing::Audit => {
            row("direction", "none (audit events have none)".into());
            row("tier", "audit (observational: triggers no work)".into());
            row("pool", "none: delivered in the `audit` lane".into());
        }
    }
    if let Some(source) = &event.source {
        row("source", cell(source));
    }
    if let Some(destination) = &event.destination {
        row("destination", cell(destination));
    }
    if let Some(aggregate) = &event.aggregate {
        row("aggregate", format!("`{aggregate}`"));
    }
    row("version", event.version.to_string());
    row(
        "compatibility",
        match event.compatibility {
            Some(compatibility) => compatibility.as_str().to_owned(),
            None => format!(
                "{} (the project's default)",
                options.default_compatibility.as_str()
            ),
        },
    );
    row("retry", retry_text(event));
    let mut publishers: Vec<String> = links
        .emitted_by
        .get(event.name.as_str())
        .into_iter()
        .flatten()
        .map(|(entity, write)| match write {
            Some(write) => format!("[`{entity}`](#entity-{entity})'s `{write}`"),
            None => format!(
                "the application (listed in [`{entity}`](#entity-{entity})'s `emits:`, \
                 published by no generated write)"
            ),
        })
        .collect();
    let jobs = |names: Option<&Vec<&str>>| -> Vec<String> {
        names
            .into_iter()
            .flatten()
            .map(|name| format!("job `{name}`"))
            .collect()
    };
    publishers.extend(jobs(links.published_by.get(event.name.as_str())));
    if !publishers.is_empty() {
        row("published by", publishers.join(", "));
    }
    let triggers = jobs(links.triggers.get(event.name.as_str()));
    if !triggers.is_empty() {
        row("triggers", triggers.join(", "));
    }
    row("declared in", format!("`{}`", event.origin));
    out.push('\n');
    if event.fields.is_empty() {
        out.push_str("Payload: no fields.\n\n");
        return;
    }
    let described = event.fields.iter().any(|f| f.description.is_some());
    out.push_str("| field | type | nullable |");
    out.push_str(if described { " description |\n" } else { "\n" });
    out.push_str("| --- | --- | --- |");
    out.push_str(if described { " --- |\n" } else { "\n" });
    for field in &event.fields {
        let ty = match field.ty {
            PayloadType::Scalar(scalar) => scalar.as_str().to_owned(),
            PayloadType::Json => "json".to_owned(),
            PayloadType::Array(item) => format!("array of {}", item.as_str()),
        };
        let nullable = if field.nullable { "yes" } else { "no" };
        let _ = write!(out, "| `{}` | {ty} | {nullable} |", field.key);
        if described {
            let description = field.description.as_deref().map(cell).unwrap_or_default();
            let _ = write!(out, " {description} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

fn retry_text(event: &Event) -> String {
    let default = RetryPolicy::DEFAULT;
    let attempts = event.retry.and_then(|r| r.attempts);
    let backoff = event.retry.and_then(|r| r.backoff);
    let attempts_text = match attempts {
        Some(attempts) => count(attempts.get() as usize, "attempt"),
        None => format!("{} (default)", count(default.attempts as usize, "attempt")),
    };
    let backoff_text = |backoff: Backoff| format!("{} backoff", backoff.as_str());
    let backoff_text = match backoff {
        Some(backoff) => backoff_text(backoff),
        None => format!("{} (default)", backoff_text(default.backoff)),
    };
    format!("{attempts_text}, {backoff_text}")
}

fn write_entity(out: &mut String, entity: &Entity, model: &Model) {
    let _ = writeln!(out, "### Entity `{}`\n", entity.name);
    if let Some(description) = &entity.description {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    let mut facts = vec![format!("table `{}`", entity.table)];
    if let Some(pattern) = &entity.pattern {
        facts.push(format!("pattern `{pattern}`"));
    }
    if !entity.behaviors.is_empty() {
        let behaviors: Vec<&str> = entity.behaviors.iter().map(|b| b.as_str()).collect();
        facts.push(format!("behaviors: {}", behaviors.join(", ")));
    }
    if !entity.writes {
        facts.push("read-only (no writes are generated)".into());
    }
    for relationship in &entity.relationships {
        facts.push(format!(
            "{} [`{target}`](#entity-{target}) as `{}` (via `{}`)",
            relationship.kind.key(),
            relationship.name,
            relationship.foreign_key,
            target = relationship.target,
        ));
    }
    let _ = writeln!(out, "{}.\n", capitalize(&facts.join("; ")));
    out.push_str("| field | type | optional | default | description |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for field in &entity.fields {
        let ty = match &field.ty {
            EntityType::String {
                max_length: Some(max),
            } => format!("string (at most {max})"),
            EntityType::Enum { choices, .. } => {
                let values: Vec<&str> = choices.iter().map(|c| c.value.as_str()).collect();
                format!("enum: {}", values.join(", "))
            }
            other => other.as_str().to_owned(),
        };
        let optional = match (field.required, field.nullable) {
            (true, false) => "no",
            (false, false) => "may be absent",
            (true, true) => "nullable",
            (false, true) => "may be absent or null",
        };
        let default = match &field.default {
            Some(DefaultValue::String(s)) => format!("`{}`", cell(s)),
            Some(DefaultValue::Integer(n)) => format!("`{n}`"),
            Some(DefaultValue::Decimal(d)) => format!("`{d}`"),
            Some(DefaultValue::Boolean(b)) => format!("`{b}`"),
            None => String::new(),
        };
        let description = field.description.as_deref().map(cell).unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | {ty} | {optional} | {default} | {description} |",
            field.key
        );
    }
    out.push('\n');
    let concerning: Vec<&Event> = model
        .events
        .iter()
        .filter(|e| e.aggregate.as_deref() == Some(entity.name.as_str()))
        .collect();
    if concerning.is_empty() && entity.emits.is_empty() {
        out.push_str("No event concerns it.\n\n");
        return;
    }
    out.push_str("Events:\n\n");
    for event in &entity.emits {
        let binding = entity.emit_bindings.iter().find(|b| &b.event == event);
        let how = match binding {
            Some(binding) => format!("published by its `{}`", binding.write.method()),
            None => "emitted (published by the application)".to_owned(),
        };
        let _ = writeln!(out, "- [`{event}`](#{event}): {how}");
    }
    for event in concerning {
        if !entity.emits.contains(&event.name) {
            let _ = writeln!(
                out,
                "- [`{name}`](#{name}): {} event about it",
                direction_of(event).replace('—', "audit"),
                name = event.name,
            );
        }
    }
    out.push('\n');
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn write_jobs(out: &mut String, jobs: &[Job]) {
    out.push_str("## Jobs\n\n");
    if jobs.is_empty() {
        out.push_str(
            "None found: list the Rust files or directories of the `#[job_handler]` functions \
             under `jobs:` in codegen.yaml.\n",
        );
        return;
    }
    out.push_str(
        "Read from the `#[job_handler]` attributes. \"Publishes\" lists the events whose payload \
         the handler builds, in its body or in a function of the same file that it calls.\n\n",
    );
    out.push_str("| job | pool | attempts | triggered by | publishes | defined in |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let events = |names: &[String]| {
        if names.is_empty() {
            return "—".to_owned();
        }
        names
            .iter()
            .map(|name| format!("[`{name}`](#{name})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for job in jobs {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | `{}:{}` |",
            job.name,
            job.pool,
            job.attempts,
            events(&job.triggers),
            events(&job.publishes),
            job.location.path.display().to_string().replace('\\', "/"),
            job.location.line,
        );
    }
}

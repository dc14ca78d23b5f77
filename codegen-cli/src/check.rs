//! The rules of the YAML format: raw declarations in, a [`Model`] out, every violation
//! reported with the fix. One `check_*` function per concern, as serde_derive's `check.rs`.

use std::collections::{BTreeMap, BTreeSet};

use herald_vocabulary::naming::{
    closest, is_snake_case, suggest_snake_case, to_pascal_case, to_plural, to_snake_case,
};
use herald_vocabulary::pool::{EventPoolError, check_event_pool};
use herald_vocabulary::{DEFAULT_JOB_POOL, Keyword, MaxAttempts, Tier};

use crate::diagnostic::{Diagnostic, Diagnostics, Location, Span, Subject};
use crate::model::{
    BEHAVIORS, Backoff, Behavior, Choice, Compatibility, DefaultValue, Direction, ENTITY_TYPES,
    EmitBinding, Entity, EntityField, EntityType, Event, KeptVersion, Model, OrderBy,
    PAYLOAD_TYPES, PayloadField, PayloadSource, PayloadType, Query, QueryKind, Relationship, Retry,
    Routing, Scalar, Source, Write,
};
use crate::names::{field_ident, variant_ident};
use crate::parse::{
    RawDefault, RawEntity, RawEntityField, RawEvent, RawPayloadField, RawQuery, RelationKind, Sp,
    list,
};
use crate::source::{FileId, FileKind, SourceMap};

struct Checker<'a> {
    sources: &'a SourceMap,
    diagnostics: &'a mut Diagnostics,
}

impl Checker<'_> {
    fn report(
        &mut self,
        subject: &Subject,
        file: FileId,
        span: Span,
        code: &'static str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::new(
            code,
            subject.clone(),
            Location { file, span },
            message,
        ))
    }
}

/// The entity names a run knows, and those of files that failed before their entity could be
/// checked: a reference to one of those is not reported again, its file's error says it all.
pub(crate) struct EntityNames {
    valid: BTreeSet<String>,
    broken: BTreeSet<String>,
}

impl EntityNames {
    fn contains(&self, name: &str) -> bool {
        self.valid.contains(name)
    }

    /// Declared, but in a file with errors of its own.
    fn is_broken(&self, name: &str) -> bool {
        !self.valid.contains(name) && self.broken.contains(name)
    }

    fn known(&self) -> Vec<&str> {
        self.valid.iter().map(String::as_str).collect()
    }
}

/// Checks every declaration against every rule and builds the model when nothing is wrong.
///
/// `unreadable` lists the files that could not be read as declarations at all (a YAML syntax
/// error, a document that is not a mapping): they are reported already, and what refers to
/// them is not checked against them.
pub fn check(
    sources: &SourceMap,
    events: &[RawEvent],
    entities: &[RawEntity],
    unreadable: &[FileId],
    diagnostics: &mut Diagnostics,
) -> Model {
    let mut checker = Checker {
        sources,
        diagnostics,
    };
    let entity_names = check_entity_names(&mut checker, entities, unreadable);

    // A file that keeps an earlier version (`<type>.v<N>.yaml`) declares no event of its own.
    let (kept, events): (Vec<&RawEvent>, Vec<&RawEvent>) = events
        .iter()
        .partition(|raw| sources.kept_version(raw.file).is_some());
    let all_events: Vec<&RawEvent> = events
        .iter()
        .copied()
        .chain(entities.iter().flat_map(|e| e.events.iter()))
        .collect();
    // Every event type some file declares, valid or not, so that `emits:` of a type whose
    // file has errors is not reported as undeclared on top of them.
    let mut declared_events: BTreeSet<String> = all_events
        .iter()
        .filter_map(|e| e.type_.as_ref().map(|t| t.value.clone()))
        .collect();
    for raw in &events {
        if raw.type_.is_none()
            && let Some(stem) = sources.stem(raw.file)
        {
            declared_events.insert(stem.to_owned());
        }
    }
    for &file in unreadable {
        if sources.file(file).kind == FileKind::Event
            && sources.kept_version(file).is_none()
            && let Some(stem) = sources.stem(file)
        {
            declared_events.insert(stem.to_owned());
        }
    }
    let mut model_events = Vec::new();
    let mut first_declared: BTreeMap<String, Location> = BTreeMap::new();
    let mut struct_names: BTreeMap<String, (String, Location)> = BTreeMap::new();
    for raw in all_events {
        let Some(event) = check_event(&mut checker, raw, &entity_names) else {
            continue;
        };
        let type_span = raw.type_.as_ref().map_or(raw.span, |t| t.span);
        let here = Location {
            file: raw.file,
            span: type_span,
        };
        let subject = Subject::Event(event.name.clone());
        if let Some(first) = first_declared.get(&event.name) {
            let first = *first;
            let help = if raw.declared_in_entity.is_some() || first_is_inline(entities, first) {
                "an entity's `events:` block declares change events just like `events/`; keep one declaration"
            } else {
                "event types are unique; rename one of them or delete the duplicate"
            };
            checker
                .report(
                    &subject,
                    raw.file,
                    type_span,
                    "duplicate-event",
                    format!("event type `{}` is declared twice", event.name),
                )
                .set_label("declared again here")
                .set_help(help)
                .add_related(first, "first declared here");
            continue;
        }
        first_declared.insert(event.name.clone(), here);
        if let Some((other, first)) = struct_names.get(&event.struct_name) {
            let (other, first) = (other.clone(), *first);
            checker
                .report(
                    &subject,
                    raw.file,
                    type_span,
                    "name-collision",
                    format!(
                        "event types `{other}` and `{}` both become the Rust type `{}`",
                        event.name, event.struct_name
                    ),
                )
                .set_help("rename one of them so that their UpperCamelCase forms differ")
                .add_related(first, "the other one");
            continue;
        }
        struct_names.insert(event.struct_name.clone(), (event.name.clone(), here));
        model_events.push(event);
    }
    model_events.sort_by(|a, b| a.name.cmp(&b.name));
    check_kept_versions(
        &mut checker,
        &kept,
        &mut model_events,
        &declared_events,
        &struct_names,
    );

    let by_type: BTreeMap<&str, &Event> =
        model_events.iter().map(|e| (e.name.as_str(), e)).collect();
    let known_events = KnownEvents {
        valid: &by_type,
        declared: &declared_events,
    };
    // Each entity on its own first; then what one entity says about another (a `has_many`
    // needs the target's `belongs_to`), only between entities that passed the first step, so
    // that one broken file does not make its neighbours report errors they do not have.
    let mut model_entities: Vec<Entity> = entities
        .iter()
        .filter_map(|raw| check_entity(&mut checker, raw, &entity_names, &known_events))
        .collect();
    model_entities.sort_by(|a, b| a.name.cmp(&b.name));
    check_back_references(&mut checker, entities, &model_entities);
    check_tables(&mut checker, entities, &model_entities);

    Model {
        events: model_events,
        entities: model_entities,
    }
}

/// The files that keep an earlier version of an event (`<type>.v<N>.yaml`), attached to the
/// event's current declaration. Only what makes a payload shape is checked (the parser has
/// refused unknown keys already): routing and retry describe the event, which its current
/// declaration does, so a kept file copied from git stays valid after an entity is renamed.
fn check_kept_versions(
    checker: &mut Checker<'_>,
    raws: &[&RawEvent],
    events: &mut [Event],
    declared: &BTreeSet<String>,
    struct_names: &BTreeMap<String, (String, Location)>,
) {
    let mut first_kept: BTreeMap<(String, u32), Location> = BTreeMap::new();
    for raw in raws {
        let Some((event_type, kept)) = checker.sources.kept_version(raw.file) else {
            continue;
        };
        let event_type = event_type.to_owned();
        let file_name = format!("{event_type}.v{kept}.yaml");
        let subject = Subject::Event(event_type.clone());
        let file = raw.file;
        let type_span = raw.type_.as_ref().map_or(raw.span, |t| t.span);
        let version_span = raw.version.as_ref().map_or(type_span, |v| v.span);
        let mut valid = true;
        match &raw.type_ {
            None => {
                checker
                    .report(&subject, file, raw.span, "missing-key", "the kept version has no `type` key")
                    .set_help(format!("add `type: {event_type}`: a kept file is the event's declaration as it was at version {kept}"));
                valid = false;
            }
            Some(type_) if type_.value != event_type => {
                checker
                    .report(
                        &subject,
                        file,
                        type_.span,
                        "name-mismatch",
                        format!(
                            "`{file_name}` keeps a version of `{event_type}`, but declares `{}`",
                            type_.value
                        ),
                    )
                    .set_label("does not match the file name")
                    .set_help(format!(
                        "write `type: {event_type}`, or rename the file to `{}.v{kept}.yaml`",
                        type_.value
                    ));
                valid = false;
            }
            Some(_) => {}
        }
        let written = raw.version.as_ref().map_or(1, |v| v.value);
        if written != i64::from(kept) {
            let said = if raw.version.is_some() {
                format!("its `version` is {written}")
            } else {
                "it has no `version`, which means 1".to_owned()
            };
            let rename = if written >= 1 {
                format!(", or rename the file to `{event_type}.v{written}.yaml`")
            } else {
                String::new()
            };
            checker
                .report(
                    &subject,
                    file,
                    version_span,
                    "kept-version-mismatch",
                    format!("`{file_name}` keeps version {kept}, but {said}"),
                )
                .set_label(format!("must be {kept}"))
                .set_help(format!(
                    "a kept file is the event's declaration as it was at version {kept}: set `version: {kept}`{rename}"
                ));
            valid = false;
        }
        let fields = check_payload(checker, &subject, raw);
        let here = Location {
            file,
            span: version_span,
        };
        if let Some(first) = first_kept.get(&(event_type.clone(), kept)) {
            let first = *first;
            checker
                .report(
                    &subject,
                    file,
                    version_span,
                    "duplicate-kept-version",
                    format!("version {kept} is kept twice"),
                )
                .set_label("kept again here")
                .set_help(format!(
                    "keep one file per version: `{file_name}`, and delete the other"
                ))
                .add_related(first, "first kept here");
            continue;
        }
        first_kept.insert((event_type.clone(), kept), here);
        let Some(current) = events.iter_mut().find(|e| e.name == event_type) else {
            // A current declaration with errors of its own is reported already.
            if !declared.contains(&event_type) {
                checker
                    .report(
                        &subject,
                        file,
                        type_span,
                        "kept-without-current",
                        format!("`{file_name}` keeps version {kept} of an event that has no current declaration"),
                    )
                    .set_label("kept here")
                    .set_help(format!(
                        "a kept version sits beside the event's current declaration: declare `{event_type}` in `events/{event_type}.yaml` (or an entity's `events:` block), or delete this file"
                    ));
            }
            continue;
        };
        if current.version <= kept {
            checker
                .report(
                    &subject,
                    file,
                    version_span,
                    "kept-not-older",
                    format!(
                        "`{file_name}` keeps version {kept}, but the current declaration is at version {}",
                        current.version
                    ),
                )
                .set_label("not an earlier version")
                .set_help(format!(
                    "a kept file holds a version below the current one: bump `version` in `{}` to {} with the payload change, or delete this file",
                    current.origin,
                    kept + 1
                ));
            continue;
        }
        let struct_name = format!("{}V{kept}", current.struct_name);
        if let Some((other, at)) = struct_names.get(&struct_name) {
            let (other, at) = (other.clone(), *at);
            checker
                .report(
                    &subject,
                    file,
                    version_span,
                    "name-collision",
                    format!("version {kept} of `{event_type}` and the event `{other}` both become the Rust type `{struct_name}`"),
                )
                .set_help(format!("rename the event `{other}`, whose name reads like a kept version of `{event_type}`"))
                .add_related(at, "the other one");
            continue;
        }
        if let (true, Some(fields)) = (valid, fields) {
            current.kept.push(KeptVersion {
                version: kept,
                module: format!("{event_type}_v{kept}"),
                struct_name,
                description: raw.description.as_ref().map(|d| d.value.clone()),
                fields,
                origin: checker.sources.path(file).to_owned(),
            });
        }
    }
    // Each typed upcaster goes one version up, so the version after a kept one must be kept
    // too, or be the current one.
    for event in events.iter_mut() {
        event.kept.sort_by_key(|kept| kept.version);
        for kept in &event.kept {
            let next = kept.version + 1;
            if next == event.version || first_kept.contains_key(&(event.name.clone(), next)) {
                continue;
            }
            let Some(at) = first_kept.get(&(event.name.clone(), kept.version)) else {
                continue;
            };
            let name = &event.name;
            let version = kept.version;
            checker
                .report(
                    &Subject::Event(name.clone()),
                    at.file,
                    at.span,
                    "kept-version-gap",
                    format!(
                        "version {version} is kept, but version {next} is neither kept nor current (the current one is {})",
                        event.version
                    ),
                )
                .set_label(format!("upcasts into version {next}"))
                .set_help(format!(
                    "the typed upcaster from version {version} returns the version-{next} payload: keep version {next} too (`events/{name}.v{next}.yaml`, the declaration as it was at version {next}), or delete this file and register `bus.upcast(\"{name}\", {version}, ..)`"
                ));
        }
    }
}

/// The events an entity's `emits:` may name.
struct KnownEvents<'a> {
    valid: &'a BTreeMap<&'a str, &'a Event>,
    /// Declared somewhere, valid or not.
    declared: &'a BTreeSet<String>,
}

fn first_is_inline(entities: &[RawEntity], location: Location) -> bool {
    entities.iter().any(|e| e.file == location.file)
}

/// Entity names must be snake_case, equal to the file stem and unique. Returns the valid ones,
/// and the names (or file stems) of the files whose name could not be read.
fn check_entity_names(
    checker: &mut Checker<'_>,
    entities: &[RawEntity],
    unreadable: &[FileId],
) -> EntityNames {
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    let mut broken = BTreeSet::new();
    for &file in unreadable {
        if checker.sources.file(file).kind == FileKind::Entity
            && let Some(stem) = checker.sources.stem(file)
        {
            broken.insert(stem.to_owned());
        }
    }
    for raw in entities {
        let stem = checker
            .sources
            .stem(raw.file)
            .unwrap_or_default()
            .to_owned();
        let Some(name) = &raw.name else {
            broken.insert(stem.clone());
            // An `entity:` that could not be read has its own error already.
            if raw.has_entity_key {
                continue;
            }
            let subject = Subject::Entity(stem.clone());
            checker
                .report(
                    &subject,
                    raw.file,
                    raw.span,
                    "missing-key",
                    "the entity file has no `entity` key",
                )
                .set_help(format!(
                    "add `entity: {}` naming the entity (or `entity: {{ name: {} }}`)",
                    to_snake_case(&stem),
                    to_snake_case(&stem)
                ));
            continue;
        };
        let subject = Subject::Entity(name.value.clone());
        if !check_name(checker, &subject, raw.file, name, "entity name") {
            broken.insert(stem);
            broken.insert(name.value.clone());
            continue;
        }
        if name.value != stem {
            let form = if raw.long_form {
                format!("`name: {stem}`")
            } else {
                format!("`entity: {stem}`")
            };
            checker
                .report(
                    &subject,
                    raw.file,
                    name.span,
                    "name-mismatch",
                    format!("entity `{}` is declared in `{stem}.yaml`", name.value),
                )
                .set_label("does not match the file name")
                .set_help(format!(
                    "rename the file to `{}.yaml`, or write {form}",
                    name.value
                ));
            broken.insert(stem.clone());
        }
        if let Some(first) = seen.get(&name.value) {
            let first = *first;
            checker
                .report(
                    &subject,
                    raw.file,
                    name.span,
                    "duplicate-entity",
                    format!("entity `{}` is declared twice", name.value),
                )
                .set_help("entity names are unique; rename or delete one of them")
                .add_related(first, "first declared here");
            continue;
        }
        seen.insert(
            name.value.clone(),
            Location {
                file: raw.file,
                span: name.span,
            },
        );
    }
    EntityNames {
        valid: seen.into_keys().collect(),
        broken,
    }
}

/// snake_case names; `what` says what is named in the message.
fn check_name(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    name: &Sp<String>,
    what: &str,
) -> bool {
    if is_snake_case(&name.value) {
        return true;
    }
    let help = match suggest_snake_case(&name.value) {
        Some(suggestion) => format!("write it in snake_case, e.g. `{suggestion}`"),
        None => "write it in snake_case: lowercase letters, digits and single underscores, starting with a letter".to_owned(),
    };
    checker
        .report(
            subject,
            file,
            name.span,
            "invalid-name",
            format!("{what} `{}` is not snake_case", name.value),
        )
        .set_help(help);
    false
}

fn check_event(checker: &mut Checker<'_>, raw: &RawEvent, entities: &EntityNames) -> Option<Event> {
    let stem = checker
        .sources
        .stem(raw.file)
        .unwrap_or_default()
        .to_owned();
    let subject = Subject::Event(
        raw.type_
            .as_ref()
            .map_or_else(|| stem.clone(), |t| t.value.clone()),
    );
    let file = raw.file;
    let mut valid = true;

    let name = match &raw.type_ {
        None => {
            checker
                .report(
                    &subject,
                    file,
                    raw.span,
                    "missing-key",
                    "the event file has no `type` key",
                )
                .set_help(format!(
                    "add `type: {}`; it must equal the file name",
                    to_snake_case(&stem)
                ));
            valid = false;
            stem.clone()
        }
        Some(type_) => {
            valid &= check_name(checker, &subject, file, type_, "event type");
            if raw.declared_in_entity.is_none()
                && type_.value != stem
                && is_snake_case(&type_.value)
            {
                checker
                    .report(
                        &subject,
                        file,
                        type_.span,
                        "name-mismatch",
                        format!("event `{}` is declared in `{stem}.yaml`", type_.value),
                    )
                    .set_label("does not match the file name")
                    .set_help(format!(
                        "rename the file to `{}.yaml`, or write `type: {stem}`",
                        type_.value
                    ));
                valid = false;
            }
            type_.value.clone()
        }
    };

    let routing = if let Some(entity) = &raw.declared_in_entity {
        let pool = check_pool(
            checker,
            &subject,
            file,
            Direction::Change,
            raw.pool.as_ref(),
        );
        pool.map(|pool| Routing::Domain {
            direction: Direction::Change,
            pool,
        })
        .map(|routing| (routing, Some(entity.clone())))
    } else {
        check_routing(checker, &subject, raw, entities)
    };
    let (routing, aggregate) = match routing {
        Some(r) => r,
        None => {
            valid = false;
            (Routing::Audit, None)
        }
    };

    let version = match &raw.version {
        None => 1,
        Some(v) => {
            match u32::try_from(v.value) {
                Ok(version) if version >= 1 => version,
                _ => {
                    checker
                    .report(&subject, file, v.span, "invalid-version", format!("version {} is not allowed", v.value))
                    .set_label("must be 1 or more")
                    .set_help("versions start at 1 and grow by one with each incompatible payload change");
                    valid = false;
                    1
                }
            }
        }
    };

    let compatibility = raw.compatibility.as_ref().and_then(|word| {
        let found =
            keyword::<Compatibility>(checker, &subject, file, word, "unknown-compatibility");
        valid &= found.is_some();
        found
    });

    let retry = match &raw.retry {
        None => None,
        Some(r) => {
            // YAML counts every attempt, the first one included.
            let attempts = r.attempts.as_ref().and_then(|a| {
                let attempts = u32::try_from(a.value).ok().and_then(MaxAttempts::total);
                if attempts.is_none() {
                    checker
                        .report(&subject, file, a.span, "invalid-retry", format!("retry attempts {} is not allowed", a.value))
                        .set_label("must be 1 or more")
                        .set_help("`attempts` counts every delivery attempt, the first one included; use 1 for no retry");
                    valid = false;
                }
                attempts
            });
            let backoff = r.backoff.as_ref().and_then(|b| {
                let found = keyword::<Backoff>(checker, &subject, file, b, "unknown-backoff");
                valid &= found.is_some();
                found
            });
            Some(Retry { attempts, backoff })
        }
    };

    let fields = check_payload(checker, &subject, raw).unwrap_or_else(|| {
        valid = false;
        Vec::new()
    });

    valid.then(|| Event {
        struct_name: to_pascal_case(&name),
        name,
        version,
        compatibility,
        routing,
        aggregate,
        source: raw.source.as_ref().map(|s| s.value.clone()),
        destination: raw.destination.as_ref().map(|d| d.value.clone()),
        retry,
        description: raw.description.as_ref().map(|d| d.value.clone()),
        fields,
        kept: Vec::new(),
        origin: checker.sources.path(file).to_owned(),
    })
}

/// The payload of an event or of a kept version: its fields, or `None` after reporting why not.
fn check_payload(
    checker: &mut Checker<'_>,
    subject: &Subject,
    raw: &RawEvent,
) -> Option<Vec<PayloadField>> {
    match &raw.payload {
        None => {
            checker
                .report(subject, raw.file, raw.type_.as_ref().map_or(raw.span, |t| t.span), "missing-key", "the event has no `payload`")
                .set_help("add `payload:` with one entry per field, e.g. `contact_id: { type: uuid }` (use `payload: {}` for none)");
            None
        }
        Some(payload) => {
            let mut valid = true;
            let mut fields = Vec::new();
            let mut idents: BTreeMap<String, Span> = BTreeMap::new();
            for raw_field in &payload.value {
                let Some(field) = check_payload_field(checker, subject, raw.file, raw_field) else {
                    valid = false;
                    continue;
                };
                if let Some(first) = idents.get(&field.ident) {
                    let first = Location {
                        file: raw.file,
                        span: *first,
                    };
                    checker
                        .report(
                            subject,
                            raw.file,
                            raw_field.name.span,
                            "name-collision",
                            format!(
                                "payload keys `{}` and another key both become the Rust field `{}`",
                                field.key, field.ident
                            ),
                        )
                        .set_help("rename one of the keys")
                        .add_related(first, "the other key");
                    valid = false;
                    continue;
                }
                idents.insert(field.ident.clone(), raw_field.name.span);
                fields.push(field);
            }
            valid.then_some(fields)
        }
    }
}

/// Tier, direction, pool, aggregate, source and destination of an event file.
fn check_routing(
    checker: &mut Checker<'_>,
    subject: &Subject,
    raw: &RawEvent,
    entities: &EntityNames,
) -> Option<(Routing, Option<String>)> {
    let file = raw.file;
    let tier = match &raw.tier {
        None => Tier::Domain,
        Some(tier) => keyword(checker, subject, file, tier, "unknown-tier")?,
    };
    let aggregate = raw.aggregate.as_ref().map(|a| a.value.clone());
    if tier == Tier::Audit {
        let mut valid = true;
        if let Some(direction) = &raw.direction {
            checker
                .report(subject, file, direction.span, "audit-direction", "an audit event has no direction")
                .set_label("remove this line")
                .set_help("audit events are observations that never trigger work; remove `direction`, or remove `tier: audit` to make it a domain event");
            valid = false;
        }
        if let Some(pool) = &raw.pool {
            checker
                .report(
                    subject,
                    file,
                    pool.span,
                    "audit-pool",
                    "an audit event is not delivered through a pool",
                )
                .set_label("remove this line")
                .set_help("audit events are stored, never dispatched to jobs; remove `pool`");
            valid = false;
        }
        for (key, value) in [("source", &raw.source), ("destination", &raw.destination)] {
            if let Some(value) = value {
                checker
                    .report(
                        subject,
                        file,
                        value.span,
                        "misplaced-key",
                        format!("an audit event has no `{key}`"),
                    )
                    .set_help(format!(
                        "`{key}` belongs to {} events; remove it",
                        if key == "source" {
                            "inbound"
                        } else {
                            "outbound"
                        }
                    ));
                valid = false;
            }
        }
        return valid.then_some((Routing::Audit, aggregate));
    }

    let Some(direction) = &raw.direction else {
        checker
            .report(subject, file, raw.type_.as_ref().map_or(raw.span, |t| t.span), "missing-direction", "a domain event needs a `direction`")
            .set_help("add `direction: inbound`, `direction: change` or `direction: outbound`, or `tier: audit` for an observation that triggers nothing");
        return None;
    };
    let direction_value: Direction =
        keyword(checker, subject, file, direction, "unknown-direction")?;
    let mut valid = true;
    if direction_value == Direction::Change {
        match &raw.aggregate {
            None => {
                checker
                    .report(
                        subject,
                        file,
                        direction.span,
                        "missing-aggregate",
                        "a change event needs an `aggregate`",
                    )
                    .set_help("add `aggregate: <entity>` naming the entity whose state changed");
                valid = false;
            }
            // The entity's own file has errors: they are reported there, not here.
            Some(aggregate) if entities.is_broken(&aggregate.value) => {}
            Some(aggregate) if !entities.contains(&aggregate.value) => {
                let known = entities.known();
                let help = match closest(&aggregate.value, &known) {
                    Some(near) => format!(
                        "did you mean `{near}`? Or declare `entities/{}.yaml`",
                        aggregate.value
                    ),
                    None => format!(
                        "declare the entity in `entities/{}.yaml`, or name one of: {}",
                        aggregate.value,
                        if known.is_empty() {
                            "(no entities are declared)".to_owned()
                        } else {
                            list(&known)
                        }
                    ),
                };
                checker
                    .report(
                        subject,
                        file,
                        aggregate.span,
                        "unknown-aggregate",
                        format!("aggregate `{}` is not a declared entity", aggregate.value),
                    )
                    .set_label("no entity has this name")
                    .set_help(help);
                valid = false;
            }
            Some(_) => {}
        }
    }
    if let Some(source) = &raw.source
        && direction_value != Direction::Inbound
    {
        checker
            .report(subject, file, source.span, "misplaced-key", format!("a {} event has no `source`", direction_value.as_str()))
            .set_help("`source` names the system an inbound event comes from; remove it, or make the event `direction: inbound`");
        valid = false;
    }
    if let Some(destination) = &raw.destination
        && direction_value != Direction::Outbound
    {
        checker
            .report(subject, file, destination.span, "misplaced-key", format!("a {} event has no `destination`", direction_value.as_str()))
            .set_help("`destination` names the system an outbound event goes to; remove it, or make the event `direction: outbound`");
        valid = false;
    }
    let pool = check_pool(checker, subject, file, direction_value, raw.pool.as_ref());
    match pool {
        Some(pool) if valid => Some((
            Routing::Domain {
                direction: direction_value,
                pool,
            },
            aggregate,
        )),
        _ => None,
    }
}

/// A pool must be `events_<direction>` or `events_<direction>_<suffix>` (the vocabulary's
/// rule, shared with `#[derive(Event)]`).
fn check_pool(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    direction: Direction,
    pool: Option<&Sp<String>>,
) -> Option<String> {
    let default = direction.default_pool();
    let Some(pool) = pool else {
        return Some(default.to_owned());
    };
    let message = match check_event_pool(direction, &pool.value) {
        Ok(()) => return Some(pool.value.clone()),
        Err(EventPoolError::JobPool) => {
            format!("pool `{}` is a job pool, not an event pool", pool.value)
        }
        // A pool with the right prefix that is not snake_case reads as a wrong lane too: the
        // fix is the same, a name from the label.
        Err(EventPoolError::OtherDirection | EventPoolError::NotSnakeCase) => format!(
            "pool `{}` is not a pool for {} events",
            pool.value,
            direction.as_str()
        ),
    };
    checker
        .report(subject, file, pool.span, "invalid-pool", message)
        .set_label(format!("expected `{default}` or `{default}_<name>`"))
        .set_help(format!(
            "{} events are delivered in `{default}` (the default: remove `pool`) or a pool named `{default}_<name>`; job pools such as `{DEFAULT_JOB_POOL}` are for jobs",
            direction.as_str()
        ));
    None
}

/// The vocabulary word that `value` spells (a tier, a direction, a backoff), or `None` once it
/// is reported as unknown, with the same did-you-mean as `#[derive(Event)]` gives.
fn keyword<K: Keyword>(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    value: &Sp<String>,
    code: &'static str,
) -> Option<K> {
    let word = K::parse(&value.value);
    if word.is_none() {
        unknown_value(
            checker,
            subject,
            file,
            value,
            code,
            K::KIND,
            &K::spellings(),
        );
    }
    word
}

fn unknown_value(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    value: &Sp<String>,
    code: &'static str,
    key: &str,
    accepted: &[&str],
) {
    let help = match closest(&value.value, accepted) {
        Some(near) => format!(
            "did you mean `{near}`? `{key}` is one of {}",
            list(accepted)
        ),
        None => format!("`{key}` is one of {}", list(accepted)),
    };
    checker
        .report(
            subject,
            file,
            value.span,
            code,
            format!("unknown {key} `{}`", value.value),
        )
        .set_label(format!("not a known {key}"))
        .set_help(help);
}

fn check_payload_field(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    raw: &RawPayloadField,
) -> Option<PayloadField> {
    let ident = check_field_name(checker, subject, file, &raw.name)?;
    let Some(type_) = &raw.type_ else {
        checker
            .report(
                subject,
                file,
                raw.name.span,
                "missing-key",
                format!("payload field `{}` has no `type`", raw.name.value),
            )
            .set_help(format!("add `type:`, one of {}", list(PAYLOAD_TYPES)));
        return None;
    };
    let scalar_of = |name: &str| Scalar::ALL.into_iter().find(|s| s.as_str() == name);
    let ty = match type_.value.as_str() {
        "json" => PayloadType::Json,
        "array" => {
            let Some(items) = &raw.items else {
                checker
                    .report(
                        subject,
                        file,
                        type_.span,
                        "missing-items",
                        format!(
                            "array field `{}` does not say what it holds",
                            raw.name.value
                        ),
                    )
                    .set_help(format!(
                        "add `items:` with the element type, one of {}",
                        list(&Scalar::ALL.map(Scalar::as_str))
                    ));
                return None;
            };
            match &items.value {
                Ok(name) if scalar_of(name).is_some() => PayloadType::Array(scalar_of(name)?),
                other => {
                    let found = match other {
                        Ok(name) => format!("`{name}`"),
                        Err(kind) => (*kind).to_owned(),
                    };
                    checker
                        .report(
                            subject,
                            file,
                            items.span,
                            "invalid-items",
                            format!(
                                "`items` of `{}` must be a scalar type, found {found}",
                                raw.name.value
                            ),
                        )
                        .set_help(format!(
                            "use one of {}; for nested structures use `type: json`",
                            list(&Scalar::ALL.map(Scalar::as_str))
                        ));
                    return None;
                }
            }
        }
        name => match scalar_of(name) {
            Some(scalar) => PayloadType::Scalar(scalar),
            None => {
                unknown_value(
                    checker,
                    subject,
                    file,
                    type_,
                    "unknown-field-type",
                    "field type",
                    PAYLOAD_TYPES,
                );
                return None;
            }
        },
    };
    if let (Some(items), false) = (&raw.items, matches!(ty, PayloadType::Array(_))) {
        checker
            .report(
                subject,
                file,
                items.span,
                "misplaced-key",
                format!(
                    "`items` on field `{}` of type `{}`",
                    raw.name.value, type_.value
                ),
            )
            .set_help("`items` only goes with `type: array`; remove it or change the type");
        return None;
    }
    Some(PayloadField {
        key: raw.name.value.clone(),
        ident,
        ty,
        nullable: raw.nullable.as_ref().is_some_and(|n| n.value),
        description: raw.description.as_ref().map(|d| d.value.clone()),
    })
}

fn check_field_name(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    name: &Sp<String>,
) -> Option<String> {
    let ident = field_ident(&name.value);
    if ident.is_none() {
        checker
            .report(
                subject,
                file,
                name.span,
                "invalid-name",
                format!("field name `{}` cannot become a Rust field", name.value),
            )
            .set_help("start field names with a letter; use letters, digits and underscores");
    }
    ident
}

fn check_entity(
    checker: &mut Checker<'_>,
    raw: &RawEntity,
    entity_names: &EntityNames,
    events: &KnownEvents<'_>,
) -> Option<Entity> {
    let name = raw
        .name
        .as_ref()
        .filter(|n| entity_names.contains(&n.value))?;
    let subject = Subject::Entity(name.value.clone());
    let file = raw.file;
    let mut valid = true;

    let plural = match &raw.plural {
        Some(plural) => {
            valid &= check_name(checker, &subject, file, plural, "plural");
            plural.value.clone()
        }
        None => to_plural(&name.value),
    };
    let table = match &raw.table {
        Some(table) => {
            valid &= check_name(checker, &subject, file, table, "table name")
                && check_table_name(checker, &subject, file, &table.value, table.span);
            table.value.clone()
        }
        None => {
            let span = raw.plural.as_ref().map_or(name.span, |p| p.span);
            valid &= check_table_name(checker, &subject, file, &plural, span);
            plural.clone()
        }
    };
    let pattern = raw.pattern.as_ref().map(|pattern| {
        let is_identifier = pattern
            .value
            .starts_with(|c: char| c.is_ascii_alphabetic())
            && pattern
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_identifier {
            checker
                .report(
                    &subject,
                    file,
                    pattern.span,
                    "invalid-name",
                    format!("pattern `{}` is not an identifier", pattern.value),
                )
                .set_help("name the family with letters, digits and underscores, e.g. `Base`, `Synced`, `Activity`, `Metadata`, `Knowledge` or your own");
            valid = false;
        }
        pattern.value.clone()
    });

    let mut fields = vec![EntityField {
        key: "id".into(),
        ident: "id".into(),
        ty: EntityType::Uuid,
        required: true,
        nullable: false,
        index: false,
        default: None,
        description: Some("Primary key.".into()),
    }];
    let mut field_spans: BTreeMap<String, Span> = BTreeMap::new();
    let mut add_field =
        |checker: &mut Checker<'_>, field: EntityField, span: Span, origin: &str| -> bool {
            if field.ident == "id" {
                checker
                    .report(
                        &subject,
                        file,
                        span,
                        "field-collision",
                        format!("{origin} `id`, but every entity already has `id: uuid`"),
                    )
                    .set_help("remove it: the primary key is implicit");
                return false;
            }
            if let Some(first) = field_spans.get(&field.ident) {
                checker
                    .report(
                        &subject,
                        file,
                        span,
                        "field-collision",
                        format!("{origin} `{}`, which another field already is", field.ident),
                    )
                    .set_help("rename the field or drop the relationship or behavior that adds it")
                    .add_related(Location { file, span: *first }, "the other one");
                return false;
            }
            field_spans.insert(field.ident.clone(), span);
            fields.push(field);
            true
        };

    for raw_field in &raw.fields {
        match check_entity_field(checker, &subject, &name.value, file, raw_field) {
            Some(field) => valid &= add_field(checker, field, raw_field.name.span, "field"),
            None => valid = false,
        }
    }

    let mut relationships = Vec::new();
    for raw_rel in &raw.relationships {
        let Some((kind, target)) = &raw_rel.kind else {
            valid = false;
            continue;
        };
        if !entity_names.contains(&target.value) && !entity_names.is_broken(&target.value) {
            let known = entity_names.known();
            let help = match closest(&target.value, &known) {
                Some(near) => format!(
                    "did you mean `{near}`? Or declare `entities/{}.yaml`",
                    target.value
                ),
                None if known.is_empty() => {
                    format!("declare `entities/{}.yaml`", target.value)
                }
                None => format!(
                    "declare `entities/{}.yaml`, or name one of: {}",
                    target.value,
                    list(&known)
                ),
            };
            checker
                .report(
                    &subject,
                    file,
                    target.span,
                    "unknown-entity",
                    format!(
                        "relationship `{}` names entity `{}`, which is not declared",
                        raw_rel.name.value, target.value
                    ),
                )
                .set_help(help);
            valid = false;
            continue;
        }
        if let Some(nullable) = &raw_rel.nullable
            && *kind != RelationKind::BelongsTo
        {
            checker
                .report(
                    &subject,
                    file,
                    nullable.span,
                    "misplaced-key",
                    format!("`nullable` on a `{}` relationship", kind.key()),
                )
                .set_help("only `belongs_to` adds a column that can be null; remove `nullable`");
            valid = false;
        }
        let foreign_key = match &raw_rel.foreign_key {
            Some(fk) => {
                if !check_name(checker, &subject, file, fk, "foreign key") {
                    valid = false;
                    continue;
                }
                fk.value.clone()
            }
            // The column that holds the other side's id, as the ancestor names it.
            None if *kind == RelationKind::BelongsTo => format!("{}_id", raw_rel.name.value),
            None => format!("{}_id", name.value),
        };
        if *kind == RelationKind::BelongsTo {
            let Some(ident) = field_ident(&foreign_key) else {
                valid = false;
                continue;
            };
            let nullable = raw_rel.nullable.as_ref().is_some_and(|n| n.value);
            let field = EntityField {
                key: foreign_key.clone(),
                ident,
                ty: EntityType::Uuid,
                required: true,
                nullable,
                index: true,
                default: None,
                description: Some(format!(
                    "Added by relationship `{}` (belongs to `{}`).",
                    raw_rel.name.value, target.value
                )),
            };
            let span = raw_rel
                .foreign_key
                .as_ref()
                .map_or(raw_rel.name.span, |f| f.span);
            valid &= add_field(
                checker,
                field,
                span,
                &format!("relationship `{}` adds the field", raw_rel.name.value),
            );
        }
        relationships.push(Relationship {
            name: raw_rel.name.value.clone(),
            kind: *kind,
            target: target.value.clone(),
            foreign_key,
        });
    }

    let mut behaviors = Vec::new();
    for behavior in &raw.behaviors {
        let Some(found) = Behavior::ALL
            .into_iter()
            .find(|b| b.as_str() == behavior.value)
        else {
            unknown_value(
                checker,
                &subject,
                file,
                behavior,
                "unknown-behavior",
                "behavior",
                BEHAVIORS,
            );
            valid = false;
            continue;
        };
        let added: &[(&str, EntityType, bool)] = match found {
            Behavior::Timestamps => &[
                ("created_at", EntityType::DateTime, false),
                ("updated_at", EntityType::DateTime, false),
            ],
            Behavior::SoftDelete => &[("deleted_at", EntityType::DateTime, true)],
            Behavior::UserTracking => &[
                ("created_by", EntityType::Uuid, true),
                ("updated_by", EntityType::Uuid, true),
            ],
        };
        for (column, ty, nullable) in added {
            let field = EntityField {
                key: (*column).into(),
                ident: (*column).into(),
                ty: ty.clone(),
                required: true,
                nullable: *nullable,
                index: false,
                default: None,
                description: Some(format!("Added by behavior `{}`.", behavior.value)),
            };
            valid &= add_field(
                checker,
                field,
                behavior.span,
                &format!("behavior `{}` adds the field", behavior.value),
            );
        }
        behaviors.push(found);
    }
    behaviors.sort();
    behaviors.dedup();

    let queries = check_queries(checker, &subject, file, &raw.queries, &fields);
    valid &= queries.is_some();

    let emits = check_emits(checker, &subject, file, &name.value, &raw.emits, events);
    valid &= emits.is_some();
    let writes = raw.writes.as_ref().is_none_or(|w| w.value);
    let emit_bindings = match &emits {
        Some(emits) if writes => {
            let bindings = check_emit_bindings(
                checker,
                &subject,
                file,
                &name.value,
                raw,
                emits,
                &fields,
                events,
            );
            valid &= bindings.is_some();
            bindings.unwrap_or_default()
        }
        _ => Vec::new(),
    };

    valid.then(|| Entity {
        struct_name: to_pascal_case(&name.value),
        name: name.value.clone(),
        plural,
        table,
        pattern,
        description: raw.description.as_ref().map(|d| d.value.clone()),
        fields,
        relationships,
        behaviors,
        writes,
        queries: queries.unwrap_or_default(),
        emits: emits.unwrap_or_default(),
        emit_bindings,
        origin: checker.sources.path(file).to_owned(),
    })
}

/// Tables that belong to the runtime, to sqlx or to the database itself.
fn check_table_name(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    table: &str,
    span: Span,
) -> bool {
    const RESERVED: &[(&str, &str)] = &[
        ("herald_", "Herald's own tables"),
        ("_sqlx", "sqlx's migration bookkeeping"),
        ("sqlite_", "SQLite's internal tables"),
        ("pg_", "PostgreSQL's system catalogs"),
    ];
    let Some((prefix, whose)) = RESERVED.iter().find(|(p, _)| table.starts_with(p)) else {
        return true;
    };
    checker
        .report(
            subject,
            file,
            span,
            "reserved-table",
            format!("table `{table}` starts with `{prefix}`, which is reserved for {whose}"),
        )
        .set_help("choose another `table:` (or `plural:`) for this entity");
    false
}

/// `emits:` names change events of this entity. The sorted, deduplicated list, or `None`.
fn check_emits(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    entity: &str,
    emits: &[Sp<String>],
    events: &KnownEvents<'_>,
) -> Option<Vec<String>> {
    let mut valid = true;
    let mut out = Vec::new();
    for emitted in emits {
        match events.valid.get(emitted.value.as_str()) {
            // The event's own file has errors; they are reported there.
            None if events.declared.contains(&emitted.value) => {}
            None => {
                let known: Vec<&str> = events.valid.keys().copied().collect();
                let help = match closest(&emitted.value, &known) {
                    Some(near) => format!(
                        "did you mean `{near}`? Or declare it in `events/{}.yaml` or this entity's `events:` block",
                        emitted.value
                    ),
                    None => format!(
                        "declare it in `events/{}.yaml` or in this entity's `events:` block",
                        emitted.value
                    ),
                };
                checker
                    .report(
                        subject,
                        file,
                        emitted.span,
                        "unknown-event",
                        format!(
                            "`emits` names event `{}`, which is not declared",
                            emitted.value
                        ),
                    )
                    .set_help(help);
                valid = false;
            }
            Some(event)
                if !matches!(
                    event.routing,
                    Routing::Domain {
                        direction: Direction::Change,
                        ..
                    }
                ) =>
            {
                let kind = match &event.routing {
                    Routing::Domain { direction, .. } => direction.as_str(),
                    Routing::Audit => "audit",
                };
                checker
                    .report(subject, file, emitted.span, "emits-non-change", format!("`emits` names `{}`, which is a {kind} event", emitted.value))
                    .set_help("an entity emits only change events of its own aggregate; remove it from `emits`");
                valid = false;
            }
            Some(event) if event.aggregate.as_deref() != Some(entity) => {
                checker
                    .report(
                        subject,
                        file,
                        emitted.span,
                        "emits-foreign-event",
                        format!(
                            "`emits` names `{}`, a change event of aggregate `{}`",
                            emitted.value,
                            event.aggregate.as_deref().unwrap_or_default()
                        ),
                    )
                    .set_help(format!(
                        "list it under entity `{}` instead, or set `aggregate: {entity}` in its YAML",
                        event.aggregate.as_deref().unwrap_or_default(),
                    ));
                valid = false;
            }
            Some(_) => out.push(emitted.value.clone()),
        }
    }
    out.sort();
    out.dedup();
    valid.then_some(out)
}

/// The `emits:` events a repository write publishes (`<entity>_created`, `_updated`,
/// `_deleted`), with each payload field bound to the row by name: `<entity>_id` to `id`,
/// `created_by`/`updated_by` to the actor, a field named like a column to that column, any
/// other to an argument of the write. A bound field must be able to hold every value of its
/// column; otherwise the event would need a placeholder, which an immutable event must never
/// carry.
#[allow(clippy::too_many_arguments)]
fn check_emit_bindings(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    entity: &str,
    raw: &RawEntity,
    emits: &[String],
    fields: &[EntityField],
    events: &KnownEvents<'_>,
) -> Option<Vec<EmitBinding>> {
    let mut valid = true;
    let mut out = Vec::new();
    for write in [Write::Insert, Write::Update, Write::Delete] {
        let event_type = format!("{entity}_{}", write.suffix());
        if !emits.contains(&event_type) {
            continue;
        }
        let Some(event) = events.valid.get(event_type.as_str()) else {
            continue;
        };
        let span = raw
            .emits
            .iter()
            .find(|e| e.value == event_type)
            .map_or(raw.span, |e| e.span);
        let mut bindings = Vec::new();
        for payload in &event.fields {
            let source = if payload.key == format!("{entity}_id") {
                Source::Id
            } else if payload.key == "created_by" || payload.key == "updated_by" {
                Source::Actor
            } else if fields.iter().any(|f| f.key == payload.key) {
                Source::Column(payload.key.clone())
            } else {
                Source::Argument
            };
            let column = match &source {
                Source::Id => fields.iter().find(|f| f.key == "id"),
                Source::Column(key) => fields.iter().find(|f| &f.key == key),
                Source::Actor | Source::Argument => None,
            };
            let problem = match (&source, column) {
                (Source::Actor, _) if payload.ty != PayloadType::Scalar(Scalar::Uuid) => {
                    Some(format!(
                        "is the actor of the write, a `uuid`, but the payload declares it `{}`",
                        payload_type_name(payload)
                    ))
                }
                (_, Some(column)) => binding_mismatch(column, payload),
                _ => None,
            };
            if let (Some(problem), Some(column)) = (&problem, column) {
                checker
                    .report(
                        subject,
                        file,
                        span,
                        "emits-type-mismatch",
                        format!(
                            "`{event_type}.{}` {problem} (column `{entity}.{}` is `{}`{})",
                            payload.key,
                            column.key,
                            column.ty.as_str(),
                            if column.optional() { " and may be null" } else { "" }
                        ),
                    )
                    .set_label(format!("published by `{}`", write.method()))
                    .set_help(match payload_type_for(column) {
                        Some(declaration) => format!(
                            "the repository fills `{}` from the column: declare it in {} as {declaration}, or give the payload field another name to make it an argument of `{}`",
                            payload.key,
                            event.origin,
                            write.method()
                        ),
                        None => format!(
                            "no payload type holds every `{}` value exactly: give the payload field another name in {}, which makes it an argument of `{}` set by the caller, or remove it",
                            column.ty.as_str(),
                            event.origin,
                            write.method()
                        ),
                    });
                valid = false;
            } else if let Some(problem) = problem {
                checker
                    .report(
                        subject,
                        file,
                        span,
                        "emits-type-mismatch",
                        format!("`{event_type}.{}` {problem}", payload.key),
                    )
                    .set_label(format!("published by `{}`", write.method()))
                    .set_help(format!(
                        "declare `{}: {{ type: uuid }}` in {}, or rename it to make it an argument of `{}`",
                        payload.key,
                        event.origin,
                        write.method()
                    ));
                valid = false;
            }
            bindings.push(PayloadSource {
                key: payload.key.clone(),
                source,
            });
        }
        out.push(EmitBinding {
            event: event_type,
            write,
            fields: bindings,
        });
    }
    valid.then_some(out)
}

/// Why `payload` cannot carry every value of `column`, if it cannot.
fn binding_mismatch(column: &EntityField, payload: &PayloadField) -> Option<String> {
    let fits = matches!(
        (&column.ty, payload.ty),
        (EntityType::String { .. } | EntityType::Enum { .. }, PayloadType::Scalar(Scalar::String))
            | (EntityType::Integer, PayloadType::Scalar(Scalar::Integer))
            | (EntityType::Boolean, PayloadType::Scalar(Scalar::Boolean))
            | (EntityType::Uuid, PayloadType::Scalar(Scalar::Uuid))
            | (EntityType::DateTime, PayloadType::Scalar(Scalar::DateTime))
            // Payloads have no exact number; a decimal's text is exact.
            | (EntityType::Decimal, PayloadType::Scalar(Scalar::String))
    );
    if !fits {
        return Some(format!(
            "is `{}` in the payload",
            payload_type_name(payload)
        ));
    }
    (column.optional() && !payload.nullable).then(|| "cannot be null in the payload".to_owned())
}

fn payload_type_name(payload: &PayloadField) -> String {
    match payload.ty {
        PayloadType::Scalar(scalar) => scalar.as_str().to_owned(),
        PayloadType::Json => "json".to_owned(),
        PayloadType::Array(scalar) => format!("array of {}", scalar.as_str()),
    }
}

/// The payload declaration that carries a column's values, if one does.
fn payload_type_for(column: &EntityField) -> Option<String> {
    let ty = match &column.ty {
        EntityType::String { .. } | EntityType::Enum { .. } | EntityType::Decimal => "string",
        EntityType::Integer => "integer",
        EntityType::Boolean => "boolean",
        EntityType::Uuid => "uuid",
        EntityType::DateTime => "datetime",
        // A payload `date` is an instant and a payload `json` an object: neither holds every
        // calendar date or JSON value as it is.
        EntityType::Date | EntityType::Json => return None,
    };
    Some(if column.optional() {
        format!("`{{ type: {ty}, nullable: true }}`")
    } else {
        format!("`{{ type: {ty} }}`")
    })
}

/// The columns a query names must exist, and be of a type the query can use.
struct Columns<'a> {
    checker_subject: &'a Subject,
    file: FileId,
    fields: &'a [EntityField],
}

impl Columns<'_> {
    /// The field named `column`, or `None` once reported.
    fn resolve<'f>(
        &'f self,
        checker: &mut Checker<'_>,
        column: &Sp<String>,
        what: &str,
    ) -> Option<&'f EntityField> {
        if let Some(field) = self.fields.iter().find(|f| f.key == column.value) {
            return Some(field);
        }
        let keys: Vec<&str> = self.fields.iter().map(|f| f.key.as_str()).collect();
        // The ancestor's docs sometimes name columns in camelCase (`accountId`).
        let snake = to_snake_case(&column.value);
        let near = keys
            .iter()
            .copied()
            .find(|k| *k == snake)
            .or_else(|| closest(&column.value, &keys));
        let help = match near {
            Some(near) => format!("did you mean `{near}`? The columns are: {}", list(&keys)),
            None => format!("name one of the columns: {}", list(&keys)),
        };
        let Subject::Entity(entity) = self.checker_subject else {
            return None;
        };
        checker
            .report(
                self.checker_subject,
                self.file,
                column.span,
                "unknown-column",
                format!(
                    "{what} names column `{}`, which entity `{entity}` does not have",
                    column.value
                ),
            )
            .set_label("no such column")
            .set_help(help);
        None
    }
}

const QUERY_SHAPES: &str = "a query is either a finder, `- by: [column, …]` (named `find_by_<columns>`, with `unique: true` for one row or none), or a named list, `- name: <name>` with `filters`, `search`, `paginate`";

fn check_queries(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    raw: &[RawQuery],
    fields: &[EntityField],
) -> Option<Vec<Query>> {
    let columns = Columns {
        checker_subject: subject,
        file,
        fields,
    };
    let mut valid = true;
    let mut out: Vec<Query> = Vec::new();
    let mut names: BTreeMap<String, Span> = BTreeMap::new();
    for query in raw {
        let misplaced = |checker: &mut Checker<'_>, key: &str, span: Span, help: &str| {
            let on = match (&query.by, &query.unique) {
                (Some(_), Some(unique)) if unique.value => "a unique finder (`by:`)",
                (Some(_), _) => "a finder (`by:`)",
                (None, _) => "a named list (`name:`)",
            };
            checker
                .report(
                    subject,
                    file,
                    span,
                    "misplaced-key",
                    format!("`{key}` on {on}"),
                )
                .set_help(help.to_owned());
        };
        let (name, name_span, kind) = match (&query.by, &query.name) {
            (Some(_), Some(name)) => {
                checker
                    .report(
                        subject,
                        file,
                        name.span,
                        "query-kind",
                        format!("query `{}` has both `by` and `name`", name.value),
                    )
                    .set_help(QUERY_SHAPES);
                valid = false;
                continue;
            }
            (None, None) => {
                checker
                    .report(
                        subject,
                        file,
                        query.span,
                        "query-kind",
                        "a query has neither `by` nor `name`",
                    )
                    .set_help(QUERY_SHAPES);
                valid = false;
                continue;
            }
            (Some(by), None) => {
                let mut ok = true;
                for (key, span) in [
                    ("filters", query.filters.as_ref().map(|f| f.span)),
                    ("search", query.search.as_ref().map(|f| f.span)),
                    ("paginate", query.paginate.as_ref().map(|f| f.span)),
                ] {
                    if let Some(span) = span {
                        misplaced(
                            checker,
                            key,
                            span,
                            &format!(
                                "`{key}` belongs to a named list: give it a `name:` instead of `by:`, or remove `{key}`"
                            ),
                        );
                        ok = false;
                    }
                }
                if by.value.is_empty() {
                    checker
                        .report(
                            subject,
                            file,
                            by.span,
                            "query-kind",
                            "a finder with no columns",
                        )
                        .set_help("list the columns it looks rows up by, e.g. `by: [email]`");
                    ok = false;
                }
                let mut by_columns = Vec::new();
                for column in &by.value {
                    match columns.resolve(checker, column, "`by`") {
                        Some(field) if matches!(field.ty, EntityType::Json) => {
                            checker
                                .report(subject, file, column.span, "invalid-query-column", format!("finder by `{}`, a `json` column", column.value))
                                .set_help("a finder compares columns for equality; JSON documents are not compared: look up by another column");
                            ok = false;
                        }
                        Some(field) if by_columns.contains(&field.key) => {
                            checker
                                .report(
                                    subject,
                                    file,
                                    column.span,
                                    "invalid-query-column",
                                    format!("`by` lists `{}` twice", column.value),
                                )
                                .set_help("list each column once");
                            ok = false;
                        }
                        Some(field) => by_columns.push(field.key.clone()),
                        None => ok = false,
                    }
                }
                let unique = query.unique.as_ref().is_some_and(|u| u.value);
                if unique && let Some(order) = &query.order {
                    misplaced(
                        checker,
                        "order",
                        order.span,
                        "a unique finder returns one row or none, so there is nothing to sort: remove `order`",
                    );
                    ok = false;
                }
                if !ok {
                    valid = false;
                    continue;
                }
                (
                    format!("find_by_{}", by_columns.join("_and_")),
                    by.span,
                    QueryKind::By {
                        columns: by_columns,
                        unique,
                    },
                )
            }
            (None, Some(name)) => {
                let mut ok = check_name(checker, subject, file, name, "query name");
                const RESERVED: &[&str] = &["insert", "get", "update", "delete", "list"];
                if ok && RESERVED.contains(&name.value.as_str()) {
                    checker
                        .report(
                            subject,
                            file,
                            name.span,
                            "duplicate-query",
                            format!(
                                "query `{}` has the name of a method every repository has",
                                name.value
                            ),
                        )
                        .set_help(format!("choose another name: {} are taken", list(RESERVED)));
                    ok = false;
                }
                if let Some(unique) = &query.unique {
                    misplaced(
                        checker,
                        "unique",
                        unique.span,
                        "`unique` belongs to a finder: write `by: [column]` instead of `name:`, or remove `unique`",
                    );
                    ok = false;
                }
                let mut filters = Vec::new();
                for column in query.filters.iter().flat_map(|f| &f.value) {
                    match columns.resolve(checker, column, "`filters`") {
                        Some(field) if matches!(field.ty, EntityType::Json) => {
                            checker
                                .report(subject, file, column.span, "invalid-query-column", format!("filter on `{}`, a `json` column", column.value))
                                .set_help("filters compare columns for equality; JSON documents are not compared: filter on another column");
                            ok = false;
                        }
                        Some(field) if !filters.contains(&field.key) => {
                            filters.push(field.key.clone())
                        }
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                let search = match &query.search {
                    None => None,
                    Some(column) => match columns.resolve(checker, column, "`search`") {
                        Some(field) if matches!(field.ty, EntityType::String { .. }) => {
                            Some(field.key.clone())
                        }
                        Some(field) => {
                            checker
                                .report(subject, file, column.span, "invalid-query-column", format!("free-text search on `{}`, a column of type `{}`", column.value, field.ty.as_str()))
                                .set_help("`search` matches text case-insensitively: name a `string` column, and filter on the others with `filters`");
                            ok = false;
                            None
                        }
                        None => {
                            ok = false;
                            None
                        }
                    },
                };
                if !ok {
                    valid = false;
                    continue;
                }
                (
                    name.value.clone(),
                    name.span,
                    QueryKind::List {
                        filters,
                        search,
                        paginate: query.paginate.as_ref().is_some_and(|p| p.value),
                    },
                )
            }
        };
        let order = match &query.order {
            None => Vec::new(),
            Some(order) => match check_order(checker, subject, file, order, &columns) {
                Some(order) => order,
                None => {
                    valid = false;
                    continue;
                }
            },
        };
        if let Some(first) = names.get(&name) {
            let help = if query.by.is_some() {
                "a finder is named after its columns, so two finders by the same columns are one: remove one of them"
            } else {
                "give one of them another `name`"
            };
            checker
                .report(
                    subject,
                    file,
                    name_span,
                    "duplicate-query",
                    format!("two queries are both named `{name}`"),
                )
                .set_help(help)
                .add_related(Location { file, span: *first }, "the other one");
            valid = false;
            continue;
        }
        names.insert(name.clone(), name_span);
        out.push(Query { name, kind, order });
    }
    valid.then_some(out)
}

/// `order: created_at desc` or `order: last_name, first_name asc`.
fn check_order(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    order: &Sp<String>,
    columns: &Columns<'_>,
) -> Option<Vec<OrderBy>> {
    let mut out = Vec::new();
    let mut valid = true;
    for part in order.value.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (column, descending) = match words.as_slice() {
            [column] => (*column, false),
            [column, dir] if dir.eq_ignore_ascii_case("asc") => (*column, false),
            [column, dir] if dir.eq_ignore_ascii_case("desc") => (*column, true),
            _ => {
                checker
                    .report(subject, file, order.span, "invalid-order", format!("cannot read `{}` as an order", part.trim()))
                    .set_help("write `order: <column>` or `order: <column> desc` (`asc` is the default); separate several with commas");
                valid = false;
                continue;
            }
        };
        let column = Sp {
            value: column.to_owned(),
            span: order.span,
        };
        match columns.resolve(checker, &column, "`order`") {
            Some(field) if matches!(field.ty, EntityType::Json | EntityType::Decimal) => {
                let why = if matches!(field.ty, EntityType::Json) {
                    "JSON documents have no order"
                } else {
                    "SQLite keeps decimals as exact text, which does not sort as numbers"
                };
                checker
                    .report(
                        subject,
                        file,
                        order.span,
                        "invalid-query-column",
                        format!(
                            "`order` by `{}`, a column of type `{}`",
                            column.value,
                            field.ty.as_str()
                        ),
                    )
                    .set_help(format!("{why}: order by another column"));
                valid = false;
            }
            Some(field) => out.push(OrderBy {
                column: field.key.clone(),
                descending,
            }),
            None => valid = false,
        }
    }
    valid.then_some(out)
}

/// A `has_many`/`has_one` is the inverse of a `belongs_to` on its target, with the same
/// foreign key. Checked only between entities that are valid on their own.
fn check_back_references(checker: &mut Checker<'_>, raws: &[RawEntity], entities: &[Entity]) {
    for entity in entities {
        let Some(raw) = raws
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.value == entity.name))
        else {
            continue;
        };
        let subject = Subject::Entity(entity.name.clone());
        for relationship in &entity.relationships {
            if relationship.kind == RelationKind::BelongsTo {
                continue;
            }
            let Some(target) = entities.iter().find(|e| e.name == relationship.target) else {
                continue;
            };
            let back: Vec<&Relationship> = target
                .relationships
                .iter()
                .filter(|r| r.kind == RelationKind::BelongsTo && r.target == entity.name)
                .collect();
            if back
                .iter()
                .any(|r| r.foreign_key == relationship.foreign_key)
            {
                continue;
            }
            let Some(raw_rel) = raw
                .relationships
                .iter()
                .find(|r| r.name.value == relationship.name)
            else {
                continue;
            };
            let span = raw_rel
                .foreign_key
                .as_ref()
                .map_or(raw_rel.name.span, |f| f.span);
            let help = match back.first() {
                Some(other) => format!(
                    "`{}` points back through `{}`: write `foreign_key: {}` here",
                    target.name, other.foreign_key, other.foreign_key
                ),
                None => format!(
                    "add `{}: {{ type: belongs_to, target: {} }}` to the relationships of `{}` ({}; its foreign key is `{}_id` unless it says `foreign_key:`), or set `foreign_key:` here to the column of `{}` that points to `{}`",
                    entity.name,
                    entity.name,
                    target.name,
                    target.origin,
                    entity.name,
                    target.name,
                    entity.name
                ),
            };
            checker
                .report(
                    &subject,
                    raw.file,
                    span,
                    "missing-back-reference",
                    format!(
                        "relationship `{}` ({} `{}`) needs `{}.{}` to point back at `{}`, but `{}` has no `belongs_to` relationship with that foreign key",
                        relationship.name,
                        relationship.kind.key(),
                        target.name,
                        target.name,
                        relationship.foreign_key,
                        entity.name,
                        target.name
                    ),
                )
                .set_help(help);
        }
    }
}

/// Two entities may not share a table.
fn check_tables(checker: &mut Checker<'_>, raws: &[RawEntity], entities: &[Entity]) {
    let mut seen: BTreeMap<&str, &Entity> = BTreeMap::new();
    for entity in entities {
        let Some(first) = seen.get(entity.table.as_str()) else {
            seen.insert(&entity.table, entity);
            continue;
        };
        let locate = |name: &str| {
            raws.iter()
                .find(|r| r.name.as_ref().is_some_and(|n| n.value == name))
                .map(|r| {
                    let span = r
                        .table
                        .as_ref()
                        .or(r.plural.as_ref())
                        .or(r.name.as_ref())
                        .map_or(r.span, |s| s.span);
                    Location { file: r.file, span }
                })
        };
        let (Some(here), Some(there)) = (locate(&entity.name), locate(&first.name)) else {
            continue;
        };
        checker
            .report(
                &Subject::Entity(entity.name.clone()),
                here.file,
                here.span,
                "duplicate-table",
                format!(
                    "entities `{}` and `{}` both use table `{}`",
                    first.name, entity.name, entity.table
                ),
            )
            .set_help("give one of them another `table:`")
            .add_related(there, "the other entity");
    }
}

fn check_entity_field(
    checker: &mut Checker<'_>,
    subject: &Subject,
    entity: &str,
    file: FileId,
    raw: &RawEntityField,
) -> Option<EntityField> {
    let ident = check_field_name(checker, subject, file, &raw.name)?;
    // An entity's field keys are its SQL columns too, where only snake_case reads the same
    // in both databases without quoting.
    if !check_name(checker, subject, file, &raw.name, "field name") {
        return None;
    }
    let Some(type_) = &raw.type_ else {
        checker
            .report(
                subject,
                file,
                raw.name.span,
                "missing-key",
                format!("field `{}` has no `type`", raw.name.value),
            )
            .set_help(format!("add `type:`, one of {}", list(ENTITY_TYPES)));
        return None;
    };
    let mut valid = true;
    let ty = match type_.value.as_str() {
        "string" => EntityType::String { max_length: None },
        "integer" => EntityType::Integer,
        "decimal" => EntityType::Decimal,
        "boolean" => EntityType::Boolean,
        "uuid" => EntityType::Uuid,
        "date" => EntityType::Date,
        "datetime" => EntityType::DateTime,
        "json" => EntityType::Json,
        "enum" => match &raw.choices {
            None => {
                checker
                    .report(
                        subject,
                        file,
                        type_.span,
                        "missing-choices",
                        format!("enum field `{}` has no `choices`", raw.name.value),
                    )
                    .set_help("add `choices: [first, second]` listing the values it can take");
                return None;
            }
            Some(choices) => EntityType::Enum {
                type_name: format!("{}{}", to_pascal_case(entity), to_pascal_case(&ident)),
                choices: check_choices(checker, subject, file, &raw.name.value, choices)?,
            },
        },
        "number" | "float" => {
            checker
                .report(subject, file, type_.span, "unknown-field-type", format!("unknown field type `{}`", type_.value))
                .set_label("entities store exact values")
                .set_help("use `decimal` for exact numbers (money, quantities) or `integer` for whole numbers");
            return None;
        }
        _ => {
            unknown_value(
                checker,
                subject,
                file,
                type_,
                "unknown-field-type",
                "field type",
                ENTITY_TYPES,
            );
            return None;
        }
    };
    if let (Some(choices), false) = (&raw.choices, matches!(ty, EntityType::Enum { .. })) {
        checker
            .report(
                subject,
                file,
                choices.span,
                "misplaced-key",
                format!(
                    "`choices` on field `{}` of type `{}`",
                    raw.name.value, type_.value
                ),
            )
            .set_help("`choices` only goes with `type: enum`");
        valid = false;
    }
    let ty = match (ty, &raw.max_length) {
        (ty, None) => ty,
        (EntityType::String { .. }, Some(max)) => match u32::try_from(max.value) {
            Ok(n) if n >= 1 => EntityType::String {
                max_length: Some(n),
            },
            _ => {
                checker
                    .report(
                        subject,
                        file,
                        max.span,
                        "invalid-max-length",
                        format!("max_length {} is not allowed", max.value),
                    )
                    .set_help("`max_length` is a number of characters, at least 1");
                return None;
            }
        },
        (_, Some(max)) => {
            checker
                .report(
                    subject,
                    file,
                    max.span,
                    "misplaced-key",
                    format!(
                        "`max_length` on field `{}` of type `{}`",
                        raw.name.value, type_.value
                    ),
                )
                .set_help("`max_length` only goes with `type: string`");
            return None;
        }
    };
    let default = match &raw.default {
        None => None,
        Some(default) => {
            let checked = check_default(checker, subject, file, &raw.name.value, &ty, default);
            valid &= checked.is_some();
            checked
        }
    };
    valid.then(|| EntityField {
        key: raw.name.value.clone(),
        ident,
        ty,
        required: raw.required.as_ref().is_none_or(|r| r.value),
        nullable: raw.nullable.as_ref().is_some_and(|n| n.value),
        index: raw.index.as_ref().is_some_and(|i| i.value),
        default,
        description: raw.description.as_ref().map(|d| d.value.clone()),
    })
}

/// A `default:` must be a value of the field's type (and satisfy its checks), so that the
/// column's DEFAULT never fails the column's own CHECK.
fn check_default(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    field: &str,
    ty: &EntityType,
    default: &Sp<RawDefault>,
) -> Option<DefaultValue> {
    let found = match &default.value {
        RawDefault::Str(s) => format!("the string `{s}`"),
        RawDefault::Int(i) => format!("the integer `{i}`"),
        RawDefault::Float(f) => format!("the number `{f}`"),
        RawDefault::Bool(b) => format!("`{b}`"),
    };
    let (value, expected) = match (ty, &default.value) {
        (EntityType::String { max_length }, RawDefault::Str(s)) => match max_length {
            Some(max) if s.chars().count() > *max as usize => (
                None,
                format!("a string of at most {max} characters (`max_length`)"),
            ),
            _ => (Some(DefaultValue::String(s.clone())), String::new()),
        },
        (EntityType::String { .. }, _) => (None, "a string".to_owned()),
        (EntityType::Enum { choices, .. }, RawDefault::Str(s))
            if choices.iter().any(|c| &c.value == s) =>
        {
            (Some(DefaultValue::String(s.clone())), String::new())
        }
        (EntityType::Enum { choices, .. }, _) => {
            let values: Vec<&str> = choices.iter().map(|c| c.value.as_str()).collect();
            (None, format!("one of the choices, {}", list(&values)))
        }
        (EntityType::Integer, RawDefault::Int(i)) => {
            (Some(DefaultValue::Integer(*i)), String::new())
        }
        (EntityType::Integer, _) => (None, "a whole number".to_owned()),
        (EntityType::Boolean, RawDefault::Bool(b)) => {
            (Some(DefaultValue::Boolean(*b)), String::new())
        }
        (EntityType::Boolean, _) => (None, "`true` or `false`".to_owned()),
        (EntityType::Decimal, RawDefault::Int(i)) => {
            (Some(DefaultValue::Decimal(i.to_string())), String::new())
        }
        (EntityType::Decimal, RawDefault::Str(s)) if is_decimal_text(s) => {
            (Some(DefaultValue::Decimal(s.clone())), String::new())
        }
        // A YAML float is binary: `0.1` is not exactly 0.1, and `1.50` has lost its zero.
        (EntityType::Decimal, _) => (
            None,
            "a decimal written as a string, e.g. `\"0.10\"`, so that it stays exact".to_owned(),
        ),
        (EntityType::Uuid | EntityType::Date | EntityType::DateTime | EntityType::Json, _) => {
            checker
                .report(subject, file, default.span, "invalid-default", format!("field `{field}` of type `{}` cannot have a `default`", ty.as_str()))
                .set_help("defaults are for `string`, `enum`, `integer`, `decimal` and `boolean` fields; remove `default`, or make the field `nullable: true`");
            return None;
        }
    };
    if value.is_none() {
        checker
            .report(
                subject,
                file,
                default.span,
                "invalid-default",
                format!("`default` of field `{field}` is {found}, not a value of the field"),
            )
            .set_label(format!("expected {expected}"))
            .set_help(format!("give `default` {expected}"));
    }
    value
}

/// `-12.50`: an optional minus, digits, and optionally a point and more digits. This is how
/// exact decimals are written in the YAML and stored as text on SQLite.
pub(crate) fn is_decimal_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

fn check_choices(
    checker: &mut Checker<'_>,
    subject: &Subject,
    file: FileId,
    field: &str,
    choices: &Sp<Vec<Sp<String>>>,
) -> Option<Vec<Choice>> {
    if choices.value.is_empty() {
        checker
            .report(
                subject,
                file,
                choices.span,
                "missing-choices",
                format!("enum field `{field}` has an empty `choices` list"),
            )
            .set_help("list at least one value");
        return None;
    }
    let mut out: Vec<Choice> = Vec::new();
    let mut spans: BTreeMap<String, Span> = BTreeMap::new();
    let mut valid = true;
    for choice in &choices.value {
        let Some(variant) = variant_ident(&choice.value) else {
            checker
                .report(
                    subject,
                    file,
                    choice.span,
                    "invalid-name",
                    format!(
                        "choice `{}` cannot become a Rust enum variant",
                        choice.value
                    ),
                )
                .set_help("use letters and digits, e.g. `in_progress`");
            valid = false;
            continue;
        };
        if let Some(first) = spans.get(&variant) {
            checker
                .report(
                    subject,
                    file,
                    choice.span,
                    "duplicate-choice",
                    format!(
                        "choice `{}` repeats another choice (both become variant `{variant}`)",
                        choice.value
                    ),
                )
                .set_help("remove or rename one of them")
                .add_related(Location { file, span: *first }, "the other one");
            valid = false;
            continue;
        }
        spans.insert(variant.clone(), choice.span);
        out.push(Choice {
            value: choice.value.clone(),
            variant,
        });
    }
    valid.then_some(out)
}

//! The rules of the YAML format: raw declarations in, a [`Model`] out, every violation
//! reported with the fix. One `check_*` function per concern, as serde_derive's `check.rs`.

use std::collections::{BTreeMap, BTreeSet};

use herald_vocabulary::naming::{
    closest, is_snake_case, suggest_snake_case, to_pascal_case, to_snake_case,
};
use herald_vocabulary::pool::{EventPoolError, check_event_pool};
use herald_vocabulary::{DEFAULT_JOB_POOL, Keyword, MaxAttempts, Tier};

use crate::diagnostic::{Diagnostic, Diagnostics, Location, Span, Subject};
use crate::model::{
    BEHAVIORS, Backoff, Choice, Direction, ENTITY_TYPES, Entity, EntityField, EntityType, Event,
    Model, PAYLOAD_TYPES, PayloadField, PayloadType, Relationship, Retry, Routing, Scalar,
};
use crate::names::{field_ident, variant_ident};
use crate::parse::{RawEntity, RawEntityField, RawEvent, RawPayloadField, RelationKind, Sp, list};
use crate::source::{FileId, SourceMap};

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

/// Checks every declaration against every rule and builds the model when nothing is wrong.
pub fn check(
    sources: &SourceMap,
    events: Vec<RawEvent>,
    entities: Vec<RawEntity>,
    diagnostics: &mut Diagnostics,
) -> Model {
    let mut checker = Checker {
        sources,
        diagnostics,
    };
    let entity_names = check_entity_names(&mut checker, &entities);

    let all_events: Vec<&RawEvent> = events
        .iter()
        .chain(entities.iter().flat_map(|e| e.events.iter()))
        .collect();
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
            let help = if raw.declared_in_entity.is_some() || first_is_inline(&entities, first) {
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

    let by_type: BTreeMap<&str, &Event> =
        model_events.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut model_entities: Vec<Entity> = entities
        .iter()
        .filter_map(|raw| check_entity(&mut checker, raw, &entity_names, &by_type))
        .collect();
    model_entities.sort_by(|a, b| a.name.cmp(&b.name));

    Model {
        events: model_events,
        entities: model_entities,
    }
}

fn first_is_inline(entities: &[RawEntity], location: Location) -> bool {
    entities.iter().any(|e| e.file == location.file)
}

/// Entity names must be snake_case, equal to the file stem and unique. Returns the valid ones.
fn check_entity_names(checker: &mut Checker<'_>, entities: &[RawEntity]) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    for raw in entities {
        let stem = checker
            .sources
            .stem(raw.file)
            .unwrap_or_default()
            .to_owned();
        let Some(name) = &raw.name else {
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
                    "add `entity: {}` naming the entity",
                    to_snake_case(&stem)
                ));
            continue;
        };
        let subject = Subject::Entity(name.value.clone());
        if !check_name(checker, &subject, raw.file, name, "entity name") {
            continue;
        }
        if name.value != stem {
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
                    "rename the file to `{}.yaml`, or write `entity: {stem}`",
                    name.value
                ));
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
    seen.into_keys().collect()
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

fn check_event(
    checker: &mut Checker<'_>,
    raw: &RawEvent,
    entities: &BTreeSet<String>,
) -> Option<Event> {
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

    let fields = match &raw.payload {
        None => {
            checker
                .report(&subject, file, raw.type_.as_ref().map_or(raw.span, |t| t.span), "missing-key", "the event has no `payload`")
                .set_help("add `payload:` with one entry per field, e.g. `contact_id: { type: uuid }` (use `payload: {}` for none)");
            valid = false;
            Vec::new()
        }
        Some(payload) => {
            let mut fields = Vec::new();
            let mut idents: BTreeMap<String, Span> = BTreeMap::new();
            for raw_field in &payload.value {
                let Some(field) = check_payload_field(checker, &subject, file, raw_field) else {
                    valid = false;
                    continue;
                };
                if let Some(first) = idents.get(&field.ident) {
                    let first = Location { file, span: *first };
                    checker
                        .report(
                            &subject,
                            file,
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
            fields
        }
    };

    valid.then(|| Event {
        struct_name: to_pascal_case(&name),
        name,
        version,
        routing,
        aggregate,
        source: raw.source.as_ref().map(|s| s.value.clone()),
        destination: raw.destination.as_ref().map(|d| d.value.clone()),
        retry,
        description: raw.description.as_ref().map(|d| d.value.clone()),
        fields,
        origin: checker.sources.path(file).to_owned(),
    })
}

/// Tier, direction, pool, aggregate, source and destination of an event file.
fn check_routing(
    checker: &mut Checker<'_>,
    subject: &Subject,
    raw: &RawEvent,
    entities: &BTreeSet<String>,
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
            Some(aggregate) if !entities.contains(&aggregate.value) => {
                let known: Vec<&str> = entities.iter().map(String::as_str).collect();
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
    entity_names: &BTreeSet<String>,
    events: &BTreeMap<&str, &Event>,
) -> Option<Entity> {
    let name = raw
        .name
        .as_ref()
        .filter(|n| entity_names.contains(&n.value))?;
    let subject = Subject::Entity(name.value.clone());
    let file = raw.file;
    let mut valid = true;
    let mut fields = vec![EntityField {
        key: "id".into(),
        ident: "id".into(),
        ty: EntityType::Uuid,
        required: true,
        nullable: false,
        index: false,
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
        if !entity_names.contains(&target.value) {
            let known: Vec<&str> = entity_names.iter().map(String::as_str).collect();
            let help = match closest(&target.value, &known) {
                Some(near) => format!(
                    "did you mean `{near}`? Or declare `entities/{}.yaml`",
                    target.value
                ),
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
        if *kind == RelationKind::BelongsTo {
            let Some(ident) = check_field_name(checker, &subject, file, &raw_rel.name) else {
                valid = false;
                continue;
            };
            let nullable = raw_rel.nullable.as_ref().is_some_and(|n| n.value);
            let field = EntityField {
                key: format!("{}_id", raw_rel.name.value),
                ident: format!("{ident}_id"),
                ty: EntityType::Uuid,
                required: true,
                nullable,
                index: true,
                description: Some(format!(
                    "Added by relationship `{}` (belongs to `{}`).",
                    raw_rel.name.value, target.value
                )),
            };
            valid &= add_field(
                checker,
                field,
                raw_rel.name.span,
                &format!("relationship `{}` adds the field", raw_rel.name.value),
            );
        }
        relationships.push(Relationship {
            name: raw_rel.name.value.clone(),
            kind: *kind,
            target: target.value.clone(),
        });
    }

    for behavior in &raw.behaviors {
        let added: &[(&str, EntityType, bool)] = match behavior.value.as_str() {
            "timestamps" => &[
                ("created_at", EntityType::DateTime, false),
                ("updated_at", EntityType::DateTime, false),
            ],
            "soft_delete" => &[("deleted_at", EntityType::DateTime, true)],
            "user_tracking" => &[
                ("created_by", EntityType::Uuid, true),
                ("updated_by", EntityType::Uuid, true),
            ],
            _ => {
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
            }
        };
        for (column, ty, nullable) in added {
            let field = EntityField {
                key: (*column).into(),
                ident: (*column).into(),
                ty: ty.clone(),
                required: true,
                nullable: *nullable,
                index: false,
                description: Some(format!("Added by behavior `{}`.", behavior.value)),
            };
            valid &= add_field(
                checker,
                field,
                behavior.span,
                &format!("behavior `{}` adds the field", behavior.value),
            );
        }
    }

    let mut emits = Vec::new();
    for emitted in &raw.emits {
        match events.get(emitted.value.as_str()) {
            None => {
                let known: Vec<&str> = events.keys().copied().collect();
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
                        &subject,
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
                    .report(&subject, file, emitted.span, "emits-non-change", format!("`emits` names `{}`, which is a {kind} event", emitted.value))
                    .set_help("an entity emits only change events of its own aggregate; remove it from `emits`");
                valid = false;
            }
            Some(event) if event.aggregate.as_deref() != Some(name.value.as_str()) => {
                checker
                    .report(
                        &subject,
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
                        "list it under entity `{}` instead, or set `aggregate: {}` in its YAML",
                        event.aggregate.as_deref().unwrap_or_default(),
                        name.value
                    ));
                valid = false;
            }
            Some(_) => emits.push(emitted.value.clone()),
        }
    }
    emits.sort();
    emits.dedup();

    valid.then(|| Entity {
        struct_name: to_pascal_case(&name.value),
        name: name.value.clone(),
        description: raw.description.as_ref().map(|d| d.value.clone()),
        fields,
        relationships,
        emits,
        origin: checker.sources.path(file).to_owned(),
    })
}

fn check_entity_field(
    checker: &mut Checker<'_>,
    subject: &Subject,
    entity: &str,
    file: FileId,
    raw: &RawEntityField,
) -> Option<EntityField> {
    let ident = check_field_name(checker, subject, file, &raw.name)?;
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
    valid.then(|| EntityField {
        key: raw.name.value.clone(),
        ident,
        ty,
        required: raw.required.as_ref().is_none_or(|r| r.value),
        nullable: raw.nullable.as_ref().is_some_and(|n| n.value),
        index: raw.index.as_ref().is_some_and(|i| i.value),
        description: raw.description.as_ref().map(|d| d.value.clone()),
    })
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

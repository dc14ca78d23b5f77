//! From YAML nodes to raw declarations: shapes and keys are checked here, meanings in `check`.
//!
//! Every reader records what is wrong and carries on with what it could read, so one run
//! reports every problem of every file.

use herald_vocabulary::naming::{closest, list_or};

use crate::diagnostic::{Diagnostic, Diagnostics, Location, Span, Subject};
use crate::source::FileId;
use crate::yaml::{Node, Value};

/// A value read from YAML, with the span of the node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

/// The keys of an event file, in the order the reference documents them.
pub const EVENT_KEYS: &[&str] = &[
    "type",
    "direction",
    "tier",
    "aggregate",
    "source",
    "destination",
    "pool",
    "version",
    "description",
    "retry",
    "payload",
];
/// The keys of an event declared in an entity's `events:` block.
pub const INLINE_EVENT_KEYS: &[&str] = &["description", "version", "pool", "retry", "payload"];
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff"];
pub const PAYLOAD_FIELD_KEYS: &[&str] = &["type", "items", "nullable", "description"];
pub const ENTITY_KEYS: &[&str] = &[
    "entity",
    "description",
    "fields",
    "behaviors",
    "relationships",
    "events",
    "emits",
];
pub const ENTITY_FIELD_KEYS: &[&str] = &[
    "type",
    "required",
    "nullable",
    "max_length",
    "index",
    "choices",
    "description",
];
pub const RELATIONSHIP_KEYS: &[&str] = &["belongs_to", "has_many", "has_one", "nullable"];

#[derive(Debug, Clone)]
pub struct RawEvent {
    pub file: FileId,
    /// The whole declaration, for problems that concern it as a whole.
    pub span: Span,
    /// Set for events declared in an entity's `events:` block (whose key is the type).
    pub declared_in_entity: Option<String>,
    pub type_: Option<Sp<String>>,
    pub direction: Option<Sp<String>>,
    pub tier: Option<Sp<String>>,
    pub aggregate: Option<Sp<String>>,
    pub source: Option<Sp<String>>,
    pub destination: Option<Sp<String>>,
    pub pool: Option<Sp<String>>,
    pub version: Option<Sp<i64>>,
    pub description: Option<Sp<String>>,
    pub retry: Option<RawRetry>,
    pub payload: Option<Sp<Vec<RawPayloadField>>>,
}

#[derive(Debug, Clone)]
pub struct RawRetry {
    pub attempts: Option<Sp<i64>>,
    pub backoff: Option<Sp<String>>,
}

#[derive(Debug, Clone)]
pub struct RawPayloadField {
    pub name: Sp<String>,
    pub type_: Option<Sp<String>>,
    /// `items:` given as something other than a type name.
    pub items: Option<Sp<Result<String, &'static str>>>,
    pub nullable: Option<Sp<bool>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone)]
pub struct RawEntity {
    pub file: FileId,
    pub span: Span,
    pub name: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub fields: Vec<RawEntityField>,
    pub behaviors: Vec<Sp<String>>,
    pub relationships: Vec<RawRelationship>,
    pub events: Vec<RawEvent>,
    pub emits: Vec<Sp<String>>,
}

#[derive(Debug, Clone)]
pub struct RawEntityField {
    pub name: Sp<String>,
    pub type_: Option<Sp<String>>,
    pub required: Option<Sp<bool>>,
    pub nullable: Option<Sp<bool>>,
    pub max_length: Option<Sp<i64>>,
    pub index: Option<Sp<bool>>,
    pub choices: Option<Sp<Vec<Sp<String>>>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    BelongsTo,
    HasMany,
    HasOne,
}

impl RelationKind {
    pub fn key(self) -> &'static str {
        match self {
            RelationKind::BelongsTo => "belongs_to",
            RelationKind::HasMany => "has_many",
            RelationKind::HasOne => "has_one",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RawRelationship {
    pub name: Sp<String>,
    /// `None` when no or several of `belongs_to`/`has_many`/`has_one` were given (reported).
    pub kind: Option<(RelationKind, Sp<String>)>,
    pub nullable: Option<Sp<bool>>,
}

/// Where diagnostics of one file go, and what they concern.
pub struct Ctx<'a> {
    pub file: FileId,
    pub subject: Subject,
    pub diagnostics: &'a mut Diagnostics,
}

impl Ctx<'_> {
    pub fn at(&self, span: Span) -> Location {
        Location {
            file: self.file,
            span,
        }
    }

    pub fn report(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let diagnostic = Diagnostic::new(code, self.subject.clone(), self.at(span), message);
        self.diagnostics.push(diagnostic)
    }

    fn wrong_type(&mut self, node: &Node, key: &str, expected: &str) {
        self.report(
            "wrong-type",
            node.span,
            format!("`{key}` must be {expected}, found {}", node.value.kind()),
        )
        .set_label(format!("expected {expected}"))
        .set_help(format!(
            "give `{key}` {expected}; see the YAML reference in README.md"
        ));
    }
}

/// Reads the entries of one YAML mapping; whatever is not taken is reported as unknown.
struct MapReader {
    entries: Vec<Option<(Sp<String>, Node)>>,
    known: &'static [&'static str],
    /// Where in the file this mapping is, for messages ("in `retry`").
    context: &'static str,
}

impl MapReader {
    /// `None` (with a diagnostic) when `node` is not a mapping.
    fn new(
        ctx: &mut Ctx<'_>,
        node: &Node,
        known: &'static [&'static str],
        context: &'static str,
    ) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            ctx.report(
                "wrong-type",
                node.span,
                format!("{context} must be a mapping, found {}", node.value.kind()),
            )
            .set_label("expected a mapping of keys to values")
            .set_help("write it as `key: value` lines (or `{ key: value }`); see the YAML reference in README.md");
            return None;
        };
        Some(Self {
            entries: read_entries(ctx, entries, context)
                .into_iter()
                .map(Some)
                .collect(),
            known,
            context,
        })
    }

    fn take(&mut self, key: &str) -> Option<(Sp<String>, Node)> {
        debug_assert!(
            self.known.contains(&key),
            "{key} is not a known key of {}",
            self.context
        );
        self.entries
            .iter_mut()
            .find(|e| e.as_ref().is_some_and(|(k, _)| k.value == key))
            .and_then(Option::take)
    }

    fn string(&mut self, ctx: &mut Ctx<'_>, key: &str) -> Option<Sp<String>> {
        let (_, node) = self.take(key)?;
        expect_string(ctx, &node, key)
    }

    fn integer(&mut self, ctx: &mut Ctx<'_>, key: &str) -> Option<Sp<i64>> {
        let (_, node) = self.take(key)?;
        match node.value {
            Value::Int(value) => Some(Sp {
                value,
                span: node.span,
            }),
            _ => {
                ctx.wrong_type(&node, key, "a whole number");
                None
            }
        }
    }

    fn boolean(&mut self, ctx: &mut Ctx<'_>, key: &str) -> Option<Sp<bool>> {
        let (_, node) = self.take(key)?;
        match node.value {
            Value::Bool(value) => Some(Sp {
                value,
                span: node.span,
            }),
            _ => {
                ctx.wrong_type(&node, key, "`true` or `false`");
                None
            }
        }
    }

    fn string_list(&mut self, ctx: &mut Ctx<'_>, key: &str) -> Option<Sp<Vec<Sp<String>>>> {
        let (_, node) = self.take(key)?;
        let Value::Seq(items) = &node.value else {
            ctx.wrong_type(&node, key, "a list of names");
            return None;
        };
        let items = items
            .iter()
            .filter_map(|item| expect_string(ctx, item, key))
            .collect();
        Some(Sp {
            value: items,
            span: node.span,
        })
    }

    /// Reports every key that nothing took, with the closest known key as a suggestion.
    fn finish(self, ctx: &mut Ctx<'_>) {
        for (key, _) in self.entries.into_iter().flatten() {
            let help = match closest(&key.value, self.known) {
                Some(near) => format!(
                    "did you mean `{near}`? {} accepts: {}",
                    self.context,
                    list(self.known)
                ),
                None => format!("{} accepts: {}", self.context, list(self.known)),
            };
            ctx.report(
                "unknown-key",
                key.span,
                format!("unknown key `{}` in {}", key.value, self.context),
            )
            .set_label("not a known key")
            .set_help(help);
        }
    }
}

/// Mapping entries whose keys are strings; duplicate keys are reported, the first one wins.
fn read_entries(
    ctx: &mut Ctx<'_>,
    entries: &[(Node, Node)],
    context: &str,
) -> Vec<(Sp<String>, Node)> {
    let mut out: Vec<(Sp<String>, Node)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Str(name) = &key.value else {
            ctx.report(
                "wrong-type",
                key.span,
                format!(
                    "keys in {context} must be strings, found {}",
                    key.value.kind()
                ),
            )
            .set_help("write the key as a name");
            continue;
        };
        if let Some((first, _)) = out.iter().find(|(k, _)| &k.value == name) {
            let first = ctx.at(first.span);
            ctx.report(
                "duplicate-key",
                key.span,
                format!("`{name}` appears twice in {context}"),
            )
            .set_label("second occurrence")
            .set_help("keep one of them")
            .add_related(first, "first occurrence");
            continue;
        }
        out.push((
            Sp {
                value: name.clone(),
                span: key.span,
            },
            value.clone(),
        ));
    }
    out
}

fn expect_string(ctx: &mut Ctx<'_>, node: &Node, key: &str) -> Option<Sp<String>> {
    match &node.value {
        Value::Str(value) => Some(Sp {
            value: value.clone(),
            span: node.span,
        }),
        _ => {
            ctx.wrong_type(node, key, "a string");
            None
        }
    }
}

/// Reads an event file. `None` when the document is not a mapping at all.
pub fn event_file(ctx: &mut Ctx<'_>, root: &Node) -> Option<RawEvent> {
    let mut map = MapReader::new(ctx, root, EVENT_KEYS, "an event file")?;
    let type_ = map.string(ctx, "type");
    if let Some(type_) = &type_ {
        ctx.subject = Subject::Event(type_.value.clone());
    }
    let mut event = RawEvent {
        file: ctx.file,
        span: root.span,
        declared_in_entity: None,
        type_,
        direction: map.string(ctx, "direction"),
        tier: map.string(ctx, "tier"),
        aggregate: map.string(ctx, "aggregate"),
        source: map.string(ctx, "source"),
        destination: map.string(ctx, "destination"),
        pool: None,
        version: None,
        description: None,
        retry: None,
        payload: None,
    };
    event_body(ctx, &mut map, &mut event);
    map.finish(ctx);
    Some(event)
}

/// The keys an event has wherever it is declared.
fn event_body(ctx: &mut Ctx<'_>, map: &mut MapReader, event: &mut RawEvent) {
    event.pool = map.string(ctx, "pool");
    event.version = map.integer(ctx, "version");
    event.description = map.string(ctx, "description");
    event.retry = map.take("retry").and_then(|(_, node)| retry(ctx, &node));
    event.payload = map
        .take("payload")
        .and_then(|(_, node)| payload(ctx, &node));
}

fn retry(ctx: &mut Ctx<'_>, node: &Node) -> Option<RawRetry> {
    let mut map = MapReader::new(ctx, node, RETRY_KEYS, "`retry`")?;
    let retry = RawRetry {
        attempts: map.integer(ctx, "attempts"),
        backoff: map.string(ctx, "backoff"),
    };
    map.finish(ctx);
    Some(retry)
}

fn payload(ctx: &mut Ctx<'_>, node: &Node) -> Option<Sp<Vec<RawPayloadField>>> {
    let Value::Map(entries) = &node.value else {
        ctx.wrong_type(
            node,
            "payload",
            "a mapping of field names to field declarations",
        );
        return None;
    };
    let fields = read_entries(ctx, entries, "`payload`")
        .into_iter()
        .map(|(name, body)| payload_field(ctx, name, &body))
        .collect();
    Some(Sp {
        value: fields,
        span: node.span,
    })
}

fn payload_field(ctx: &mut Ctx<'_>, name: Sp<String>, body: &Node) -> RawPayloadField {
    let mut field = RawPayloadField {
        type_: None,
        items: None,
        nullable: None,
        description: None,
        name,
    };
    // `field: uuid` is short for `field: { type: uuid }`.
    if let Value::Str(type_) = &body.value {
        field.type_ = Some(Sp {
            value: type_.clone(),
            span: body.span,
        });
        return field;
    }
    let Some(mut map) = MapReader::new(ctx, body, PAYLOAD_FIELD_KEYS, "a payload field") else {
        return field;
    };
    field.type_ = map.string(ctx, "type");
    field.items = map.take("items").map(|(_, node)| Sp {
        value: match &node.value {
            Value::Str(name) => Ok(name.clone()),
            other => Err(other.kind()),
        },
        span: node.span,
    });
    field.nullable = map.boolean(ctx, "nullable");
    field.description = map.string(ctx, "description");
    map.finish(ctx);
    field
}

/// Reads an entity file. `None` when the document is not a mapping at all.
pub fn entity_file(ctx: &mut Ctx<'_>, root: &Node) -> Option<RawEntity> {
    let mut map = MapReader::new(ctx, root, ENTITY_KEYS, "an entity file")?;
    let name = map.string(ctx, "entity");
    if let Some(name) = &name {
        ctx.subject = Subject::Entity(name.value.clone());
    }
    let entity_name = name.as_ref().map(|n| n.value.clone());
    let mut entity = RawEntity {
        file: ctx.file,
        span: root.span,
        description: map.string(ctx, "description"),
        fields: Vec::new(),
        behaviors: map
            .string_list(ctx, "behaviors")
            .map(|b| b.value)
            .unwrap_or_default(),
        relationships: Vec::new(),
        events: Vec::new(),
        emits: map
            .string_list(ctx, "emits")
            .map(|e| e.value)
            .unwrap_or_default(),
        name,
    };
    if let Some((_, node)) = map.take("fields") {
        entity.fields = named_mapping(ctx, &node, "fields")
            .into_iter()
            .map(|(name, body)| entity_field(ctx, name, &body))
            .collect();
    }
    if let Some((_, node)) = map.take("relationships") {
        entity.relationships = named_mapping(ctx, &node, "relationships")
            .into_iter()
            .map(|(name, body)| relationship(ctx, name, &body))
            .collect();
    }
    if let Some((_, node)) = map.take("events") {
        let entity_subject = ctx.subject.clone();
        for (type_, body) in named_mapping(ctx, &node, "events") {
            ctx.subject = Subject::Event(type_.value.clone());
            let mut event = RawEvent {
                file: ctx.file,
                span: type_.span,
                declared_in_entity: entity_name.clone(),
                type_: Some(type_),
                direction: None,
                tier: None,
                aggregate: None,
                source: None,
                destination: None,
                pool: None,
                version: None,
                description: None,
                retry: None,
                payload: None,
            };
            if let Some(mut body) = MapReader::new(
                ctx,
                &body,
                INLINE_EVENT_KEYS,
                "an event of an entity's `events:`",
            ) {
                event_body(ctx, &mut body, &mut event);
                body.finish(ctx);
            }
            entity.events.push(event);
        }
        ctx.subject = entity_subject;
    }
    map.finish(ctx);
    Some(entity)
}

fn named_mapping(ctx: &mut Ctx<'_>, node: &Node, key: &'static str) -> Vec<(Sp<String>, Node)> {
    match &node.value {
        Value::Map(entries) => read_entries(ctx, entries, key),
        // `fields:` with nothing under it.
        Value::Null => Vec::new(),
        _ => {
            ctx.wrong_type(node, key, "a mapping of names to declarations");
            Vec::new()
        }
    }
}

fn entity_field(ctx: &mut Ctx<'_>, name: Sp<String>, body: &Node) -> RawEntityField {
    let mut field = RawEntityField {
        type_: None,
        required: None,
        nullable: None,
        max_length: None,
        index: None,
        choices: None,
        description: None,
        name,
    };
    if let Value::Str(type_) = &body.value {
        field.type_ = Some(Sp {
            value: type_.clone(),
            span: body.span,
        });
        return field;
    }
    let Some(mut map) = MapReader::new(ctx, body, ENTITY_FIELD_KEYS, "an entity field") else {
        return field;
    };
    field.type_ = map.string(ctx, "type");
    field.required = map.boolean(ctx, "required");
    field.nullable = map.boolean(ctx, "nullable");
    field.max_length = map.integer(ctx, "max_length");
    field.index = map.boolean(ctx, "index");
    field.choices = map.string_list(ctx, "choices");
    field.description = map.string(ctx, "description");
    map.finish(ctx);
    field
}

fn relationship(ctx: &mut Ctx<'_>, name: Sp<String>, body: &Node) -> RawRelationship {
    let mut relationship = RawRelationship {
        kind: None,
        nullable: None,
        name,
    };
    let Some(mut map) = MapReader::new(ctx, body, RELATIONSHIP_KEYS, "a relationship") else {
        return relationship;
    };
    let kinds: Vec<(RelationKind, Sp<String>)> = [
        RelationKind::BelongsTo,
        RelationKind::HasMany,
        RelationKind::HasOne,
    ]
    .into_iter()
    .filter_map(|kind| map.string(ctx, kind.key()).map(|target| (kind, target)))
    .collect();
    relationship.nullable = map.boolean(ctx, "nullable");
    map.finish(ctx);
    match kinds.as_slice() {
        [one] => relationship.kind = Some(one.clone()),
        [] => {
            ctx.report(
                "relationship-kind",
                relationship.name.span,
                format!("relationship `{}` names no related entity", relationship.name.value),
            )
            .set_help("add exactly one of `belongs_to: <entity>`, `has_many: <entity>` or `has_one: <entity>`");
        }
        [_, second, ..] => {
            ctx.report(
                "relationship-kind",
                second.1.span,
                format!("relationship `{}` has more than one kind", relationship.name.value),
            )
            .set_help("a relationship is exactly one of `belongs_to`, `has_many` or `has_one`; declare two relationships instead");
        }
    }
    relationship
}

/// `` `a`, `b` or `c` ``: how every message of the generator lists names (in backticks, as
/// they are written in YAML).
pub fn list(items: &[&str]) -> String {
    list_or(items, "`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        assert_eq!(closest("diretion", EVENT_KEYS), Some("direction"));
        assert_eq!(closest("payloads", EVENT_KEYS), Some("payload"));
        assert_eq!(closest("colour", EVENT_KEYS), None);
    }

    #[test]
    fn lists_use_backticks() {
        assert_eq!(list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}

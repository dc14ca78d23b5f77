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
    "compatibility",
    "description",
    "retry",
    "payload",
];
/// The keys of an event declared in an entity's `events:` block.
pub const INLINE_EVENT_KEYS: &[&str] = &[
    "description",
    "version",
    "compatibility",
    "pool",
    "retry",
    "payload",
];
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff"];
pub const PAYLOAD_FIELD_KEYS: &[&str] = &["type", "items", "nullable", "description"];
pub const ENTITY_KEYS: &[&str] = &[
    "entity",
    "description",
    "fields",
    "behaviors",
    "relationships",
    "generate",
    "queries",
    "events",
    "emits",
];
/// The keys of `entity:` written as a mapping (the TypeScript ancestor's form).
pub const ENTITY_IDENTITY_KEYS: &[&str] = &["name", "plural", "table", "pattern"];
pub const ENTITY_FIELD_KEYS: &[&str] = &[
    "type",
    "required",
    "nullable",
    "max_length",
    "index",
    "choices",
    "default",
    "description",
];
/// Both forms of a relationship: the ancestor's `type`/`target` and the short `belongs_to: x`.
pub const RELATIONSHIP_KEYS: &[&str] = &[
    "type",
    "target",
    "foreign_key",
    "belongs_to",
    "has_many",
    "has_one",
    "nullable",
];
pub const GENERATE_KEYS: &[&str] = &["writes"];
pub const QUERY_KEYS: &[&str] = &[
    "by", "unique", "order", "name", "filters", "search", "paginate",
];

/// Keys of the TypeScript ancestor's entity format that Herald does not implement, with what
/// to do instead. They are refused by name, never taken for typos nor silently ignored: a
/// team moving its YAML over must learn that the behaviour they relied on is not there.
pub const UNSUPPORTED_ENTITY_KEYS: &[(&str, &str)] = &[
    (
        "eav",
        "Herald has no EAV custom fields: remove `eav`, and keep such values in a `json` field or in an entity of their own",
    ),
    (
        "eav_value_table",
        "Herald has no EAV value tables: remove `eav_value_table` and declare the values as an ordinary entity (with `belongs_to` relationships and a `queries:` finder)",
    ),
    (
        "eav_definition_table",
        "Herald has no EAV value tables: remove `eav_definition_table` and relate the entities with a `belongs_to` relationship",
    ),
    (
        "unique_indexes",
        "remove `unique_indexes` and declare each one as a finder, `queries: [{ by: [a, b], unique: true }]`, which creates the unique index",
    ),
    (
        "integration",
        "Herald generates no integration providers or sinks: remove `integration` and publish outbound events instead",
    ),
    (
        "detection",
        "Herald generates no change detection: remove `detection`",
    ),
    (
        "analytics",
        "Herald generates no analytics: remove `analytics`",
    ),
    ("api", "Herald generates no HTTP surface: remove `api`"),
    (
        "tenant_scoped",
        "Herald has no tenant-scoped repositories yet: remove `tenant_scoped` and add a tenant column (e.g. a `belongs_to` relationship) yourself",
    ),
];
pub const UNSUPPORTED_IDENTITY_KEYS: &[(&str, &str)] = &[
    (
        "context",
        "Herald has no bounded-context folders: remove `context`",
    ),
    (
        "surface",
        "Herald generates no integration surface: remove `surface`",
    ),
    ("sync", "Herald generates no frontend sync: remove `sync`"),
    (
        "config",
        "Herald has no per-pattern configuration: remove `config` (`pattern` is kept as metadata only)",
    ),
];
pub const UNSUPPORTED_FIELD_KEYS: &[(&str, &str)] = &[
    (
        "foreign_key",
        "declare a relationship instead, `relationships: { <name>: { type: belongs_to, target: <entity> } }`: it adds the column and its foreign key",
    ),
    ("role", "Herald has no analytics field tags: remove `role`"),
    ("agg", "Herald has no analytics field tags: remove `agg`"),
    ("aggs", "Herald has no analytics field tags: remove `aggs`"),
    (
        "additivity",
        "Herald has no analytics field tags: remove `additivity`",
    ),
    ("time", "Herald has no analytics field tags: remove `time`"),
];

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
    pub compatibility: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub retry: Option<RawRetry>,
    /// The `payload` key itself, where a change to the payload as a whole is shown.
    pub payload_key: Option<Span>,
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
    /// `entity: contact`, or `name:` of `entity:` written as a mapping.
    pub name: Option<Sp<String>>,
    /// Whether the file has an `entity:` key at all (its problems are reported where read).
    pub has_entity_key: bool,
    /// `entity:` was written as a mapping.
    pub long_form: bool,
    pub plural: Option<Sp<String>>,
    pub table: Option<Sp<String>>,
    pub pattern: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub fields: Vec<RawEntityField>,
    pub behaviors: Vec<Sp<String>>,
    pub relationships: Vec<RawRelationship>,
    pub writes: Option<Sp<bool>>,
    pub queries: Vec<RawQuery>,
    pub events: Vec<RawEvent>,
    pub emits: Vec<Sp<String>>,
}

/// One entry of `queries:`: a finder (`by:`) or a named list (`name:`); which one it is and
/// whether its keys fit is decided in `check`.
#[derive(Debug, Clone)]
pub struct RawQuery {
    pub span: Span,
    pub by: Option<Sp<Vec<Sp<String>>>>,
    pub unique: Option<Sp<bool>>,
    pub order: Option<Sp<String>>,
    pub name: Option<Sp<String>>,
    pub filters: Option<Sp<Vec<Sp<String>>>>,
    pub search: Option<Sp<String>>,
    pub paginate: Option<Sp<bool>>,
}

/// A scalar given as `default:`; its type is checked against the field's in `check`.
#[derive(Debug, Clone, PartialEq)]
pub enum RawDefault {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
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
    pub default: Option<Sp<RawDefault>>,
    pub description: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RelationKind {
    BelongsTo,
    HasMany,
    HasOne,
}

impl RelationKind {
    pub const ALL: [RelationKind; 3] = [
        RelationKind::BelongsTo,
        RelationKind::HasMany,
        RelationKind::HasOne,
    ];

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
    /// The kind and the target, read from either form; `None` when they could not be read
    /// (reported).
    pub kind: Option<(RelationKind, Sp<String>)>,
    pub foreign_key: Option<Sp<String>>,
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
    /// Keys of the TypeScript ancestor that Herald refuses by name, with what to do instead.
    unsupported: &'static [(&'static str, &'static str)],
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
            unsupported: &[],
            context,
        })
    }

    fn refusing(mut self, unsupported: &'static [(&'static str, &'static str)]) -> Self {
        self.unsupported = unsupported;
        self
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
            if let Some((_, instead)) = self.unsupported.iter().find(|(k, _)| *k == key.value) {
                ctx.report(
                    "unsupported-key",
                    key.span,
                    format!(
                        "`{}` in {} is a key of the TypeScript ancestor that Herald does not support",
                        key.value, self.context
                    ),
                )
                .set_label("not supported")
                .set_help(*instead);
                continue;
            }
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

/// What to do about a key that YAML did not read as a string: most often a word that YAML 1.1
/// reads as a boolean (`on`, `n`), or digits. The word is told by its value and its length.
fn scalar_key_help(key: &Node) -> String {
    let width = key.span.end.saturating_sub(key.span.start);
    let (word, read_as) = match &key.value {
        Value::Bool(value) => {
            let words: &[&str] = if *value {
                &["y", "on", "yes", "true"]
            } else {
                &["n", "no", "off", "false"]
            };
            let word = words.iter().find(|word| word.len() == width).copied();
            (word, format!("the boolean {value}"))
        }
        Value::Int(_) | Value::Float(_) => (None, "a number".to_owned()),
        Value::Null => (None, "null".to_owned()),
        Value::Str(_) | Value::Seq(_) | Value::Map(_) => {
            return "write the key as a name".to_owned();
        }
    };
    let example = word.unwrap_or("on");
    format!("YAML reads this key as {read_as}: quote it to keep it a name, e.g. `\"{example}\":`")
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
            .set_help(scalar_key_help(key));
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
        compatibility: None,
        description: None,
        retry: None,
        payload_key: None,
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
    event.compatibility = map.string(ctx, "compatibility");
    event.description = map.string(ctx, "description");
    event.retry = map.take("retry").and_then(|(_, node)| retry(ctx, &node));
    event.payload = map.take("payload").and_then(|(key, node)| {
        event.payload_key = Some(key.span);
        payload(ctx, &node)
    });
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
///
/// `entity:` is either the name (`entity: contact`) or, as the TypeScript ancestor writes it,
/// a mapping of `name`, `plural`, `table` and `pattern`; both read into the same fields.
pub fn entity_file(ctx: &mut Ctx<'_>, root: &Node) -> Option<RawEntity> {
    let mut map =
        MapReader::new(ctx, root, ENTITY_KEYS, "an entity file")?.refusing(UNSUPPORTED_ENTITY_KEYS);
    let mut entity = RawEntity {
        file: ctx.file,
        span: root.span,
        name: None,
        has_entity_key: false,
        long_form: false,
        plural: None,
        table: None,
        pattern: None,
        description: None,
        fields: Vec::new(),
        behaviors: Vec::new(),
        relationships: Vec::new(),
        writes: None,
        queries: Vec::new(),
        events: Vec::new(),
        emits: Vec::new(),
    };
    if let Some((key, node)) = map.take("entity") {
        entity.has_entity_key = true;
        entity_identity(ctx, &key, &node, &mut entity);
    }
    if let Some(name) = &entity.name {
        ctx.subject = Subject::Entity(name.value.clone());
    }
    // Events declared in a file whose name cannot be read still belong to that file's entity
    // (named after the file), so they are not reported again for a missing `direction`.
    let entity_name = match (&entity.name, &ctx.subject) {
        (Some(name), _) => Some(name.value.clone()),
        (None, Subject::Entity(stem)) => Some(stem.clone()),
        (None, _) => None,
    };
    entity.description = map.string(ctx, "description");
    entity.behaviors = map
        .string_list(ctx, "behaviors")
        .map(|b| b.value)
        .unwrap_or_default();
    entity.emits = map
        .string_list(ctx, "emits")
        .map(|e| e.value)
        .unwrap_or_default();
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
    if let Some((_, node)) = map.take("generate")
        && let Some(mut generate) = MapReader::new(ctx, &node, GENERATE_KEYS, "`generate`")
    {
        entity.writes = generate.boolean(ctx, "writes");
        generate.finish(ctx);
    }
    if let Some((_, node)) = map.take("queries") {
        entity.queries = queries(ctx, &node);
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
                compatibility: None,
                description: None,
                retry: None,
                payload_key: None,
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

/// `entity: contact` or `entity: { name: contact, plural: …, table: …, pattern: … }`.
fn entity_identity(ctx: &mut Ctx<'_>, key: &Sp<String>, node: &Node, entity: &mut RawEntity) {
    match &node.value {
        Value::Str(name) => {
            entity.name = Some(Sp {
                value: name.clone(),
                span: node.span,
            });
        }
        Value::Map(_) => {
            entity.long_form = true;
            let Some(map) = MapReader::new(ctx, node, ENTITY_IDENTITY_KEYS, "`entity`") else {
                return;
            };
            let mut map = map.refusing(UNSUPPORTED_IDENTITY_KEYS);
            entity.name = map.string(ctx, "name");
            entity.plural = map.string(ctx, "plural");
            entity.table = map.string(ctx, "table");
            entity.pattern = map.string(ctx, "pattern");
            map.finish(ctx);
            if entity.name.is_none() {
                let stem = match &ctx.subject {
                    Subject::Entity(stem) => stem.clone(),
                    _ => String::new(),
                };
                ctx.report(
                    "missing-key",
                    key.span,
                    "`entity` has no `name`",
                )
                .set_help(format!(
                    "add `name: {stem}` under `entity:` (the entity's snake_case name, equal to the file name)"
                ));
            }
        }
        _ => {
            ctx.report(
                "wrong-type",
                node.span,
                format!(
                    "`entity` must be the entity's name or a mapping, found {}",
                    node.value.kind()
                ),
            )
            .set_label("expected a name or a mapping")
            .set_help("write `entity: contact`, or `entity: { name: contact, plural: contacts, table: contacts, pattern: Base }`");
        }
    }
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
        default: None,
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
    let Some(map) = MapReader::new(ctx, body, ENTITY_FIELD_KEYS, "an entity field") else {
        return field;
    };
    let mut map = map.refusing(UNSUPPORTED_FIELD_KEYS);
    field.type_ = map.string(ctx, "type");
    field.required = map.boolean(ctx, "required");
    field.nullable = map.boolean(ctx, "nullable");
    field.max_length = map.integer(ctx, "max_length");
    field.index = map.boolean(ctx, "index");
    field.choices = map.string_list(ctx, "choices");
    field.default = map.take("default").and_then(|(_, node)| {
        let value = match &node.value {
            Value::Str(s) => RawDefault::Str(s.clone()),
            Value::Int(i) => RawDefault::Int(*i),
            Value::Float(f) => RawDefault::Float(*f),
            Value::Bool(b) => RawDefault::Bool(*b),
            _ => {
                ctx.wrong_type(&node, "default", "a string, a number or `true`/`false`");
                return None;
            }
        };
        Some(Sp {
            value,
            span: node.span,
        })
    });
    field.description = map.string(ctx, "description");
    map.finish(ctx);
    field
}

/// A relationship in either form: `{ type: belongs_to, target: account, foreign_key: … }` (the
/// ancestor's) or `{ belongs_to: account }` (the short one). Mixing them is one error that
/// says which to pick, not a list of unknown keys.
fn relationship(ctx: &mut Ctx<'_>, name: Sp<String>, body: &Node) -> RawRelationship {
    let mut relationship = RawRelationship {
        kind: None,
        foreign_key: None,
        nullable: None,
        name,
    };
    let Some(mut map) = MapReader::new(ctx, body, RELATIONSHIP_KEYS, "a relationship") else {
        return relationship;
    };
    let type_ = map.string(ctx, "type");
    let target = map.string(ctx, "target");
    let short: Vec<(RelationKind, Sp<String>)> = RelationKind::ALL
        .into_iter()
        .filter_map(|kind| map.string(ctx, kind.key()).map(|target| (kind, target)))
        .collect();
    relationship.foreign_key = map.string(ctx, "foreign_key");
    relationship.nullable = map.boolean(ctx, "nullable");
    map.finish(ctx);
    let rel = relationship.name.value.clone();
    let long = type_.is_some() || target.is_some();
    if long && !short.is_empty() {
        let (kind, short_target) = &short[0];
        let target_name = target
            .as_ref()
            .map_or(short_target.value.as_str(), |t| t.value.as_str());
        let kind_name = type_.as_ref().map_or(kind.key(), |t| t.value.as_str());
        ctx.report(
            "relationship-form",
            relationship.name.span,
            format!("relationship `{rel}` mixes the two forms of a relationship"),
        )
        .set_label("`type`/`target` and `belongs_to`/`has_many`/`has_one` together")
        .set_help(format!(
            "pick one: `{{ type: {kind_name}, target: {target_name} }}` (the ancestor's form) or `{{ {kind_name}: {target_name} }}` (the short form)"
        ));
        return relationship;
    }
    if long {
        let kind = match &type_ {
            None => {
                ctx.report(
                    "missing-key",
                    relationship.name.span,
                    format!("relationship `{rel}` has no `type`"),
                )
                .set_help("add `type: belongs_to`, `type: has_many` or `type: has_one`");
                None
            }
            Some(type_) => match RelationKind::ALL
                .into_iter()
                .find(|k| k.key() == type_.value)
            {
                Some(kind) => Some(kind),
                None => {
                    let keys = RelationKind::ALL.map(RelationKind::key);
                    let help = match closest(&type_.value, &keys) {
                        Some(near) => {
                            format!("did you mean `{near}`? `type` is one of {}", list(&keys))
                        }
                        None => format!("`type` is one of {}", list(&keys)),
                    };
                    ctx.report(
                        "unknown-relationship-type",
                        type_.span,
                        format!("unknown relationship type `{}`", type_.value),
                    )
                    .set_label("not a relationship type")
                    .set_help(help);
                    None
                }
            },
        };
        if target.is_none() {
            ctx.report(
                "missing-key",
                relationship.name.span,
                format!("relationship `{rel}` has no `target`"),
            )
            .set_help("add `target: <entity>` naming the related entity");
        }
        if let (Some(kind), Some(target)) = (kind, target) {
            relationship.kind = Some((kind, target));
        }
        return relationship;
    }
    match short.as_slice() {
        [one] => relationship.kind = Some(one.clone()),
        [] => {
            ctx.report(
                "relationship-kind",
                relationship.name.span,
                format!("relationship `{rel}` names no related entity"),
            )
            .set_help("write `{ type: belongs_to, target: <entity> }` (or `has_many`, `has_one`), or the short form `{ belongs_to: <entity> }`");
        }
        [_, second, ..] => {
            ctx.report(
                "relationship-kind",
                second.1.span,
                format!("relationship `{rel}` has more than one kind"),
            )
            .set_help("a relationship is exactly one of `belongs_to`, `has_many` or `has_one`; declare two relationships instead");
        }
    }
    relationship
}

/// `queries:`, a list of mappings.
fn queries(ctx: &mut Ctx<'_>, node: &Node) -> Vec<RawQuery> {
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Null => return Vec::new(),
        _ => {
            ctx.report(
                "wrong-type",
                node.span,
                format!("`queries` must be a list, found {}", node.value.kind()),
            )
            .set_label("expected a list of queries")
            .set_help("write one `- by: [column]` (a finder) or `- name: …` (a list) per query; see the YAML reference in README.md");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        let Some(mut map) = MapReader::new(ctx, item, QUERY_KEYS, "a query") else {
            continue;
        };
        let query = RawQuery {
            span: item.span,
            by: map.string_list(ctx, "by"),
            unique: map.boolean(ctx, "unique"),
            order: map.string(ctx, "order"),
            name: map.string(ctx, "name"),
            filters: map.string_list(ctx, "filters"),
            search: map.string(ctx, "search"),
            paginate: map.boolean(ctx, "paginate"),
        };
        map.finish(ctx);
        out.push(query);
    }
    out
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

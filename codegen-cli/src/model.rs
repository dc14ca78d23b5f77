//! The checked declarations. Whatever is here is valid: an invalid combination of YAML keys
//! cannot be represented (an audit event has no direction or pool to get wrong).

pub use herald_vocabulary::{Backoff, Direction, Keyword, MaxAttempts};

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Sorted by type.
    pub events: Vec<Event>,
    /// Sorted by name.
    pub entities: Vec<Entity>,
}

impl Model {
    /// The change events of `aggregate`, sorted by type.
    pub fn change_events_of<'a>(
        &'a self,
        aggregate: &'a str,
    ) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| {
            matches!(
                e.routing,
                Routing::Domain {
                    direction: Direction::Change,
                    ..
                }
            ) && e.aggregate.as_deref() == Some(aggregate)
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `type`, e.g. `contact_created`.
    pub name: String,
    /// The payload struct's name, e.g. `ContactCreated`.
    pub struct_name: String,
    pub version: u32,
    /// `compatibility:`; `None` takes the project's default (see [`Compatibility`]).
    pub compatibility: Option<Compatibility>,
    pub routing: Routing,
    pub aggregate: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub retry: Option<Retry>,
    pub description: Option<String>,
    pub fields: Vec<PayloadField>,
    /// The earlier versions whose payload shape is kept beside the declaration, sorted by
    /// version: each becomes a struct, and the typed upcaster from it is checked by the compiler.
    pub kept: Vec<KeptVersion>,
    /// The YAML file it was declared in, for the generated header.
    pub origin: String,
}

/// An earlier version of an event's payload, kept in `events/<type>.v<N>.yaml` (the event's
/// declaration as it was at version N). Only its payload matters: its routing, retry and the
/// rest describe the event, which the current declaration does.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptVersion {
    pub version: u32,
    /// `ContactUpdatedV1`.
    pub struct_name: String,
    /// The generated module: `contact_updated_v1`.
    pub module: String,
    pub description: Option<String>,
    pub fields: Vec<PayloadField>,
    /// The YAML file that keeps it.
    pub origin: String,
}

impl Event {
    /// The payload struct a stored version-`version` payload upcasts into: the next kept
    /// version's, or the current one's.
    pub fn next_shape(&self, version: u32) -> &str {
        self.kept
            .iter()
            .find(|kept| kept.version == version + 1)
            .map_or(&self.struct_name, |kept| &kept.struct_name)
    }
}

/// Which readers a payload change must keep working for while `version` stays the same:
/// `codegen-cli check --against <ref>` enforces it (see [`crate::compat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Compatibility {
    /// Consumers of the new declaration read events stored under the old one.
    #[default]
    Backward,
    /// Consumers still built from the old declaration read events published under the new one.
    Forward,
    /// Both.
    Full,
    /// Nothing is checked.
    None,
}

impl Compatibility {
    pub const ALL: [Compatibility; 4] = [
        Compatibility::Backward,
        Compatibility::Forward,
        Compatibility::Full,
        Compatibility::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "backward",
            Compatibility::Forward => "forward",
            Compatibility::Full => "full",
            Compatibility::None => "none",
        }
    }

    /// The spelling `word` stands for; `None` for any other word.
    pub fn parse(word: &str) -> Option<Self> {
        <Self as Keyword>::parse(word)
    }

    /// New consumers must read old events.
    pub fn checks_backward(self) -> bool {
        matches!(self, Compatibility::Backward | Compatibility::Full)
    }

    /// Old consumers must read new events.
    pub fn checks_forward(self) -> bool {
        matches!(self, Compatibility::Forward | Compatibility::Full)
    }
}

impl Keyword for Compatibility {
    const KIND: &'static str = "compatibility";
    const ALL: &'static [Self] = &Compatibility::ALL;

    fn as_str(self) -> &'static str {
        Compatibility::as_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Domain { direction: Direction, pool: String },
    Audit,
}

/// A `retry:` block; what it leaves out takes the runtime's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// `attempts: N` counts every delivery, the first one included.
    pub attempts: Option<MaxAttempts>,
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PayloadField {
    /// The key on the wire: exactly the YAML key.
    pub key: String,
    /// The Rust field name (`type` becomes `type_`).
    pub ident: String,
    pub ty: PayloadType,
    pub nullable: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Uuid,
    String,
    Number,
    Integer,
    Boolean,
    Date,
    DateTime,
}

impl Scalar {
    pub const ALL: [Scalar; 7] = [
        Scalar::Uuid,
        Scalar::String,
        Scalar::Number,
        Scalar::Integer,
        Scalar::Boolean,
        Scalar::Date,
        Scalar::DateTime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scalar::Uuid => "uuid",
            Scalar::String => "string",
            Scalar::Number => "number",
            Scalar::Integer => "integer",
            Scalar::Boolean => "boolean",
            Scalar::Date => "date",
            Scalar::DateTime => "datetime",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Scalar(Scalar),
    /// A JSON object.
    Json,
    Array(Scalar),
}

/// The names accepted for `type:` of a payload field.
pub const PAYLOAD_TYPES: &[&str] = &[
    "uuid", "string", "number", "integer", "boolean", "date", "datetime", "json", "array",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub struct_name: String,
    /// `plural:`, else the English plural of the name.
    pub plural: String,
    /// `table:`, else the plural.
    pub table: String,
    /// `pattern:` (the ancestor's family: `Base`, `Synced`, … or the application's own),
    /// kept as metadata: it changes nothing Herald generates.
    pub pattern: Option<String>,
    pub description: Option<String>,
    /// `id` first, then the declared fields, then those added by relationships and behaviors.
    pub fields: Vec<EntityField>,
    pub relationships: Vec<Relationship>,
    pub behaviors: Vec<Behavior>,
    /// `generate: { writes: false }` makes a read-only entity.
    pub writes: bool,
    pub queries: Vec<Query>,
    /// Sorted change event types.
    pub emits: Vec<String>,
    /// How the writes of the entity's repository fill the payloads of the `emits:` events
    /// named `<entity>_created`, `_updated` and `_deleted`, in that order. Empty for a
    /// read-only entity: its events are the application's to publish.
    pub emit_bindings: Vec<EmitBinding>,
    pub origin: String,
}

/// The event a write publishes, and where each of its payload fields comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitBinding {
    pub event: String,
    pub write: Write,
    /// In payload order.
    pub fields: Vec<PayloadSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Write {
    Insert,
    Update,
    Delete,
}

impl Write {
    /// The event type suffix that binds an event to this write.
    pub fn suffix(self) -> &'static str {
        match self {
            Write::Insert => "created",
            Write::Update => "updated",
            Write::Delete => "deleted",
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Write::Insert => "insert",
            Write::Update => "update",
            Write::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSource {
    /// The payload key.
    pub key: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `<entity>_id`: the row's id.
    Id,
    /// The column of that name. For an update and a nullable payload field: the new value
    /// when the write changed it, else null.
    Column(String),
    /// `created_by`/`updated_by`: the actor the write is made by.
    Actor,
    /// Matches no column: a typed argument of the write, never a placeholder.
    Argument,
}

impl Entity {
    pub fn field(&self, key: &str) -> Option<&EntityField> {
        self.fields.iter().find(|f| f.key == key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behavior {
    Timestamps,
    SoftDelete,
    UserTracking,
}

impl Behavior {
    pub const ALL: [Behavior; 3] = [
        Behavior::Timestamps,
        Behavior::SoftDelete,
        Behavior::UserTracking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Timestamps => "timestamps",
            Behavior::SoftDelete => "soft_delete",
            Behavior::UserTracking => "user_tracking",
        }
    }
}

/// A declarative finder of `queries:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The method name: `find_by_email`, `find_by_user_id_and_account_id`, or the `name:`.
    pub name: String,
    pub kind: QueryKind,
    /// The default sort (`order: created_at desc`), not a parameter.
    pub order: Vec<OrderBy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// `by: [columns]`: equality on every column (ANDed); `unique` returns one row or none
    /// and makes the index on those columns unique.
    By { columns: Vec<String>, unique: bool },
    /// `name:` with optional equality `filters`, a free-text `search` column and `paginate`.
    List {
        filters: Vec<String>,
        search: Option<String>,
        paginate: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub column: String,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityField {
    pub key: String,
    pub ident: String,
    pub ty: EntityType,
    pub required: bool,
    pub nullable: bool,
    pub index: bool,
    /// `default:`, already checked against the type.
    pub default: Option<DefaultValue>,
    pub description: Option<String>,
}

impl EntityField {
    /// May hold no value: absent (`required: false`) or null (`nullable: true`). Such a column
    /// is NULL-able; every other one is NOT NULL.
    pub fn optional(&self) -> bool {
        !self.required || self.nullable
    }
}

/// A column default. Decimals keep their canonical text, so that they stay exact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultValue {
    String(String),
    Integer(i64),
    Decimal(String),
    Boolean(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum EntityType {
    String {
        max_length: Option<u32>,
    },
    Integer,
    Decimal,
    Boolean,
    Uuid,
    Date,
    DateTime,
    Json,
    Enum {
        type_name: String,
        choices: Vec<Choice>,
    },
}

impl EntityType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityType::String { .. } => "string",
            EntityType::Integer => "integer",
            EntityType::Decimal => "decimal",
            EntityType::Boolean => "boolean",
            EntityType::Uuid => "uuid",
            EntityType::Date => "date",
            EntityType::DateTime => "datetime",
            EntityType::Json => "json",
            EntityType::Enum { .. } => "enum",
        }
    }
}

/// The names accepted for `type:` of an entity field.
pub const ENTITY_TYPES: &[&str] = &[
    "string", "integer", "decimal", "boolean", "uuid", "date", "datetime", "json", "enum",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// On the wire.
    pub value: String,
    /// The variant name.
    pub variant: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub name: String,
    pub kind: RelationKind,
    pub target: String,
    /// For `belongs_to`, the column of this entity that holds the target's id; for
    /// `has_many`/`has_one`, the column of the target that holds this entity's id.
    pub foreign_key: String,
}

pub use crate::parse::RelationKind;

/// The behaviors an entity may list.
pub const BEHAVIORS: &[&str] = &["timestamps", "soft_delete", "user_tracking"];

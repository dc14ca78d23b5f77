//! The checked declarations. Whatever is here is valid: an invalid combination of YAML keys
//! cannot be represented (an audit event has no direction or pool to get wrong).

pub use herald_vocabulary::{Backoff, Direction, MaxAttempts};

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
    pub routing: Routing,
    pub aggregate: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub retry: Option<Retry>,
    pub description: Option<String>,
    pub fields: Vec<PayloadField>,
    /// The YAML file it was declared in, for the generated header.
    pub origin: String,
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
    pub description: Option<String>,
    /// Declared fields first, then those added by relationships and behaviors.
    pub fields: Vec<EntityField>,
    pub relationships: Vec<Relationship>,
    /// Sorted change event types.
    pub emits: Vec<String>,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityField {
    pub key: String,
    pub ident: String,
    pub ty: EntityType,
    pub required: bool,
    pub nullable: bool,
    pub index: bool,
    pub description: Option<String>,
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
    pub kind: crate::parse::RelationKind,
    pub target: String,
}

/// The columns a behavior adds.
pub const BEHAVIORS: &[&str] = &["timestamps", "soft_delete", "user_tracking"];

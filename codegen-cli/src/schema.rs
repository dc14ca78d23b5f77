//! The JSON Schema of the YAML formats, for editors (yaml-language-server) to validate and
//! complete `events/*.yaml` and `entities/*.yaml`.
//!
//! These types document the format; the reader in `parse` enforces it (and reports every
//! problem with a position, which a JSON Schema validator cannot). A test keeps the two in step.

use std::borrow::Cow;
use std::collections::BTreeMap;

use herald_vocabulary::naming::{list_or, to_pascal_case};
use herald_vocabulary::{Backoff, Direction, Keyword, Tier};

use crate::model::Compatibility;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema, schema_for};
use serde::{Deserialize, Deserializer};

/// One domain event: `events/<type>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Herald event")]
pub struct EventFile {
    /// The event type: snake_case, unique, equal to the file name without `.yaml`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Required for domain events, forbidden for audit events.
    pub direction: Option<Word<Direction>>,
    /// `domain` (default) events may trigger work; `audit` events never do.
    pub tier: Option<Word<Tier>>,
    /// The entity the event concerns. Required for `change` events, where it must name an entity.
    pub aggregate: Option<String>,
    /// The external system an inbound event comes from (inbound only).
    pub source: Option<String>,
    /// The external system an outbound event goes to (outbound only).
    pub destination: Option<String>,
    /// Delivery pool: `events_<direction>` (default) or `events_<direction>_<name>`. Not for audit events.
    pub pool: Option<String>,
    /// Payload version, from 1 (default 1).
    #[schemars(range(min = 1))]
    pub version: Option<u32>,
    /// Which readers a payload change must keep working for while `version` stays the same,
    /// checked by `codegen-cli check --against <git ref>`: `backward` (consumers of this
    /// declaration read stored events), `forward` (consumers of the previous declaration read
    /// new events), `full` (both) or `none`. Default: `compatibility` of codegen.yaml, else
    /// `backward`.
    pub compatibility: Option<Word<Compatibility>>,
    pub description: Option<String>,
    pub retry: Option<Retry>,
    /// The payload fields: key on the wire → declaration (or just the type name).
    pub payload: BTreeMap<String, PayloadField>,
}

/// A word of the vocabulary (a direction, a tier, a backoff): the schema offers exactly the
/// spellings `herald_vocabulary` accepts, so an editor can never suggest one the generator
/// refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<T>(pub T);

impl<T: Keyword> JsonSchema for Word<T> {
    fn schema_name() -> Cow<'static, str> {
        to_pascal_case(T::KIND).into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": T::spellings() })
    }
}

impl<'de, T: Keyword> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        T::parse(&word).map(Word).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown {} `{word}`, expected one of {}",
                T::KIND,
                list_or(&T::spellings(), "`")
            ))
        })
    }
}

/// Delivery attempts before the event is dead-lettered.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Every attempt counts, the first one included (at least 1).
    #[schemars(range(min = 1))]
    pub attempts: Option<u32>,
    pub backoff: Option<Word<Backoff>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PayloadField {
    /// Short for `{ type: <name> }`.
    Short(PayloadType),
    Full(PayloadFieldSpec),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PayloadFieldSpec {
    #[serde(rename = "type")]
    pub type_: PayloadType,
    /// The element type of an `array` (a scalar type).
    pub items: Option<ScalarType>,
    /// May be null (becomes `Option<T>`).
    pub nullable: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadType {
    Uuid,
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Datetime,
    Json,
    Array,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScalarType {
    Uuid,
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Datetime,
}

/// One entity: `entities/<entity>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Herald entity")]
pub struct EntityFile {
    /// The entity: its snake_case name (equal to the file name without `.yaml`), or a mapping
    /// with `name`, `plural`, `table` and `pattern` (the TypeScript ancestor's form).
    pub entity: EntityIdentity,
    pub description: Option<String>,
    /// Columns besides the implicit `id: uuid`.
    pub fields: Option<BTreeMap<String, EntityField>>,
    pub behaviors: Option<Vec<Behavior>>,
    pub relationships: Option<BTreeMap<String, Relationship>>,
    /// What is generated for the entity.
    pub generate: Option<Generate>,
    /// Declarative finders: `- by: [column, …]` or `- name: <list>`.
    pub queries: Option<Vec<QuerySpec>>,
    /// Change events of this entity, declared here instead of in `events/`.
    pub events: Option<BTreeMap<String, InlineEvent>>,
    /// Change events of this entity that it emits.
    pub emits: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EntityIdentity {
    /// `entity: contact`.
    Name(String),
    Full(EntityIdentitySpec),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityIdentitySpec {
    /// snake_case, equal to the file name without `.yaml`.
    pub name: String,
    /// snake_case; default: the English plural of the name (opportunity → opportunities).
    pub plural: Option<String>,
    /// The SQL table; default: the plural.
    pub table: Option<String>,
    /// The entity's family (`Base`, `Synced`, `Activity`, `Metadata`, `Knowledge` or your own):
    /// kept as metadata.
    pub pattern: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EntityField {
    Short(EntityType),
    Full(EntityFieldSpec),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityFieldSpec {
    #[serde(rename = "type")]
    pub type_: EntityType,
    /// Must be present (default true); `false` makes the field optional.
    pub required: Option<bool>,
    /// May be null.
    pub nullable: Option<bool>,
    /// For `string`: the maximum number of characters.
    #[schemars(range(min = 1))]
    pub max_length: Option<u32>,
    /// A single-column index.
    pub index: Option<bool>,
    /// For `enum`: the values it may take.
    pub choices: Option<Vec<String>>,
    /// The column's default, for `string`, `enum`, `integer`, `decimal` (as a string, to stay
    /// exact) and `boolean` fields.
    pub default: Option<DefaultScalar>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DefaultScalar {
    Bool(bool),
    Integer(i64),
    String(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    String,
    Integer,
    /// Exact, never a float.
    Decimal,
    Boolean,
    Uuid,
    /// A calendar date.
    Date,
    /// An instant.
    Datetime,
    Json,
    Enum,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    /// Adds `created_at` and `updated_at`.
    Timestamps,
    /// Adds `deleted_at`.
    SoftDelete,
    /// Adds `created_by` and `updated_by`.
    UserTracking,
}

/// Either form, not both: `{ type: belongs_to, target: account }` or `{ belongs_to: account }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Relationship {
    Full(RelationshipSpec),
    Short(ShortRelationship),
}

/// The TypeScript ancestor's form.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipSpec {
    #[serde(rename = "type")]
    pub type_: RelationType,
    /// The related entity.
    pub target: String,
    /// `belongs_to`: this entity's column holding the target's id (default `<name>_id`).
    /// `has_many`/`has_one`: the target's column holding this entity's id (default
    /// `<this entity>_id`), which must be a `belongs_to` of the target.
    pub foreign_key: Option<String>,
    /// For `belongs_to`: the foreign key may be null.
    pub nullable: Option<bool>,
}

/// Exactly one of `belongs_to`, `has_many`, `has_one`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortRelationship {
    /// Adds the foreign key `<name>_id`.
    pub belongs_to: Option<String>,
    pub has_many: Option<String>,
    pub has_one: Option<String>,
    pub foreign_key: Option<String>,
    /// For `belongs_to`: the foreign key may be null.
    pub nullable: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationType {
    BelongsTo,
    HasMany,
    HasOne,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// `false`: a read-only entity, whose repository has no writes (default true).
    pub writes: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum QuerySpec {
    Finder(FinderQuery),
    List(ListQuery),
}

/// `find_by_<columns>`: rows whose columns equal the arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinderQuery {
    /// The columns, compared for equality and ANDed.
    pub by: Vec<String>,
    /// One row or none (and a unique index on the columns).
    pub unique: Option<bool>,
    /// The default sort: `<column> [asc|desc]`, comma-separated.
    pub order: Option<String>,
}

/// A named list with optional equality filters, free-text search and pagination.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// snake_case; the method's name.
    pub name: String,
    /// Columns to filter on by equality, each an optional argument.
    pub filters: Option<Vec<String>>,
    /// A `string` column matched case-insensitively.
    pub search: Option<String>,
    /// Take a limit and an offset.
    pub paginate: Option<bool>,
    /// The default sort: `<column> [asc|desc]`, comma-separated.
    pub order: Option<String>,
}

/// A change event of the entity; its key in `events:` is its type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineEvent {
    pub description: Option<String>,
    #[schemars(range(min = 1))]
    pub version: Option<u32>,
    /// Which readers a payload change must keep working for while `version` stays the same,
    /// checked by `codegen-cli check --against <git ref>`: `backward` (consumers of this
    /// declaration read stored events), `forward` (consumers of the previous declaration read
    /// new events), `full` (both) or `none`. Default: `compatibility` of codegen.yaml, else
    /// `backward`.
    pub compatibility: Option<Word<Compatibility>>,
    pub pool: Option<String>,
    pub retry: Option<Retry>,
    pub payload: BTreeMap<String, PayloadField>,
}

/// Which format's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Event,
    Entity,
}

pub fn json_schema(format: Format) -> serde_json::Value {
    let schema: Schema = match format {
        Format::Event => schema_for!(EventFile),
        Format::Entity => schema_for!(EntityFile),
    };
    let mut value = schema.to_value();
    forbid_null(&mut value);
    value
}

/// `Option` means "may be left out" here, not "may be null": the reader rejects `key: ~`, so
/// the schema must not offer it to an editor either.
fn forbid_null(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if let Some(serde_json::Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if let [single] = types.as_slice() {
                    let single = single.clone();
                    object.insert("type".into(), single);
                }
            }
            if let Some(serde_json::Value::Array(variants)) = object.get_mut("anyOf") {
                variants.retain(|v| v.get("type").is_none_or(|t| t != "null"));
                if let [single] = variants.as_slice() {
                    let single = single.clone();
                    object.remove("anyOf");
                    if let serde_json::Value::Object(fields) = single {
                        object.extend(fields);
                    }
                }
            }
            object.values_mut().for_each(forbid_null);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(forbid_null),
        _ => {}
    }
}

/// Pretty JSON with a trailing newline, as checked in under `schemas/`.
pub fn json_schema_text(format: Format) -> String {
    let mut text = serde_json::to_string_pretty(&json_schema(format))
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn keys(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
        let mut keys: Vec<String> = schema
            .pointer(pointer)
            .and_then(|p| p.as_object())
            .unwrap_or_else(|| panic!("no {pointer} in the schema"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        keys.sort();
        keys
    }

    /// The schema documents exactly the keys the reader accepts.
    #[test]
    fn schema_and_reader_agree_on_every_key() {
        let event = json_schema(Format::Event);
        assert_eq!(keys(&event, "/properties"), sorted(parse::EVENT_KEYS));
        assert_eq!(
            keys(&event, "/$defs/Retry/properties"),
            sorted(parse::RETRY_KEYS)
        );
        assert_eq!(
            keys(&event, "/$defs/PayloadFieldSpec/properties"),
            sorted(parse::PAYLOAD_FIELD_KEYS)
        );
        let entity = json_schema(Format::Entity);
        assert_eq!(keys(&entity, "/properties"), sorted(parse::ENTITY_KEYS));
        assert_eq!(
            keys(&entity, "/$defs/EntityFieldSpec/properties"),
            sorted(parse::ENTITY_FIELD_KEYS)
        );
        assert_eq!(
            keys(&entity, "/$defs/EntityIdentitySpec/properties"),
            sorted(parse::ENTITY_IDENTITY_KEYS)
        );
        let mut both_forms = keys(&entity, "/$defs/RelationshipSpec/properties");
        both_forms.extend(keys(&entity, "/$defs/ShortRelationship/properties"));
        both_forms.sort();
        both_forms.dedup();
        assert_eq!(both_forms, sorted(parse::RELATIONSHIP_KEYS));
        assert_eq!(
            keys(&entity, "/$defs/Generate/properties"),
            sorted(parse::GENERATE_KEYS)
        );
        let mut query_keys = keys(&entity, "/$defs/FinderQuery/properties");
        query_keys.extend(keys(&entity, "/$defs/ListQuery/properties"));
        query_keys.sort();
        query_keys.dedup();
        assert_eq!(query_keys, sorted(parse::QUERY_KEYS));
        assert_eq!(
            keys(&entity, "/$defs/InlineEvent/properties"),
            sorted(parse::INLINE_EVENT_KEYS)
        );
    }

    /// The vocabulary's words read as the vocabulary spells them, and nothing else does.
    #[test]
    fn words_are_the_vocabulary() {
        let word = |yaml: &str| serde_saphyr::from_str::<Word<Direction>>(yaml);
        assert_eq!(word("change").ok(), Some(Word(Direction::Change)));
        let error = word("sideways").err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains(
                "unknown direction `sideways`, expected one of `inbound`, `change` or `outbound`"
            )),
            "{error:?}"
        );
    }

    /// Every example file is valid by the schema's types as well as by the reader.
    #[test]
    fn example_domain_deserializes_into_the_schema_types() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for path in crate::yaml_files(&root.join("events")).expect("events/") {
            let text = std::fs::read_to_string(&path).expect("readable");
            serde_saphyr::from_str::<EventFile>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for path in crate::yaml_files(&root.join("entities")).expect("entities/") {
            let text = std::fs::read_to_string(&path).expect("readable");
            serde_saphyr::from_str::<EntityFile>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

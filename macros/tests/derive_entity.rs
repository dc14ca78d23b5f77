//! `#[derive(Entity)]`: the generated `EntityMeta`, field by field.

use herald::{Entity, FieldMeta};
use serde::{Deserialize, Serialize};

#[allow(dead_code)]
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Archived,
}

type Json = std::collections::BTreeMap<String, String>;

/// Stand-ins: only the last path segment of a type counts.
mod chrono_like {
    #[derive(serde::Serialize)]
    pub struct NaiveDate;
    #[derive(serde::Serialize)]
    pub struct DateTime<Tz>(pub Tz);
    #[derive(serde::Serialize)]
    pub struct Utc;
}

mod stand_ins {
    #[derive(serde::Serialize)]
    pub struct Decimal;
    #[derive(serde::Serialize)]
    pub struct Uuid;
    #[derive(serde::Serialize)]
    pub struct Value;
    #[derive(serde::Serialize)]
    pub struct Map<K, V>(pub K, pub V);
}

/// A person we are in touch with.
#[allow(dead_code)]
#[derive(Serialize, herald::Entity)]
#[entity(name = "contact", emits = ["contact_created", "contact_archived"])]
struct Contact {
    id: stand_ins::Uuid,
    #[entity(max_length = 255, index)]
    email: String,
    /// Through `Option`: nullable, still required on the wire.
    nickname: Option<String>,
    /// `optional` without `nullable`: may be absent, never `null`.
    #[entity(optional)]
    age: Option<u8>,
    /// Both.
    #[entity(optional, nullable)]
    score: Option<i64>,
    /// A non-`Option` declared nullable.
    #[entity(nullable)]
    notes: String,
    #[serde(rename = "isVip")]
    vip: bool,
    #[entity(type = "enum", index)]
    status: Status,
    #[entity(type = "enum")]
    previous_status: Option<Status>,
    balance: stand_ins::Decimal,
    born_on: Option<chrono_like::NaiveDate>,
    created_at: chrono_like::DateTime<chrono_like::Utc>,
    extra: stand_ins::Value,
    labels: stand_ins::Map<String, String>,
    #[entity(type = "json")]
    settings: Json,
    r#type: String,
    count: usize,
}

fn field(name: &str) -> FieldMeta {
    *Contact::META
        .fields
        .iter()
        .find(|field| field.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn plain(name: &'static str, field_type: &'static str) -> FieldMeta {
    FieldMeta {
        name,
        field_type,
        required: true,
        nullable: false,
        max_length: None,
        index: false,
    }
}

#[test]
fn entity_level_metadata() {
    let meta = Contact::META;
    assert_eq!(meta.name, "contact");
    assert_eq!(meta.emits, ["contact_created", "contact_archived"]);
    assert_eq!(meta.description, Some("A person we are in touch with."));
}

/// The ancestor's identity keys, each given.
#[allow(dead_code)]
#[derive(herald::Entity)]
#[entity(
    name = "sales_opportunity",
    plural = "sales_opportunities_v2",
    table = "deals",
    pattern = "Synced",
    writes = false
)]
struct SalesOpportunity {
    id: stand_ins::Uuid,
}

#[test]
fn table_plural_and_pattern_default_as_in_the_yaml() {
    assert_eq!(Contact::META.plural, "contacts");
    assert_eq!(Contact::META.table, "contacts");
    assert_eq!(Contact::META.pattern, None);
    assert_eq!(
        (Contact::META.writes, SalesOpportunity::META.writes),
        (true, false)
    );
    assert_eq!(SalesOpportunity::META.plural, "sales_opportunities_v2");
    assert_eq!(SalesOpportunity::META.table, "deals");
    assert_eq!(SalesOpportunity::META.pattern, Some("Synced"));
}

#[test]
fn fields_in_declaration_order() {
    let names: Vec<&str> = Contact::META
        .fields
        .iter()
        .map(|field| field.name)
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "email",
            "nickname",
            "age",
            "score",
            "notes",
            "isVip",
            "status",
            "previous_status",
            "balance",
            "born_on",
            "created_at",
            "extra",
            "labels",
            "settings",
            "type",
            "count",
        ]
    );
}

#[test]
fn inferred_types() {
    assert_eq!(field("id"), plain("id", "uuid"));
    assert_eq!(field("balance"), plain("balance", "decimal"));
    assert_eq!(field("created_at"), plain("created_at", "datetime"));
    assert_eq!(field("extra"), plain("extra", "json"));
    assert_eq!(field("labels"), plain("labels", "json"));
    assert_eq!(field("type"), plain("type", "string"));
    assert_eq!(field("count"), plain("count", "integer"));
}

#[test]
fn string_with_max_length_and_index() {
    assert_eq!(
        field("email"),
        FieldMeta {
            max_length: Some(255),
            index: true,
            ..plain("email", "string")
        }
    );
}

#[test]
fn option_is_inferred_through_and_nullable() {
    assert_eq!(
        field("nickname"),
        FieldMeta {
            nullable: true,
            ..plain("nickname", "string")
        }
    );
    assert_eq!(
        field("born_on"),
        FieldMeta {
            nullable: true,
            ..plain("born_on", "date")
        }
    );
}

#[test]
fn optional_and_nullable_combinations() {
    assert_eq!(
        field("age"),
        FieldMeta {
            required: false,
            ..plain("age", "integer")
        }
    );
    assert_eq!(
        field("score"),
        FieldMeta {
            required: false,
            nullable: true,
            ..plain("score", "integer")
        }
    );
    assert_eq!(
        field("notes"),
        FieldMeta {
            nullable: true,
            ..plain("notes", "string")
        }
    );
}

#[test]
fn serde_rename_is_the_wire_name() {
    assert_eq!(field("isVip"), plain("isVip", "boolean"));
}

#[test]
fn enum_fields_need_and_take_an_explicit_type() {
    assert_eq!(
        field("status"),
        FieldMeta {
            index: true,
            ..plain("status", "enum")
        }
    );
    assert_eq!(
        field("previous_status"),
        FieldMeta {
            nullable: true,
            ..plain("previous_status", "enum")
        }
    );
    assert_eq!(field("settings"), plain("settings", "json"));
}

#[allow(dead_code)]
#[derive(Serialize, herald::Entity)]
#[serde(rename_all = "camelCase")]
#[entity(name = "audit_note", description = "Free text attached to anything.")]
struct AuditNote {
    note_text: String,
    #[serde(rename = "by")]
    written_by: String,
}

#[test]
fn rename_all_and_defaults() {
    let meta = AuditNote::META;
    assert_eq!(meta.name, "audit_note");
    assert!(meta.emits.is_empty());
    assert_eq!(meta.description, Some("Free text attached to anything."));
    assert_eq!(
        meta.fields,
        [plain("noteText", "string"), plain("by", "string")]
    );
}

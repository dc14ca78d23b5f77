//! `herald_codegen::payload::json_schema` is the schema that `schemars` derives for the
//! payload struct the generator emits, which is what the runtime's registry validates with:
//! each struct below is written as `emit` writes it (same field types, attributes and docs).

#![allow(dead_code)]

use herald_codegen::{FileKind, SourceMap, check};
use schemars::JsonSchema;

const EVERY_TYPE: &str = "\
type: every_type
direction: inbound
description: One field of each payload type.
payload:
  id: { type: uuid }
  name: { type: string, description: What it is called }
  ratio: { type: number }
  count: { type: integer }
  done: { type: boolean }
  day: { type: date }
  at: { type: datetime }
  extra: { type: json }
  tags: { type: array, items: string }
  type: { type: string }
";

/// One field of each payload type.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct EveryType {
    id: uuid::Uuid,
    /// What it is called
    name: String,
    ratio: f64,
    count: i64,
    done: bool,
    day: chrono::DateTime<chrono::Utc>,
    at: chrono::DateTime<chrono::Utc>,
    extra: serde_json::Map<String, serde_json::Value>,
    tags: Vec<String>,
    #[serde(rename = "type")]
    type_: String,
}

const EVERY_NULLABLE: &str = "\
type: every_nullable
direction: inbound
payload:
  id: { type: uuid, nullable: true }
  name: { type: string, nullable: true }
  ratio: { type: number, nullable: true }
  count: { type: integer, nullable: true }
  done: { type: boolean, nullable: true }
  at: { type: datetime, nullable: true }
  extra: { type: json, nullable: true }
  ids: { type: array, items: uuid, nullable: true }
";

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct EveryNullable {
    id: Option<uuid::Uuid>,
    name: Option<String>,
    ratio: Option<f64>,
    count: Option<i64>,
    done: Option<bool>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
    ids: Option<Vec<uuid::Uuid>>,
}

fn computed(yaml: &str, event: &str) -> serde_json::Value {
    let mut sources = SourceMap::new();
    sources.add(FileKind::Event, format!("events/{event}.yaml"), yaml);
    let model = check(&sources).expect("valid");
    let event = model
        .events
        .iter()
        .find(|e| e.name == event)
        .expect("declared");
    herald_codegen::payload::json_schema(event)
}

#[test]
fn every_payload_type_matches_the_derived_schema() {
    assert_eq!(
        computed(EVERY_TYPE, "every_type"),
        schemars::schema_for!(EveryType).to_value()
    );
}

#[test]
fn every_nullable_payload_type_matches_the_derived_schema() {
    assert_eq!(
        computed(EVERY_NULLABLE, "every_nullable"),
        schemars::schema_for!(EveryNullable).to_value()
    );
}

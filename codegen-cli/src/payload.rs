//! The JSON Schema of an event's payload, computed from the model.
//!
//! At run time the registry derives the same schema with `schemars` from the generated struct
//! (`EventDescriptor::json_schema`, which validates `publish_json`). The generator cannot link
//! the runtime or the generated code, so it builds the schema that derive produces for the
//! struct it emits: `tests/payload_schema.rs` pins the two as equal, field type by field type.

use serde_json::{Map, Value, json};

use crate::model::{Event, PayloadField, PayloadType, Scalar};

/// The JSON Schema dialect `schemars` writes in `$schema`.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The payload's schema as the runtime's registry has it: `$schema`, the struct's name as
/// `title`, the event's description, one property per field, the non-nullable ones required,
/// and no other property (the struct denies unknown fields).
pub fn json_schema(event: &Event) -> Value {
    let mut schema = Map::new();
    schema.insert("$schema".into(), DIALECT.into());
    schema.extend(object_schema(event));
    Value::Object(schema)
}

/// [`json_schema`] without `$schema`, to embed in a document of another dialect (AsyncAPI's
/// schema object is a superset of draft-07, which every keyword used here belongs to).
pub fn embedded_json_schema(event: &Event) -> Value {
    Value::Object(object_schema(event))
}

fn object_schema(event: &Event) -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("title".into(), event.struct_name.clone().into());
    if let Some(description) = &event.description {
        schema.insert("description".into(), description.trim().into());
    }
    schema.insert("type".into(), "object".into());
    let properties: Map<String, Value> = event
        .fields
        .iter()
        .map(|field| (field.key.clone(), field_schema(field)))
        .collect();
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("additionalProperties".into(), false.into());
    // `Option` fields may be left out: serde reads a missing one as `None`.
    let required: Vec<Value> = event
        .fields
        .iter()
        .filter(|field| !field.nullable)
        .map(|field| field.key.clone().into())
        .collect();
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema
}

fn field_schema(field: &PayloadField) -> Value {
    let mut schema = match field.ty {
        PayloadType::Scalar(scalar) => scalar_schema(scalar),
        // `serde_json::Map<String, Value>`: an object of anything.
        PayloadType::Json => json!({ "type": "object", "additionalProperties": true }),
        PayloadType::Array(item) => json!({ "type": "array", "items": scalar_schema(item) }),
    };
    if field.nullable
        && let Some(ty) = schema.get_mut("type")
    {
        *ty = json!([ty.take(), "null"]);
    }
    if let (Some(description), Value::Object(object)) = (&field.description, &mut schema) {
        object.insert("description".into(), description.trim().into());
    }
    schema
}

/// The Rust type each scalar becomes (see `emit::scalar_type`) as `schemars` describes it.
/// `date` is a `DateTime<Utc>` in the generated code, so it is a date-time on the wire.
fn scalar_schema(scalar: Scalar) -> Value {
    match scalar {
        Scalar::Uuid => json!({ "type": "string", "format": "uuid" }),
        Scalar::String => json!({ "type": "string" }),
        Scalar::Number => json!({ "type": "number", "format": "double" }),
        Scalar::Integer => json!({ "type": "integer", "format": "int64" }),
        Scalar::Boolean => json!({ "type": "boolean" }),
        Scalar::Date | Scalar::DateTime => json!({ "type": "string", "format": "date-time" }),
    }
}

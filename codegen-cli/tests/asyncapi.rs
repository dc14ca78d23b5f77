//! The generated AsyncAPI documents are valid by the official AsyncAPI 3.0.0 JSON Schema
//! (vendored in `tests/fixtures/`, see its README), and a broken one is not: the validation
//! would catch a document that drifted from the specification.

use std::path::Path;

use herald_codegen::asyncapi::{AsyncApiOptions, SubjectTemplate, asyncapi_document};
use herald_codegen::{Model, check, load_sources};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asyncapi-3.0.0.schema.json"),
    )
    .expect("the vendored schema");
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema");
    // Every `$ref` of the schema is internal (`#/definitions/...`): building the validator
    // resolves them all, and with no resolver compiled in it could fetch none.
    jsonschema::draft7::new(&schema).expect("the AsyncAPI schema compiles")
}

fn errors(validator: &jsonschema::Validator, document: &Value) -> Vec<String> {
    validator
        .iter_errors(document)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

fn model(dir: &str) -> Model {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let sources = load_sources(&root.join("events"), &root.join("entities")).expect("readable");
    check(&sources).expect("valid")
}

#[test]
fn the_documents_of_the_shop_and_example_domains_are_valid_asyncapi_3() {
    let validator = validator();
    let parameterized = AsyncApiOptions {
        subjects: SubjectTemplate::parse("shop.{tenant}.{aggregate_type}.{aggregate_id}.{type}")
            .expect("valid"),
        ..AsyncApiOptions::default()
    };
    for (dir, options) in [
        ("tests/fixtures/shop", AsyncApiOptions::default()),
        ("tests/fixtures/shop", parameterized),
        ("..", AsyncApiOptions::default()),
    ] {
        let document = asyncapi_document(&model(dir), &options);
        assert_eq!(errors(&validator, &document), Vec::<String>::new(), "{dir}");
    }
}

#[test]
fn the_committed_document_is_valid_asyncapi_3() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi.json"),
    )
    .expect("docs/asyncapi.json");
    let document: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(errors(&validator(), &document), Vec::<String>::new());
}

/// Makes a valid document invalid in one way.
type Break = fn(&mut Value);

/// Each break is one the schema forbids; each must be caught on its own.
#[test]
fn broken_documents_fail_validation() {
    let validator = validator();
    let valid = asyncapi_document(&model("tests/fixtures/shop"), &AsyncApiOptions::default());
    let breaks: [(&str, Break); 5] = [
        ("no info", |d| {
            d.as_object_mut().expect("object").remove("info");
        }),
        ("an AsyncAPI 2 verb", |d| {
            d["operations"]["send_order_created"]["action"] = json!("publish");
        }),
        ("a channel reference that is a string", |d| {
            d["operations"]["send_order_created"]["channel"] = json!("#/channels/order_created");
        }),
        ("an unknown message field", |d| {
            d["components"]["messages"]["order_created"]["body"] = json!({});
        }),
        ("headers that are not a schema", |d| {
            d["components"]["messages"]["order_created"]["headers"] = json!(42);
        }),
    ];
    for (name, break_it) in breaks {
        let mut document = valid.clone();
        break_it(&mut document);
        assert!(
            !errors(&validator, &document).is_empty(),
            "{name}: the broken document passed validation"
        );
    }
}

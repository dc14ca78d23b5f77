//! The generated code for the repository's example domain, pinned file by file.

use std::path::{Path, PathBuf};

use herald_codegen::output::check_files;
use herald_codegen::schema::{Format, json_schema_text};
use herald_codegen::{FileKind, Generator, Layout, Options, SourceMap, generate, load_sources};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example domain with paths as the CLI shows them (relative to the repository root).
fn example_sources() -> SourceMap {
    let loaded = load_sources(&repo().join("events"), &repo().join("entities"))
        .expect("example domain is readable");
    let mut sources = SourceMap::new();
    for id in loaded.ids() {
        let file = loaded.file(id);
        let relative = file
            .path
            .strip_prefix(repo())
            .expect("inside the repository")
            .to_owned();
        sources.add(file.kind, relative, file.contents.clone());
    }
    sources
}

#[test]
fn example_domain_tree_layout() {
    let files =
        generate(&example_sources(), &Options::default()).expect("the example domain is valid");
    let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    insta::assert_snapshot!("tree_layout_files", paths.join("\n"));
    for file in files {
        let name = file.path.display().to_string().replace(['/', '\\'], "__");
        insta::assert_snapshot!(name, file.contents);
    }
}

#[test]
fn example_domain_single_file_layout() {
    let options = Options {
        layout: Layout::SingleFile,
        generator: Generator::BuildScript,
    };
    let files = generate(&example_sources(), &options).expect("the example domain is valid");
    assert_eq!(files.len(), 1);
    insta::assert_snapshot!("single_file_layout", files[0].contents);
}

#[test]
fn output_does_not_depend_on_the_order_files_are_read_in() {
    let sources = example_sources();
    let mut reversed = SourceMap::new();
    let ids: Vec<_> = sources.ids().collect();
    for id in ids.into_iter().rev() {
        let file = sources.file(id);
        reversed.add(file.kind, file.path.clone(), file.contents.clone());
    }
    assert_eq!(
        generate(&sources, &Options::default()).expect("valid"),
        generate(&reversed, &Options::default()).expect("valid"),
    );
}

#[test]
fn checked_in_example_output_is_current() {
    let files =
        generate(&example_sources(), &Options::default()).expect("the example domain is valid");
    let stale = check_files(&repo().join("examples/crm/src/generated"), &files).expect("readable");
    assert!(
        stale.is_empty(),
        "run `cargo run -p codegen-cli generate` and commit the result: {stale:?}"
    );
}

#[test]
fn checked_in_json_schemas_are_current() {
    for (format, file) in [
        (Format::Event, "event.schema.json"),
        (Format::Entity, "entity.schema.json"),
    ] {
        let on_disk = std::fs::read_to_string(repo().join("schemas").join(file))
            .expect("schema is checked in");
        assert_eq!(
            on_disk,
            json_schema_text(format),
            "run `cargo run -p codegen-cli schema {format:?} > schemas/{file}` (lowercase)"
        );
    }
}

#[test]
fn an_empty_domain_generates_compilable_scaffolding() {
    let files = generate(&SourceMap::new(), &Options::default()).expect("nothing is valid");
    let root = files
        .iter()
        .find(|f| f.path == Path::new("mod.rs"))
        .expect("a root module");
    assert!(
        root.contents
            .contains("pub use self::app_event::{AppEvent, EventType};")
    );
    assert!(!root.contents.contains("aggregates"));
}

#[test]
fn keywords_and_foreign_keys_become_rust_names_and_keep_their_wire_keys() {
    let mut sources = SourceMap::new();
    sources.add(FileKind::Entity, "entities/deal.yaml", "entity: deal\n");
    sources.add(
        FileKind::Event,
        "events/deal_moved.yaml",
        "type: deal_moved\ndirection: change\naggregate: deal\npayload:\n  type: string\n  stageId: uuid\n",
    );
    let files = generate(&sources, &Options::default()).expect("valid");
    let event = files
        .iter()
        .find(|f| f.path == Path::new("events/deal_moved.rs"))
        .expect("the event's file");
    assert!(
        event
            .contents
            .contains("#[serde(rename = \"type\")]\n    pub type_: ::std::string::String,"),
        "{}",
        event.contents
    );
    assert!(
        event
            .contents
            .contains("#[serde(rename = \"stageId\")]\n    pub stage_id: ::herald::uuid::Uuid,"),
        "{}",
        event.contents
    );
}

/// The entity of issue 10, as the TypeScript ancestor's users write it, copied unchanged.
const ANCESTOR_CONTACT: &str = "\
entity:
  name: contact
  plural: contacts
  table: contacts
  pattern: Synced
fields:
  email: { type: string, required: true, max_length: 255, index: true }
  status: { type: enum, choices: [active, inactive, archived] }
  metadata: { type: json }
  score: { type: decimal, nullable: true }
behaviors: [timestamps, soft_delete]
relationships:
  account:
    type: belongs_to
    target: account
    foreign_key: account_id
emits: [contact_created]
";

const SHORT_CONTACT: &str = "\
entity: contact
fields:
  email: { type: string, required: true, max_length: 255, index: true }
  status: { type: enum, choices: [active, inactive, archived] }
  metadata: { type: json }
  score: { type: decimal, nullable: true }
behaviors: [timestamps, soft_delete]
relationships:
  account: { belongs_to: account }
emits: [contact_created]
";

fn domain(contact: &str) -> SourceMap {
    let mut sources = SourceMap::new();
    sources.add(FileKind::Entity, "entities/contact.yaml", contact);
    sources.add(
        FileKind::Entity,
        "entities/account.yaml",
        "entity: account\nrelationships:\n  contacts: { type: has_many, target: contact }\n",
    );
    sources.add(
        FileKind::Event,
        "events/contact_created.yaml",
        "type: contact_created\ndirection: change\naggregate: contact\npayload:\n  contact_id: { type: uuid }\n",
    );
    sources
}

#[test]
fn the_ancestors_entity_file_is_accepted_as_it_is() {
    let model = herald_codegen::check(&domain(ANCESTOR_CONTACT))
        .unwrap_or_else(|diagnostics| panic!("{}", diagnostics.render(&domain(ANCESTOR_CONTACT))));
    let contact = &model.entities[1];
    assert_eq!(
        (
            contact.name.as_str(),
            contact.plural.as_str(),
            contact.table.as_str()
        ),
        ("contact", "contacts", "contacts")
    );
    assert_eq!(contact.pattern.as_deref(), Some("Synced"));
    assert_eq!(contact.relationships[0].foreign_key, "account_id");
    assert_eq!(model.entities[0].relationships[0].foreign_key, "account_id");
}

#[test]
fn both_forms_give_the_same_model() {
    let long = herald_codegen::check(&domain(ANCESTOR_CONTACT)).expect("valid");
    let mut short = herald_codegen::check(&domain(SHORT_CONTACT)).expect("valid");
    // The short form cannot say `pattern`; everything else is the same.
    short.entities[1].pattern = Some("Synced".into());
    assert_eq!(long, short);
}

/// The payloads of `<entity>_created`/`_updated`/`_deleted` are bound to the row by name; what
/// matches no column is an argument of the write; a read-only entity binds nothing.
#[test]
fn emitted_payloads_are_bound_to_the_row_by_name() {
    use herald_codegen::model::{Source, Write};
    type Bound = Vec<(String, Source)>;
    let model = herald_codegen::check(&example_sources()).expect("valid");
    let bindings = |entity: &str| -> Vec<(Write, String, Bound)> {
        let entity = model
            .entities
            .iter()
            .find(|e| e.name == entity)
            .expect("entity");
        entity
            .emit_bindings
            .iter()
            .map(|b| {
                (
                    b.write,
                    b.event.clone(),
                    b.fields
                        .iter()
                        .map(|f| (f.key.clone(), f.source.clone()))
                        .collect(),
                )
            })
            .collect()
    };
    let column = |c: &str| Source::Column(c.into());
    assert_eq!(
        bindings("contact"),
        [
            (
                Write::Insert,
                "contact_created".into(),
                vec![
                    ("contact_id".into(), Source::Id),
                    ("account_id".into(), column("account_id")),
                    ("created_by".into(), Source::Actor),
                ]
            ),
            (
                Write::Update,
                "contact_updated".into(),
                vec![
                    ("contact_id".into(), Source::Id),
                    ("email".into(), column("email")),
                    ("name".into(), column("name")),
                    ("tags".into(), Source::Argument),
                    ("updated_by".into(), Source::Actor),
                ]
            ),
        ]
    );
    assert_eq!(
        bindings("account"),
        [(
            Write::Insert,
            "account_created".into(),
            vec![
                ("account_id".into(), Source::Id),
                ("name".into(), column("name")),
                // An enum column fills a string with the choice's wire value.
                ("plan".into(), column("plan")),
            ]
        )]
    );
    assert!(bindings("opportunity").is_empty());
}

/// A kept file is the declaration as it was, copied from git: only its payload shape is
/// read, so routing that no longer holds (an entity since renamed) is not an error, and it
/// adds no event of its own.
#[test]
fn a_kept_version_is_a_payload_shape_not_an_event() {
    let mut sources = SourceMap::new();
    sources.add(FileKind::Entity, "entities/deal.yaml", "entity: deal\n");
    sources.add(
        FileKind::Event,
        "events/deal_moved.yaml",
        "type: deal_moved\ndirection: change\naggregate: deal\nversion: 2\npayload:\n  deal_id: uuid\n  stage: string\n",
    );
    sources.add(
        FileKind::Event,
        "events/deal_moved.v1.yaml",
        "type: deal_moved\ndirection: change\naggregate: opportunity\npool: events_change_bulk\npayload:\n  deal_id: uuid\n",
    );
    let model = herald_codegen::check(&sources).expect("valid");
    assert_eq!(model.events.len(), 1);
    let kept = &model.events[0].kept;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].version, kept[0].struct_name.as_str()),
        (1, "DealMovedV1")
    );
    let files = generate(&sources, &Options::default()).expect("valid");
    let app_event = files
        .iter()
        .find(|f| f.path == Path::new("app_event.rs"))
        .expect("the AppEvent file");
    assert!(
        !app_event.contents.contains("DealMovedV1"),
        "{}",
        app_event.contents
    );
}

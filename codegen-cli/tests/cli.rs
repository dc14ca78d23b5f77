//! The `codegen-cli` binary as a user runs it: exit codes, `--check`, a failed run leaving
//! output untouched, scaffolding that never overwrites.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const CONTACT_ENTITY: &str = "entity: contact\nfields:\n  email: { type: string }\n";
const CONTACT_CREATED: &str = "type: contact_created\ndirection: change\naggregate: contact\npayload:\n  contact_id: { type: uuid }\n";

fn codegen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegen-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A project with `codegen.yaml`, one entity and one event.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("events")).expect("mkdir");
    fs::create_dir_all(dir.path().join("entities")).expect("mkdir");
    fs::write(dir.path().join("codegen.yaml"), "out: src/generated\n").expect("config");
    fs::write(dir.path().join("entities/contact.yaml"), CONTACT_ENTITY).expect("entity");
    fs::write(
        dir.path().join("events/contact_created.yaml"),
        CONTACT_CREATED,
    )
    .expect("event");
    dir
}

fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((
                    path.display().to_string(),
                    fs::read_to_string(&path).expect("utf-8"),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn generate_then_check_passes_and_a_yaml_change_makes_check_fail() {
    let project = project();
    let generated = codegen(project.path(), &["generate"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(
        project
            .path()
            .join("src/generated/events/contact_created.rs")
            .exists()
    );

    let check = codegen(project.path(), &["generate", "--check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    fs::write(
        project.path().join("events/contact_created.yaml"),
        CONTACT_CREATED.replace(
            "contact_id: { type: uuid }",
            "contact_id: { type: uuid }\n  note: string",
        ),
    )
    .expect("edit");
    fs::write(
        project.path().join("events/contact_deleted.yaml"),
        CONTACT_CREATED.replace("created", "deleted"),
    )
    .expect("new event");
    let before = snapshot(&project.path().join("src/generated"));
    let check = codegen(project.path(), &["generate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    let report = stderr(&check);
    assert!(
        report.contains("outdated:") && report.contains("contact_created.rs"),
        "{report}"
    );
    assert!(
        report.contains("missing:") && report.contains("contact_deleted.rs"),
        "{report}"
    );
    assert!(
        report.contains("cargo run -p codegen-cli generate"),
        "names the fix: {report}"
    );
    assert_eq!(
        before,
        snapshot(&project.path().join("src/generated")),
        "--check writes nothing"
    );
}

#[test]
fn deleting_an_event_deletes_its_generated_file() {
    let project = project();
    fs::write(
        project.path().join("events/contact_deleted.yaml"),
        CONTACT_CREATED.replace("created", "deleted"),
    )
    .expect("event");
    assert!(codegen(project.path(), &["generate"]).status.success());
    fs::remove_file(project.path().join("events/contact_deleted.yaml")).expect("rm");
    let output = codegen(project.path(), &["generate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !project
            .path()
            .join("src/generated/events/contact_deleted.rs")
            .exists()
    );
    assert!(
        codegen(project.path(), &["generate", "--check"])
            .status
            .success()
    );
}

#[test]
fn bad_yaml_exits_1_reports_every_problem_and_leaves_output_untouched() {
    let project = project();
    assert!(codegen(project.path(), &["generate"]).status.success());
    let before = snapshot(&project.path().join("src/generated"));

    fs::write(
        project.path().join("events/contact_created.yaml"),
        CONTACT_CREATED.replace("direction", "diretion"),
    )
    .expect("typo");
    fs::write(
        project.path().join("events/broken.yaml"),
        "type: broken\npayload: [\n",
    )
    .expect("syntax error");
    let output = codegen(project.path(), &["generate"]);
    assert_eq!(output.status.code(), Some(1));
    let report = stderr(&output);
    assert!(
        report.contains("events/contact_created.yaml:2:1"),
        "{report}"
    );
    assert!(report.contains("did you mean `direction`?"), "{report}");
    assert!(report.contains("events/broken.yaml"), "{report}");
    assert!(report.contains("nothing was written"), "{report}");
    assert_eq!(before, snapshot(&project.path().join("src/generated")));

    let validate = codegen(project.path(), &["validate"]);
    assert_eq!(validate.status.code(), Some(1));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let project = project();
    let missing_dir = codegen(project.path(), &["generate", "--events", "nowhere"]);
    assert_eq!(missing_dir.status.code(), Some(2));
    assert!(stderr(&missing_dir).contains("nowhere is not a directory"));

    fs::remove_file(project.path().join("codegen.yaml")).expect("rm");
    let no_out = codegen(project.path(), &["generate"]);
    assert_eq!(no_out.status.code(), Some(2));
    assert!(stderr(&no_out).contains("--out DIR"), "{}", stderr(&no_out));

    fs::write(
        project.path().join("codegen.yaml"),
        "output: src/generated\n",
    )
    .expect("config");
    let bad_config = codegen(project.path(), &["generate"]);
    assert_eq!(bad_config.status.code(), Some(2));
    assert!(
        stderr(&bad_config).contains("codegen.yaml"),
        "{}",
        stderr(&bad_config)
    );

    let bad_flag = codegen(project.path(), &["generate", "--frobnicate"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn new_scaffolds_valid_declarations_and_never_overwrites() {
    let project = project();
    let event = codegen(
        project.path(),
        &[
            "new",
            "event",
            "contact_archived",
            "--direction",
            "change",
            "--aggregate",
            "contact",
        ],
    );
    assert!(event.status.success(), "{}", stderr(&event));
    let entity = codegen(project.path(), &["new", "entity", "deal"]);
    assert!(entity.status.success(), "{}", stderr(&entity));
    let inbound = codegen(
        project.path(),
        &["new", "event", "invoice_paid", "--direction", "inbound"],
    );
    assert!(inbound.status.success(), "{}", stderr(&inbound));
    let validate = codegen(project.path(), &["validate"]);
    assert!(
        validate.status.success(),
        "scaffolds must be valid: {}",
        stderr(&validate)
    );

    let written =
        fs::read_to_string(project.path().join("events/contact_archived.yaml")).expect("written");
    fs::write(
        project.path().join("events/contact_archived.yaml"),
        format!("{written}# edited\n"),
    )
    .expect("edit");
    let again = codegen(
        project.path(),
        &[
            "new",
            "event",
            "contact_archived",
            "--direction",
            "change",
            "--aggregate",
            "contact",
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert!(
        fs::read_to_string(project.path().join("events/contact_archived.yaml"))
            .expect("kept")
            .ends_with("# edited\n")
    );

    let no_aggregate = codegen(
        project.path(),
        &["new", "event", "contact_merged", "--direction", "change"],
    );
    assert_eq!(no_aggregate.status.code(), Some(2));
    assert!(stderr(&no_aggregate).contains("--aggregate"));
    let bad_name = codegen(project.path(), &["new", "entity", "DealStage"]);
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(
        stderr(&bad_name).contains("deal_stage"),
        "{}",
        stderr(&bad_name)
    );
}

#[test]
fn schema_prints_json_schema() {
    let project = project();
    let output = codegen(project.path(), &["schema", "event"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(schema["title"], "Herald event");
    assert!(schema["properties"]["direction"].is_object());
}

#[test]
fn build_rs_builder_fails_with_the_rendered_report_and_writes_nothing() {
    let project = project();
    fs::write(
        project.path().join("events/contact_created.yaml"),
        CONTACT_CREATED.replace("uuid", "guid"),
    )
    .expect("bad type");
    let out = project.path().join("out");
    let err = herald_codegen::Builder::new()
        .events_dir(project.path().join("events"))
        .entities_dir(project.path().join("entities"))
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile()
        .expect_err("bad input");
    let shown = format!("{err:?}");
    assert!(shown.contains("error[unknown-field-type]"), "{shown}");
    assert!(shown.contains("contact_created.yaml:5:"), "{shown}");
    assert!(shown.contains("did you mean `uuid`?"), "{shown}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn build_rs_builder_writes_one_includable_file() {
    let project = project();
    let out = project.path().join("out");
    herald_codegen::Builder::new()
        .events_dir(project.path().join("events"))
        .entities_dir(project.path().join("entities"))
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile()
        .expect("valid input");
    let generated = fs::read_to_string(out.join("herald.rs")).expect("herald.rs");
    assert!(generated.starts_with("// @generated"));
    assert!(generated.contains("pub mod events {"));
}

#[test]
fn migrations_are_written_checked_and_refused_when_destructive() {
    let project = project();
    let migrations = project.path().join("migrations");
    let generated = codegen(project.path(), &["generate"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    for db in ["sqlite", "postgres"] {
        for file in ["0001_create_contacts.sql", "schema.sql", "snapshot.json"] {
            assert!(migrations.join(db).join(file).is_file(), "{db}/{file}");
        }
    }

    // A new field: `--check` names the migration that is missing, `generate` writes it.
    fs::write(
        project.path().join("entities/contact.yaml"),
        format!("{CONTACT_ENTITY}  phone: {{ type: string, nullable: true }}\n"),
    )
    .expect("edit");
    let check = codegen(project.path(), &["generate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    let report = stderr(&check);
    assert!(
        report.contains("missing migration:") && report.contains("0002_alter_contacts.sql"),
        "{report}"
    );
    assert!(
        report.contains("outdated:") && report.contains("schema.sql"),
        "{report}"
    );
    let generated = codegen(project.path(), &["generate"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(stderr(&generated).contains("`contacts`: add column `phone`"));
    assert!(
        codegen(project.path(), &["generate", "--check"])
            .status
            .success()
    );

    // Dropping a field is refused, and nothing is written, the Rust included.
    let before = snapshot(project.path());
    fs::write(
        project.path().join("entities/contact.yaml"),
        "entity: contact\n",
    )
    .expect("edit");
    let refused = codegen(project.path(), &["generate"]);
    assert_eq!(refused.status.code(), Some(1));
    let report = stderr(&refused);
    assert!(report.contains("no longer has field `email`"), "{report}");
    assert!(
        report.contains("ALTER TABLE contacts DROP COLUMN email;"),
        "{report}"
    );
    assert!(report.contains("0003_<describe>.sql"), "{report}");
    assert!(report.contains("--hand-written-migrations"), "{report}");
    let mut after = snapshot(project.path());
    after.retain(|(path, _)| !path.ends_with("contact.yaml"));
    let mut expected = before.clone();
    expected.retain(|(path, _)| !path.ends_with("contact.yaml"));
    assert_eq!(expected, after, "a refused run writes nothing");
    assert_eq!(
        codegen(project.path(), &["generate", "--check"])
            .status
            .code(),
        Some(1)
    );

    // Written by hand, then recorded.
    let no_hand_written = codegen(project.path(), &["generate", "--hand-written-migrations"]);
    assert_eq!(no_hand_written.status.code(), Some(1));
    for db in ["sqlite", "postgres"] {
        fs::write(
            migrations.join(db).join("0003_drop_email_and_phone.sql"),
            "ALTER TABLE contacts DROP COLUMN email;\nALTER TABLE contacts DROP COLUMN phone;\n",
        )
        .expect("hand-written");
    }
    let recorded = codegen(project.path(), &["generate", "--hand-written-migrations"]);
    assert!(recorded.status.success(), "{}", stderr(&recorded));
    assert!(
        fs::read_to_string(migrations.join("sqlite/snapshot.json"))
            .expect("snapshot")
            .contains("\"migration\": 3")
    );
    let check = codegen(project.path(), &["generate", "--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn databases_and_the_migrations_directory_come_from_codegen_yaml() {
    let project = project();
    fs::write(
        project.path().join("codegen.yaml"),
        "out: src/generated\nmigrations: db\ndatabases: [postgres]\n",
    )
    .expect("config");
    let generated = codegen(project.path(), &["generate"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(
        project
            .path()
            .join("db/postgres/0001_create_contacts.sql")
            .is_file()
    );
    assert!(!project.path().join("db/sqlite").exists());
    assert!(!project.path().join("migrations").exists());

    fs::write(
        project.path().join("codegen.yaml"),
        "out: src/generated\ndatabases: [oracle]\n",
    )
    .expect("config");
    let bad = codegen(project.path(), &["generate"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("unknown database `oracle`"),
        "{}",
        stderr(&bad)
    );
}

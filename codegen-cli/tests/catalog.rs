//! `codegen-cli catalog` and `codegen-cli asyncapi` as a user runs them, on the small domain of
//! `tests/fixtures/shop/`: the documents are pinned, `--check` fails on a stale file naming it
//! and the command that fixes it, and bad configuration is reported naming what is wrong.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = "\
catalog: docs/catalog.md
jobs: [src]
asyncapi:
  out: docs/asyncapi.json
  title: Shop
  version: 2.1.0
";

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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("readable") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("named"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

/// A copy of the shop domain with `codegen.yaml`.
fn shop(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop");
    copy_dir(&fixture, dir.path());
    fs::write(dir.path().join("codegen.yaml"), config).expect("config");
    dir
}

fn run_ok(dir: &Path, args: &[&str]) {
    let output = codegen(dir, args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
}

#[test]
fn catalog_of_the_shop_domain() {
    let project = shop(CONFIG);
    run_ok(project.path(), &["catalog"]);
    let catalog = fs::read_to_string(project.path().join("docs/catalog.md")).expect("written");
    insta::assert_snapshot!("shop_catalog", catalog);
}

#[test]
fn asyncapi_of_the_shop_domain() {
    let project = shop(CONFIG);
    run_ok(project.path(), &["asyncapi"]);
    let document = fs::read_to_string(project.path().join("docs/asyncapi.json")).expect("written");
    insta::assert_snapshot!("shop_asyncapi", document);
}

/// A template with per-event placeholders makes channel parameters.
#[test]
fn a_subject_template_with_the_aggregate_id_makes_a_channel_parameter() {
    let project = shop(&format!(
        "{CONFIG}  subjects: shop.{{aggregate_type}}.{{aggregate_id}}.{{type}}\n"
    ));
    run_ok(project.path(), &["asyncapi", "--out", "api.json"]);
    let document: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(project.path().join("api.json")).expect("written"),
    )
    .expect("JSON");
    let channel = &document["channels"]["receipt_sent"];
    assert_eq!(channel["address"], "shop.order.{aggregate_id}.receipt_sent");
    assert!(channel["parameters"]["aggregate_id"]["description"].is_string());
    // No aggregate: the relay writes `_`.
    assert_eq!(
        document["channels"]["receipt_audited"]["address"],
        "shop._.{aggregate_id}.receipt_audited"
    );
}

#[test]
fn check_passes_when_current_and_names_the_stale_file_otherwise() {
    let project = shop(CONFIG);
    for command in ["catalog", "asyncapi"] {
        let check = codegen(project.path(), &[command, "--check"]);
        assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
        run_ok(project.path(), &[command]);
        run_ok(project.path(), &[command, "--check"]);
        // Writing again changes nothing.
        let again = codegen(project.path(), &[command]);
        assert!(
            stderr(&again).starts_with("unchanged:"),
            "{}",
            stderr(&again)
        );
    }

    let event = project.path().join("events/receipt_sent.yaml");
    let yaml = fs::read_to_string(&event).expect("readable");
    fs::write(&event, format!("{yaml}  template: {{ type: string }}\n")).expect("edit");
    let mut report = String::new();
    for command in ["catalog", "asyncapi"] {
        let check = codegen(project.path(), &[command, "--check"]);
        assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
        report.push_str(&stderr(&check));
    }
    insta::assert_snapshot!("check_stale", report);
    // `--check` wrote nothing.
    run_ok(project.path(), &["catalog"]);
    let catalog = fs::read_to_string(project.path().join("docs/catalog.md")).expect("written");
    assert!(catalog.contains("| `template` | string | no |"));
}

#[test]
fn a_missing_jobs_path_is_named() {
    let project = shop("jobs: [src, src/workers]\n");
    let output = codegen(project.path(), &["catalog"]);
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!("missing_jobs_path", stderr(&output));
    assert!(!project.path().join("docs/catalog.md").exists());
}

#[test]
fn an_unknown_trigger_fails_with_its_place_and_writes_nothing() {
    let project = shop(CONFIG);
    let jobs = project.path().join("src/jobs.rs");
    let rust = fs::read_to_string(&jobs).expect("readable");
    fs::write(&jobs, rust.replace("[PaymentCaptured]", "[PaymentCapture]")).expect("edit");
    let output = codegen(project.path(), &["catalog"]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!("unknown_trigger", stderr(&output));
    assert!(!project.path().join("docs/catalog.md").exists());
}

#[test]
fn bad_configuration_is_reported() {
    let cases = [
        ("unknown_key", format!("{CONFIG}catalogue: x.md\n")),
        (
            "bad_subjects",
            format!("{CONFIG}  subjects: herald.{{direction}}.{{kind}}\n"),
        ),
        (
            "unknown_asyncapi_key",
            "asyncapi: { file: a.json }\n".to_owned(),
        ),
    ];
    let mut report = String::new();
    for (name, config) in cases {
        let project = shop(&config);
        let command = if name == "unknown_key" {
            "catalog"
        } else {
            "asyncapi"
        };
        let output = codegen(project.path(), &[command]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stderr(&output));
        report.push_str(&format!("# {name}\n{}\n", stderr(&output)));
    }
    insta::assert_snapshot!("bad_configuration", report);
}

/// The repository's own `docs/` are those of its example domain, as `--check` does in CI.
#[test]
fn the_committed_documents_of_the_example_domain_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for command in ["catalog", "asyncapi"] {
        let check = codegen(&root, &[command, "--check"]);
        assert!(check.status.success(), "{command}: {}", stderr(&check));
    }
}

//! Every rule of the YAML format, fed a fixture that breaks it. Each directory under
//! `tests/bad/` is named `<code>` or `<code>--<variant>` and holds `events/` and `entities/`;
//! the rendered report is pinned in `snapshots/`, and the rule's code must be among those
//! reported.

use std::path::Path;

use herald_codegen::{Options, SourceMap, generate};

fn load(dir: &Path) -> SourceMap {
    // Paths relative to the fixture, as a user running the CLI in it would see them.
    let mut sources = SourceMap::new();
    for (kind, sub) in [
        (herald_codegen::FileKind::Entity, "entities"),
        (herald_codegen::FileKind::Event, "events"),
    ] {
        for path in
            herald_codegen::yaml_files(&dir.join(sub)).expect("fixture directory is readable")
        {
            let contents = std::fs::read_to_string(&path).expect("fixture is readable");
            let relative = path
                .strip_prefix(dir)
                .expect("inside the fixture")
                .to_owned();
            sources.add(kind, relative, contents);
        }
    }
    sources
}

#[test]
fn every_rule_is_reported_with_its_fix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/bad exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect();
    cases.sort();
    assert!(cases.len() > 40, "the fixtures are missing");
    for case in cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let expected_code = name.split("--").next().unwrap_or_default();
        let sources = load(&case);
        let diagnostics = generate(&sources, &Options::default())
            .expect_err(&format!("{name}: bad input must not generate"));
        let codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
        if expected_code != "many-problems-at-once" {
            assert!(
                codes.contains(&expected_code),
                "{name}: expected `{expected_code}`, got {codes:?}"
            );
        }
        for diagnostic in diagnostics.iter() {
            assert!(
                diagnostic.help.is_some(),
                "{name}: `{}` says what is wrong but not what to do",
                diagnostic.code
            );
            assert!(
                diagnostic.location.span.line >= 1,
                "{name}: `{}` has no line",
                diagnostic.code
            );
        }
        insta::assert_snapshot!(name.clone(), diagnostics.render(&sources));
    }
}

#[test]
fn every_problem_of_every_file_is_reported_in_one_run() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad/many-problems-at-once");
    let sources = load(&case);
    let diagnostics = generate(&sources, &Options::default()).expect_err("bad input");
    let mut codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "audit-direction",
            "audit-pool",
            "invalid-version",
            // Reported as well as the misspelt `diretion`: the file really has no direction.
            "missing-direction",
            "missing-items",
            "unknown-behavior",
            "unknown-event",
            "unknown-field-type",
            "unknown-key",
        ]
    );
    let files: std::collections::BTreeSet<_> =
        diagnostics.iter().map(|d| d.location.file).collect();
    assert_eq!(files.len(), 3, "problems of all three files are reported");
}

/// A file that fails says so once: the files that refer to it (an event's `aggregate`, a
/// relationship's target, a `has_many` needing the target's `belongs_to`, an `emits:`) are not
/// checked against it, so that no error is reported that fixing that one file would not fix.
#[test]
fn a_broken_file_causes_no_errors_in_the_files_that_depend_on_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let cases: [(&str, &[&str]); 3] = [
        (
            "unreadable-entity",
            &["yaml-syntax: entity `contact` at entities/contact.yaml:6:9"],
        ),
        (
            "invalid-entity",
            &[
                "unknown-field-type: entity `contact` at entities/contact.yaml:5:18",
                "unsupported-key: entity `contact` at entities/contact.yaml:8:1",
            ],
        ),
        (
            "invalid-event",
            &[
                "missing-direction: event `contact_created` at events/contact_created.yaml:1:7",
                "yaml-syntax: event `contact_merged` at events/contact_merged.yaml:4:10",
            ],
        ),
    ];
    for (case, expected) in cases {
        let sources = load(&root.join(case));
        let diagnostics =
            generate(&sources, &Options::default()).expect_err("a broken domain fails");
        let found: Vec<String> = diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}: {} at {}:{}:{}",
                    d.code,
                    d.subject,
                    sources.path(d.location.file),
                    d.location.span.line,
                    d.location.span.column
                )
            })
            .collect();
        assert_eq!(found, expected, "{case}");
        insta::assert_snapshot!(format!("broken__{case}"), diagnostics.render(&sources));
    }
}

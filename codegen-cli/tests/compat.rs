//! `codegen-cli check --against <ref>` in a throwaway git repository: one base commit, then
//! one commit per kind of change, compared with the commit before it. Each report is pinned:
//! it is what a reviewer reads in CI.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use herald_codegen::compat::{self, Compatibility, Declarations, FindingKind, PayloadChange};
use herald_codegen::{FileKind, SourceMap};

const CONTACT: &str = "entity: contact\nfields:\n  email: { type: string }\n";

const CONTACT_UPDATED: &str = "\
type: contact_updated
direction: change
aggregate: contact
version: 2
payload:
  contact_id: { type: uuid }
  email: { type: string, nullable: true }
  tags: { type: array, items: string }
  score: { type: integer }
";

const CONTACT_ARCHIVED: &str = "\
type: contact_archived
direction: change
aggregate: contact
payload:
  contact_id: { type: uuid }
  reason: { type: string, nullable: true }
";

/// A git repository holding the base domain in its first commit.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.write("entities/contact.yaml", CONTACT);
        repo.write("events/contact_updated.yaml", CONTACT_UPDATED);
        repo.write("events/contact_archived.yaml", CONTACT_ARCHIVED);
        repo.commit("base");
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) {
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn write(&self, path: &str, contents: &str) {
        let path = self.path().join(path);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(path, contents).expect("write");
    }

    fn remove(&self, path: &str) {
        fs::remove_file(self.path().join(path)).expect("remove");
    }

    /// Replaces `from` by `to` in `path`, which must contain it.
    fn edit(&self, path: &str, from: &str, to: &str) {
        let full = self.path().join(path);
        let text = fs::read_to_string(&full).expect("read");
        assert!(text.contains(from), "{path} has no {from:?}");
        fs::write(full, text.replacen(from, to, 1)).expect("write");
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    }

    /// `codegen-cli check --against HEAD~1` after committing the working tree.
    fn check_last_commit(&self, message: &str) -> Output {
        self.commit(message);
        codegen(self.path(), &["check", "--against", "HEAD~1"])
    }
}

fn codegen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegen-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn report(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs one change and pins its report; `passes` is whether the change is accepted.
fn assert_change(repo: &Repo, name: &str, passes: bool) {
    let output = repo.check_last_commit(name);
    let text = report(&output);
    let code = output.status.code();
    assert_eq!(code, Some(if passes { 0 } else { 1 }), "{name}:\n{text}");
    insta::assert_snapshot!(name, text);
}

#[test]
fn nothing_changed() {
    let repo = Repo::new();
    assert_change(&repo, "nothing_changed", true);
}

#[test]
fn type_changed() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    assert_change(&repo, "type_changed", false);
}

#[test]
fn required_field_added() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "  score: { type: integer }\n",
        "  score: { type: integer }\n  source: { type: string }\n",
    );
    assert_change(&repo, "required_field_added", false);
}

#[test]
fn optional_field_added_passes() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "  score: { type: integer }\n",
        "  score: { type: integer }\n  source: { type: string, nullable: true }\n",
    );
    assert_change(&repo, "optional_field_added", true);
}

#[test]
fn field_removed() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "  email: { type: string, nullable: true }\n",
        "",
    );
    assert_change(&repo, "field_removed", false);
}

#[test]
fn nullable_to_non_null() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "email: { type: string, nullable: true }",
        "email: { type: string }",
    );
    assert_change(&repo, "nullable_to_non_null", false);
}

#[test]
fn items_changed() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "items: string",
        "items: uuid",
    );
    assert_change(&repo, "items_changed", false);
}

/// An `i64` stored is read by an `f64`; a `Uuid` stored is read by a `String`.
#[test]
fn widening_passes_backward() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "score: { type: integer }",
        "score: { type: number }",
    );
    repo.edit(
        "events/contact_archived.yaml",
        "contact_id: { type: uuid }",
        "contact_id: string",
    );
    assert_change(&repo, "widening", true);
}

#[test]
fn version_bumped_passes_with_the_upcaster_to_write() {
    let repo = Repo::new();
    repo.edit("events/contact_updated.yaml", "version: 2", "version: 3");
    repo.edit(
        "events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    repo.edit(
        "events/contact_updated.yaml",
        "  email: { type: string, nullable: true }\n",
        "",
    );
    assert_change(&repo, "version_bumped", true);
}

/// The team keeps version 2 as `git show HEAD:events/contact_updated.yaml` before bumping it:
/// the kept file is no event of its own (nothing is reported removed or added), and the note
/// names the typed upcaster to write instead of `bus.upcast`.
#[test]
fn a_kept_version_names_its_typed_upcaster() {
    let repo = Repo::new();
    repo.write("events/contact_updated.v2.yaml", CONTACT_UPDATED);
    repo.edit("events/contact_updated.yaml", "version: 2", "version: 3");
    repo.edit(
        "events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    assert_change(&repo, "kept_version_bumped", true);
    // Deleting the kept file later leaves the current declarations as they were.
    repo.remove("events/contact_updated.v2.yaml");
    assert_change(&repo, "kept_version_deleted", true);
}

#[test]
fn version_decreased() {
    let repo = Repo::new();
    repo.edit("events/contact_updated.yaml", "version: 2", "version: 1");
    assert_change(&repo, "version_decreased", false);
}

#[test]
fn event_deleted() {
    let repo = Repo::new();
    repo.remove("events/contact_archived.yaml");
    assert_change(&repo, "event_deleted", false);
}

#[test]
fn event_renamed() {
    let repo = Repo::new();
    repo.remove("events/contact_archived.yaml");
    repo.write(
        "events/contact_removed.yaml",
        &CONTACT_ARCHIVED.replace("contact_archived", "contact_removed"),
    );
    assert_change(&repo, "event_renamed", false);
}

#[test]
fn compatibility_none_passes() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "version: 2\n",
        "version: 2\ncompatibility: none\n",
    );
    repo.edit(
        "events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    assert_change(&repo, "compatibility_none", true);
}

/// Under `forward`, consumers of the old struct read new events: a new key breaks them,
/// refusing a null they never sent does not.
#[test]
fn forward_mode() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_archived.yaml",
        "aggregate: contact\n",
        "aggregate: contact\ncompatibility: forward\n",
    );
    repo.commit("forward");
    repo.edit(
        "events/contact_archived.yaml",
        "reason: { type: string, nullable: true }",
        "reason: { type: string }\n  archived_by: { type: uuid, nullable: true }",
    );
    assert_change(&repo, "forward_mode", false);
}

/// A bump accepts a forward break, and the note says old consumers cannot read the new events.
#[test]
fn forward_mode_with_a_bump() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_archived.yaml",
        "aggregate: contact\n",
        "aggregate: contact\ncompatibility: forward\n",
    );
    repo.commit("forward");
    repo.edit(
        "events/contact_archived.yaml",
        "aggregate: contact\n",
        "aggregate: contact\nversion: 2\n",
    );
    repo.edit(
        "events/contact_archived.yaml",
        "  reason: { type: string, nullable: true }\n",
        "  reason: { type: string, nullable: true }\n  archived_by: { type: uuid }\n",
    );
    assert_change(&repo, "forward_mode_bumped", true);
}

/// `compatibility: full` in codegen.yaml applies to every event that does not say.
#[test]
fn full_mode_from_the_project_default() {
    let repo = Repo::new();
    repo.write("codegen.yaml", "compatibility: full\n");
    repo.commit("full");
    repo.edit(
        "events/contact_updated.yaml",
        "score: { type: integer }",
        "score: { type: integer, nullable: true }",
    );
    repo.edit(
        "events/contact_archived.yaml",
        "reason: { type: string, nullable: true }",
        "reason: { type: string }",
    );
    assert_change(&repo, "full_mode", false);
}

#[test]
fn every_problem_is_reported_at_once() {
    let repo = Repo::new();
    repo.remove("events/contact_archived.yaml");
    repo.edit("events/contact_updated.yaml", "version: 2\n", "");
    repo.edit(
        "events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    repo.edit(
        "events/contact_updated.yaml",
        "score: { type: integer }",
        "score: { type: integer, nullable: true }",
    );
    let output = repo.check_last_commit("many");
    assert_eq!(output.status.code(), Some(1), "{}", report(&output));
    let text = report(&output);
    for code in ["version-decreased", "event-removed", "type-changed"] {
        assert!(text.contains(code), "{code} missing:\n{text}");
    }
    insta::assert_snapshot!("many_at_once", text);
}

/// A change to an event of an entity's `events:` block is caught like any other.
#[test]
fn inline_events_are_compared() {
    let repo = Repo::new();
    repo.write(
        "entities/contact.yaml",
        &format!(
            "{CONTACT}events:\n  contact_merged:\n    payload:\n      into: {{ type: uuid }}\n"
        ),
    );
    repo.commit("inline");
    repo.edit(
        "entities/contact.yaml",
        "into: { type: uuid }",
        "into: { type: integer }",
    );
    assert_change(&repo, "inline_event", false);
}

/// A mistake in the old version is a warning: the new version is still compared where it can.
#[test]
fn an_unreadable_old_declaration_is_a_warning() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_archived.yaml",
        "reason: { type: string, nullable: true }",
        "reason: { type: strin, nullable: true }",
    );
    repo.commit("typo");
    repo.edit(
        "events/contact_archived.yaml",
        "reason: { type: strin, nullable: true }",
        "reason: { type: string, nullable: true }",
    );
    assert_change(&repo, "old_unreadable", true);
}

#[test]
fn an_invalid_new_declaration_is_reported_as_validate_does() {
    let repo = Repo::new();
    repo.edit(
        "events/contact_updated.yaml",
        "version: 2\n",
        "version: 2\ncompatibility: fwd\n",
    );
    let output = repo.check_last_commit("invalid");
    assert_eq!(output.status.code(), Some(1));
    let text = report(&output);
    assert!(text.contains("unknown compatibility `fwd`"), "{text}");
    assert!(
        text.contains("did you mean `full`?") || text.contains("`forward`"),
        "{text}"
    );
}

#[test]
fn a_bad_ref_is_a_usage_error() {
    let repo = Repo::new();
    let output = codegen(repo.path(), &["check", "--against", "no-such-branch"]);
    assert_eq!(output.status.code(), Some(2));
    let text = report(&output).replace(&repo.path().display().to_string(), "<repo>");
    insta::assert_snapshot!("bad_ref", text);
}

#[test]
fn a_bad_project_default_is_a_usage_error() {
    let repo = Repo::new();
    repo.write("codegen.yaml", "compatibility: backwards\n");
    let output = codegen(repo.path(), &["check", "--against", "HEAD"]);
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!("bad_project_default", report(&output));
}

#[test]
fn outside_a_repository_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("events")).expect("mkdir");
    fs::create_dir_all(dir.path().join("entities")).expect("mkdir");
    let output = codegen(dir.path(), &["check", "--against", "HEAD"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        report(&output).contains("is not inside a git repository"),
        "{}",
        report(&output)
    );
}

/// The events directory need not be at the repository's root, nor the current directory.
#[test]
fn directories_below_the_root_are_found_at_the_revision() {
    let repo = Repo::new();
    fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    repo.git(&["mv", "events", "app/events"]);
    repo.git(&["mv", "entities", "app/entities"]);
    repo.commit("move");
    repo.edit(
        "app/events/contact_updated.yaml",
        "contact_id: { type: uuid }",
        "contact_id: { type: integer }",
    );
    repo.commit("change");
    let output = codegen(
        repo.path(),
        &[
            "check",
            "--against",
            "HEAD~1",
            "--events",
            "app/events",
            "--entities",
            "app/entities",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", report(&output));
    let text = report(&output);
    assert!(
        text.contains("HEAD~1:app/events/contact_updated.yaml"),
        "{text}"
    );
    assert!(
        text.contains("--> app/events/contact_updated.yaml"),
        "{text}"
    );
}

/// The library answers with typed findings, for build scripts and CI tools of their own.
#[test]
fn the_library_returns_typed_findings() {
    let declarations = |updated: &str| {
        let mut sources = SourceMap::new();
        sources.add(FileKind::Entity, "entities/contact.yaml", CONTACT);
        sources.add(FileKind::Event, "events/contact_updated.yaml", updated);
        Declarations::read(sources)
    };
    let old = declarations(CONTACT_UPDATED);
    let new = declarations(&CONTACT_UPDATED.replace("items: string", "items: uuid"));
    let report = compat::compare(&old, &new, Compatibility::Backward);
    assert!(report.has_errors());
    assert_eq!(report.compared, 1);
    let kinds: Vec<&FindingKind> = report.findings.iter().map(|f| &f.kind).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [FindingKind::Breaking {
                change: PayloadChange::TypeChanged { field, .. },
                mode: Compatibility::Backward,
                version: 2,
                now: 2,
            }] if field == "tags"
        ),
        "{kinds:?}"
    );
    assert!(
        !compat::compare(&old, &new, Compatibility::None).has_errors(),
        "`none` checks nothing"
    );
}

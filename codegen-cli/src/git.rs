//! The declarations as they were at a git revision, read by running `git` itself: the
//! revision is resolved exactly as the user's own git commands resolve it (worktrees, shallow
//! clones, `main`, `HEAD~1`, `origin/main`), and no libgit2 is linked.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::source::{FileKind, SourceMap};

/// Why the declarations at a revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run `git`: {0}")]
    Spawn(#[source] io::Error),
    #[error(
        "{} is not inside a git repository: comparing with an earlier version reads it from git",
        .dir.display()
    )]
    NotARepository { dir: PathBuf },
    #[error(
        "`{revision}` is not a commit of the repository at {}: name a branch, a tag or a commit (`main`, `HEAD~1`, `origin/main`); in a shallow clone, fetch it first (`git fetch --depth=2`, or `fetch-depth: 0` in GitHub Actions)",
        .repository.display()
    )]
    UnknownRevision {
        revision: String,
        repository: PathBuf,
    },
    #[error("`git {command}` failed: {message}")]
    Failed { command: String, message: String },
    #[error("{path} is not UTF-8")]
    NotUtf8 { path: String },
}

/// The event and entity files of `revision` in the directories that are `events_dir` and
/// `entities_dir` now. Each file's path reads `<revision>:<path in the repository>`, as
/// `git show` takes it. A directory that did not exist at the revision holds nothing; one that
/// does not exist now is not read.
pub fn sources_at(
    revision: &str,
    events_dir: &Path,
    entities_dir: &Path,
) -> Result<SourceMap, GitError> {
    let toplevel = toplevel(events_dir)?;
    let commit = resolve(&toplevel, revision)?;
    let mut sources = SourceMap::new();
    for (kind, dir) in [
        (FileKind::Entity, entities_dir),
        (FileKind::Event, events_dir),
    ] {
        if !dir.is_dir() {
            continue;
        }
        let prefix = text(git(dir, &["rev-parse", "--show-prefix"])?);
        let prefix = prefix.trim_end_matches(['\n', '/']);
        for (path, object) in yaml_blobs(&toplevel, &commit, prefix)? {
            let bytes = git(&toplevel, &["cat-file", "blob", &object])?;
            let shown = format!("{revision}:{path}");
            let contents = String::from_utf8(bytes).map_err(|_| GitError::NotUtf8 {
                path: shown.clone(),
            })?;
            sources.add(kind, shown, contents);
        }
    }
    Ok(sources)
}

fn toplevel(dir: &Path) -> Result<PathBuf, GitError> {
    match run(dir, &["rev-parse", "--show-toplevel"])? {
        Ok(out) => Ok(PathBuf::from(text(out).trim_end_matches('\n'))),
        Err(_) => Err(GitError::NotARepository {
            dir: dir.to_owned(),
        }),
    }
}

/// The commit id `revision` names. `--end-of-options` keeps a revision that starts with `-`
/// from being read as an option.
fn resolve(toplevel: &Path, revision: &str) -> Result<String, GitError> {
    let spec = format!("{revision}^{{commit}}");
    match run(
        toplevel,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
    )? {
        Ok(out) => Ok(text(out).trim().to_owned()),
        Err(_) => Err(GitError::UnknownRevision {
            revision: revision.to_owned(),
            repository: toplevel.to_owned(),
        }),
    }
}

/// `(path in the repository, blob id)` of the YAML files directly in `prefix` at `commit`.
fn yaml_blobs(
    toplevel: &Path,
    commit: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, GitError> {
    let tree = format!("{commit}:{prefix}");
    // The directory may be younger than the revision: then it held nothing.
    match run(toplevel, &["cat-file", "-t", &tree])? {
        Ok(kind) if text(&kind).trim() == "tree" => {}
        _ => return Ok(Vec::new()),
    }
    let listing = git(toplevel, &["ls-tree", "-z", &tree])?;
    let mut out = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        // `<mode> SP <type> SP <object> TAB <name>`
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (Some(_mode), Some("blob"), Some(object)) = (meta.next(), meta.next(), meta.next())
        else {
            continue;
        };
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        out.push((path, object.to_owned()));
    }
    out.sort();
    Ok(out)
}

/// Runs git in `dir`; its output, or an error naming the command and what git said.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    run(dir, args)?.map_err(|message| GitError::Failed {
        command: args.join(" "),
        message,
    })
}

/// `Err(GitError)` when git cannot be run at all; `Ok(Err(stderr))` when it ran and failed.
fn run(dir: &Path, args: &[&str]) -> Result<Result<Vec<u8>, String>, GitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(GitError::Spawn)?;
    if output.status.success() {
        Ok(Ok(output.stdout))
    } else {
        Ok(Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_owned()))
    }
}

fn text(bytes: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(bytes.as_ref()).into_owned()
}

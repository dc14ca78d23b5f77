//! The YAML files of one run, held in memory: the engine never touches the file system.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(usize);

/// What a YAML file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Event,
    Entity,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub kind: FileKind,
    /// The path shown in diagnostics and generated headers, relative where possible.
    pub path: PathBuf,
    pub contents: String,
}

/// All input files of one run.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    display: Vec<String>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &mut self,
        kind: FileKind,
        path: impl Into<PathBuf>,
        contents: impl Into<String>,
    ) -> FileId {
        let path = path.into();
        // Forward slashes on every platform, so diagnostics and generated headers are identical.
        self.display.push(path.to_string_lossy().replace('\\', "/"));
        self.files.push(SourceFile {
            kind,
            path,
            contents: contents.into(),
        });
        FileId(self.files.len() - 1)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn path(&self, id: FileId) -> &str {
        &self.display[id.0]
    }

    pub fn contents(&self, id: FileId) -> &str {
        &self.files[id.0].contents
    }

    /// The file name without its extension: an event's `type` and an entity's name must equal it.
    pub fn stem(&self, id: FileId) -> Option<&str> {
        Path::new(&self.files[id.0].path)
            .file_stem()
            .and_then(|s| s.to_str())
    }

    /// The version an event file keeps, and the event type it keeps it of, when its name is
    /// `<type>.v<N>.yaml`: the declaration as it was at version N, kept beside the current one
    /// so that the generator can emit the old payload shape for a typed upcaster.
    pub fn kept_version(&self, id: FileId) -> Option<(&str, u32)> {
        if self.files[id.0].kind != FileKind::Event {
            return None;
        }
        let (event_type, suffix) = self.stem(id)?.rsplit_once(".v")?;
        let digits = suffix.bytes().all(|b| b.is_ascii_digit()) && !suffix.is_empty();
        let version = digits.then(|| suffix.parse().ok()).flatten()?;
        Some((event_type, version))
    }

    /// The event type or entity name the file's name says it declares: its stem, without the
    /// `.v<N>` of a kept version.
    pub fn declared_name(&self, id: FileId) -> Option<&str> {
        match self.kept_version(id) {
            Some((event_type, _)) => Some(event_type),
            None => self.stem(id),
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = FileId> + '_ {
        (0..self.files.len()).map(FileId)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

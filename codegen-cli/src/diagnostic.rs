//! Problems found in the YAML, with where they are and what to do about them.

use std::fmt;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use crate::source::{FileId, SourceMap};

/// A byte range of a source file, with the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub column: u32,
}

/// A place in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: FileId,
    pub span: Span,
}

/// What a diagnostic is about, so a reader of a long list knows without opening the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Event(String),
    Entity(String),
    /// A file whose `type`/`entity` could not be read.
    File,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Event(name) => write!(f, "event `{name}`"),
            Subject::Entity(name) => write!(f, "entity `{name}`"),
            Subject::File => f.write_str("file"),
        }
    }
}

/// One problem in the input: a stable code, where it is, what it concerns, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable kebab-case identifier of the rule, e.g. `unknown-key`.
    pub code: &'static str,
    pub subject: Subject,
    pub message: String,
    pub location: Location,
    /// Shown under the highlighted source.
    pub label: String,
    /// What to do instead.
    pub help: Option<String>,
    /// Other places that explain the problem (the first definition of a duplicate, …).
    pub related: Vec<(Location, String)>,
}

impl Diagnostic {
    pub fn new(
        code: &'static str,
        subject: Subject,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            subject,
            message: message.into(),
            location,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn set_label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = label.into();
        self
    }

    pub fn set_help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }

    pub fn add_related(&mut self, location: Location, label: impl Into<String>) -> &mut Self {
        self.related.push((location, label.into()));
        self
    }
}

/// Every problem found in one run, in file and position order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds a diagnostic and returns it for further detail.
    pub fn push(&mut self, diagnostic: Diagnostic) -> &mut Diagnostic {
        let index = self.items.len();
        self.items.push(diagnostic);
        &mut self.items[index]
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Sorts by file then position, so output does not depend on the order rules ran in.
    pub(crate) fn sort(&mut self, sources: &SourceMap) {
        self.items.sort_by(|a, b| {
            let key = |d: &Diagnostic| (sources.path(d.location.file), d.location.span.start);
            key(a).cmp(&key(b)).then_with(|| a.code.cmp(b.code))
        });
        self.items.dedup();
    }

    /// Renders every diagnostic the way rustc and cargo do, without colour, so that the text
    /// can be pinned in tests and read in CI logs.
    pub fn render(&self, sources: &SourceMap) -> String {
        self.render_with(sources, &Renderer::plain())
    }

    /// As [`Diagnostics::render`], with colour for a terminal.
    pub fn render_styled(&self, sources: &SourceMap) -> String {
        self.render_with(sources, &Renderer::styled())
    }

    fn render_with(&self, sources: &SourceMap, renderer: &Renderer) -> String {
        let mut out = String::new();
        for diagnostic in &self.items {
            out.push_str(&render_one(diagnostic, sources, renderer));
            out.push_str("\n\n");
        }
        let count = self.items.len();
        out.push_str(&format!(
            "error: found {count} problem{} in the YAML declarations; nothing was written",
            if count == 1 { "" } else { "s" }
        ));
        out
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

fn render_one(diagnostic: &Diagnostic, sources: &SourceMap, renderer: &Renderer) -> String {
    render_as(diagnostic, sources, renderer, Level::ERROR, None)
}

/// One diagnostic at `level`, with an extra `note` after its snippets: how the compatibility
/// report shows the problems of an older version, which are warnings there.
pub(crate) fn render_as(
    diagnostic: &Diagnostic,
    sources: &SourceMap,
    renderer: &Renderer,
    level: Level<'_>,
    note: Option<&str>,
) -> String {
    let title = format!("{}: {}", diagnostic.subject, diagnostic.message);
    let mut group = level
        .primary_title(title)
        .id(diagnostic.code)
        .element(snippet(
            sources,
            diagnostic.location,
            &diagnostic.label,
            AnnotationKind::Primary,
        ));
    for (location, label) in &diagnostic.related {
        group = group.element(snippet(sources, *location, label, AnnotationKind::Context));
    }
    if let Some(note) = note {
        group = group.element(Level::NOTE.message(note));
    }
    if let Some(help) = &diagnostic.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    let report: Vec<Group<'_>> = vec![group];
    renderer.render(&report).to_string()
}

pub(crate) fn snippet<'a>(
    sources: &'a SourceMap,
    location: Location,
    label: &'a str,
    kind: AnnotationKind,
) -> Snippet<'a, annotate_snippets::Annotation<'a>> {
    let text = sources.contents(location.file);
    let span = location.span;
    // An empty span (a missing key, a mapping start) still gets a visible caret.
    let end = if span.end > span.start {
        span.end
    } else {
        next_char_boundary(text, span.start)
    };
    let mut annotation = kind.span(span.start.min(text.len())..end.min(text.len()));
    if !label.is_empty() {
        annotation = annotation.label(label);
    }
    Snippet::source(text)
        .path(sources.path(location.file))
        .annotation(annotation)
}

fn next_char_boundary(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|rest| rest.chars().next())
        .map_or(at, |c| at + c.len_utf8())
}

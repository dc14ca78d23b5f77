//! Schema evolution: how the events changed since an earlier version of their declarations,
//! and whether the readers that each event's `compatibility` names can still read them.
//!
//! The rules follow from how Herald reads a payload, not from Avro's or Protobuf's: a payload
//! is a JSON object decoded by serde into the generated struct, which refuses unknown keys
//! (`deny_unknown_fields`) and reads an absent `Option` field (`nullable: true`) as `None`.
//! So, unlike Avro, adding a nullable field breaks consumers of the older struct, and removing
//! any field breaks consumers of the newer one when they read events stored with it.
//!
//! A change that breaks a checked direction is an error while `version` stays the same. With
//! `version` bumped it is accepted, and the report notes the upcaster the runtime then needs:
//! it brings every stored payload to the current version one step at a time and refuses an
//! event for which one step has no upcaster.
//!
//! Like the rest of the engine this never touches the file system: [`crate::git`] reads the
//! older declarations, the CLI prints the report.

use std::collections::{BTreeMap, BTreeSet};

use annotate_snippets::{AnnotationKind, Group, Level, Renderer};

use crate::diagnostic::{Diagnostics, Location, Span, Subject, render_as, snippet};
use crate::model::{Event, PayloadType, Scalar};
use crate::source::{FileId, SourceMap};

pub use crate::model::Compatibility;

/// One version of the declarations, read leniently: what does not pass the checks is kept as
/// [`Declarations::problems`] and left out, so that an older version with a mistake can still
/// be compared event by event.
#[derive(Debug, Clone)]
pub struct Declarations {
    sources: SourceMap,
    events: BTreeMap<String, Declared>,
    /// The types (or file names) of event declarations that did not pass the checks.
    unreadable: BTreeSet<String>,
    problems: Diagnostics,
}

/// An event that passed the checks, with the places a report points at.
#[derive(Debug, Clone)]
struct Declared {
    event: Event,
    file: FileId,
    type_span: Span,
    version_span: Option<Span>,
    /// The `payload` key; the event's `type` when it has none (an empty inline event).
    payload_span: Span,
    fields: BTreeMap<String, FieldSpans>,
}

#[derive(Debug, Clone, Copy)]
struct FieldSpans {
    name: Span,
    type_: Option<Span>,
    items: Option<Span>,
    nullable: Option<Span>,
}

impl Declarations {
    /// Parses and checks `sources`.
    pub fn read(sources: SourceMap) -> Self {
        let read = crate::read(&sources);
        let valid: BTreeMap<&str, &Event> = read
            .model
            .events
            .iter()
            .map(|event| (event.name.as_str(), event))
            .collect();
        let mut events = BTreeMap::new();
        for raw in &read.events {
            // A kept version is part of its event's declaration, not one of its own: the
            // comparison is between current declarations (see the module's docs).
            if sources.kept_version(raw.file).is_some() {
                continue;
            }
            let Some(type_) = &raw.type_ else { continue };
            let Some(event) = valid.get(type_.value.as_str()) else {
                continue;
            };
            // A type declared twice is an error of its own; the first declaration is the
            // one the model holds.
            if events.contains_key(&type_.value) {
                continue;
            }
            let fields = raw
                .payload
                .iter()
                .flat_map(|payload| &payload.value)
                .map(|field| {
                    let spans = FieldSpans {
                        name: field.name.span,
                        type_: field.type_.as_ref().map(|t| t.span),
                        items: field.items.as_ref().map(|i| i.span),
                        nullable: field.nullable.as_ref().map(|n| n.span),
                    };
                    (field.name.value.clone(), spans)
                })
                .collect();
            events.insert(
                type_.value.clone(),
                Declared {
                    event: (*event).clone(),
                    file: raw.file,
                    type_span: type_.span,
                    version_span: raw.version.as_ref().map(|v| v.span),
                    payload_span: raw.payload_key.unwrap_or(type_.span),
                    fields,
                },
            );
        }
        let unreadable = read
            .diagnostics
            .iter()
            .filter_map(|d| match &d.subject {
                Subject::Event(name) if !events.contains_key(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        Self {
            sources,
            events,
            unreadable,
            problems: read.diagnostics,
        }
    }

    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// Every problem of these declarations, as `validate` reports them.
    pub fn problems(&self) -> &Diagnostics {
        &self.problems
    }

    /// The events that passed the checks.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.values().map(|declared| &declared.event)
    }

    fn place(&self, side: Side, file: FileId, span: Span) -> Place {
        Place {
            side,
            location: Location { file, span },
        }
    }
}

/// Which of the two versions a place is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The declarations compared against (`--against <ref>`).
    Old,
    /// The declarations as they are now.
    New,
}

/// A place in one of the two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub side: Side,
    pub location: Location,
}

/// The shape of a payload field that matters to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldShape {
    pub ty: PayloadType,
    pub nullable: bool,
}

/// One difference between two declarations of an event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadChange {
    FieldAdded {
        field: String,
        shape: FieldShape,
    },
    FieldRemoved {
        field: String,
        shape: FieldShape,
    },
    /// The type changed, or for an array the type of its items.
    TypeChanged {
        field: String,
        old: PayloadType,
        new: PayloadType,
    },
    /// `nullable: true` was removed.
    NullRefused {
        field: String,
    },
    /// `nullable: true` was added.
    NullAllowed {
        field: String,
    },
}

/// Why a change breaks each direction, when it does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Breaks {
    /// Consumers of the new declaration reading events stored under the old one.
    pub backward: Option<String>,
    /// Consumers built from the old declaration reading events published under the new one.
    pub forward: Option<String>,
}

impl PayloadChange {
    pub fn field(&self) -> &str {
        match self {
            PayloadChange::FieldAdded { field, .. }
            | PayloadChange::FieldRemoved { field, .. }
            | PayloadChange::TypeChanged { field, .. }
            | PayloadChange::NullRefused { field }
            | PayloadChange::NullAllowed { field } => field,
        }
    }

    /// Which readers the change breaks and why; `version` is the old one.
    pub fn breaks(&self, version: u32) -> Breaks {
        let unknown_key = |field: &str| {
            format!(
                "consumers built from version {version} refuse the unknown key `{field}` (payloads deny unknown keys)"
            )
        };
        match self {
            PayloadChange::FieldAdded { field, shape } => Breaks {
                backward: (!shape.nullable).then(|| {
                    format!(
                        "stored version-{version} events have no `{field}`, and a field that is not `nullable: true` must be present"
                    )
                }),
                forward: Some(unknown_key(field)),
            },
            PayloadChange::FieldRemoved { field, shape } => Breaks {
                backward: Some(format!(
                    "stored version-{version} events still hold `{field}`, and the new payload struct refuses unknown keys"
                )),
                forward: (!shape.nullable).then(|| {
                    format!(
                        "consumers built from version {version} require `{field}`, which new events lack"
                    )
                }),
            },
            PayloadChange::TypeChanged { field, old, new } => Breaks {
                backward: (!reads(*new, *old)).then(|| {
                    format!(
                        "stored version-{version} events hold {} in `{field}`, which does not read as {}",
                        type_name(*old),
                        type_name(*new)
                    )
                }),
                forward: (!reads(*old, *new)).then(|| {
                    format!(
                        "consumers built from version {version} read `{field}` as {} and refuse {}",
                        type_name(*old),
                        type_name(*new)
                    )
                }),
            },
            PayloadChange::NullRefused { field } => Breaks {
                backward: Some(format!(
                    "stored version-{version} events may hold null in `{field}`"
                )),
                forward: None,
            },
            PayloadChange::NullAllowed { field } => Breaks {
                backward: None,
                forward: Some(format!(
                    "consumers built from version {version} cannot read a null `{field}`"
                )),
            },
        }
    }

    /// `contact_id`: `uuid` → `string`, in a list of changes.
    fn summary(&self) -> String {
        match self {
            PayloadChange::FieldAdded { field, shape } => {
                format!("`{field}` added ({})", shape_name(*shape))
            }
            PayloadChange::FieldRemoved { field, shape } => {
                format!("`{field}` removed (it was {})", shape_name(*shape))
            }
            PayloadChange::TypeChanged { field, old, new } => {
                format!("`{field}`: {} → {}", type_name(*old), type_name(*new))
            }
            PayloadChange::NullRefused { field } => {
                format!("`{field}`: nullable → not nullable")
            }
            PayloadChange::NullAllowed { field } => {
                format!("`{field}`: not nullable → nullable")
            }
        }
    }

    /// The report's title for the change.
    fn title(&self) -> String {
        match self {
            PayloadChange::FieldAdded { field, shape } => {
                format!("field `{field}` was added ({})", shape_name(*shape))
            }
            PayloadChange::FieldRemoved { field, shape } => {
                format!(
                    "field `{field}` was removed (it was {})",
                    shape_name(*shape)
                )
            }
            PayloadChange::TypeChanged {
                field,
                old: PayloadType::Array(old),
                new: PayloadType::Array(new),
            } => format!(
                "the items of `{field}` changed from `{}` to `{}`",
                old.as_str(),
                new.as_str()
            ),
            PayloadChange::TypeChanged { field, old, new } => format!(
                "field `{field}` changed type from {} to {}",
                type_name(*old),
                type_name(*new)
            ),
            PayloadChange::NullRefused { field } => {
                format!("field `{field}` is no longer nullable")
            }
            PayloadChange::NullAllowed { field } => format!("field `{field}` became nullable"),
        }
    }

    /// How to undo the change instead of bumping the version.
    fn undo(&self, mode: Compatibility) -> String {
        match self {
            PayloadChange::FieldAdded { field, shape } => {
                if !shape.nullable && !mode.checks_forward() {
                    format!("declare `{field}` with `nullable: true`, or remove it")
                } else {
                    format!("remove `{field}`")
                }
            }
            PayloadChange::FieldRemoved { field, shape } => {
                format!("restore `{field}: {}`", shape_yaml(*shape))
            }
            PayloadChange::TypeChanged {
                old: PayloadType::Array(old),
                new: PayloadType::Array(_),
                ..
            } => format!("restore `items: {}`", old.as_str()),
            PayloadChange::TypeChanged { old, .. } => format!("restore {}", type_yaml(*old)),
            PayloadChange::NullRefused { .. } => "restore `nullable: true`".to_owned(),
            PayloadChange::NullAllowed { .. } => "remove `nullable: true`".to_owned(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            PayloadChange::FieldAdded { .. } => "field-added",
            PayloadChange::FieldRemoved { .. } => "field-removed",
            PayloadChange::TypeChanged {
                old: PayloadType::Array(_),
                new: PayloadType::Array(_),
                ..
            } => "items-changed",
            PayloadChange::TypeChanged { .. } => "type-changed",
            PayloadChange::NullRefused { .. } => "null-refused",
            PayloadChange::NullAllowed { .. } => "null-allowed",
        }
    }
}

/// Whether a field declared `reader` decodes every JSON value written for a field declared
/// `written`, by the generated Rust types: an `f64` reads an integer, a `String` reads the
/// strings a `Uuid` or a `DateTime` is written as, and `date` and `datetime` are the same
/// `DateTime<Utc>`.
fn reads(reader: PayloadType, written: PayloadType) -> bool {
    match (reader, written) {
        (PayloadType::Json, PayloadType::Json) => true,
        (PayloadType::Scalar(reader), PayloadType::Scalar(written))
        | (PayloadType::Array(reader), PayloadType::Array(written)) => {
            scalar_reads(reader, written)
        }
        _ => false,
    }
}

fn scalar_reads(reader: Scalar, written: Scalar) -> bool {
    reader == written
        || matches!(
            (reader, written),
            (Scalar::Number, Scalar::Integer)
                | (
                    Scalar::String,
                    Scalar::Uuid | Scalar::Date | Scalar::DateTime
                )
                | (Scalar::Date, Scalar::DateTime)
                | (Scalar::DateTime, Scalar::Date)
        )
}

/// `` `uuid` `` or `` `array` of `string` ``.
fn type_name(ty: PayloadType) -> String {
    match ty {
        PayloadType::Scalar(scalar) => format!("`{}`", scalar.as_str()),
        PayloadType::Json => "`json`".to_owned(),
        PayloadType::Array(items) => format!("`array` of `{}`", items.as_str()),
    }
}

fn shape_name(shape: FieldShape) -> String {
    if shape.nullable {
        format!("{}, nullable", type_name(shape.ty))
    } else {
        type_name(shape.ty)
    }
}

/// `` `type: uuid` `` or `` `type: array, items: string` ``.
fn type_yaml(ty: PayloadType) -> String {
    format!("`{}`", type_keys(ty))
}

fn type_keys(ty: PayloadType) -> String {
    match ty {
        PayloadType::Scalar(scalar) => format!("type: {}", scalar.as_str()),
        PayloadType::Json => "type: json".to_owned(),
        PayloadType::Array(items) => format!("type: array, items: {}", items.as_str()),
    }
}

fn shape_yaml(shape: FieldShape) -> String {
    if shape.nullable {
        format!("{{ {}, nullable: true }}", type_keys(shape.ty))
    } else {
        format!("{{ {} }}", type_keys(shape.ty))
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

/// What the comparison found about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// A change that breaks a direction `mode` checks, while `version` stayed the same.
    /// `version` is the old one, `now` the new one (not above it).
    Breaking {
        change: PayloadChange,
        mode: Compatibility,
        version: u32,
        now: u32,
    },
    /// `version` went down; `implicit` when the new declaration leaves it out (1).
    VersionDecreased { old: u32, new: u32, implicit: bool },
    /// `version` went up: the runtime needs an upcaster from every version in `from..to`.
    VersionBumped {
        from: u32,
        to: u32,
        mode: Compatibility,
        changes: Vec<PayloadChange>,
    },
    /// The event is declared in the old version and not in the new one. `renamed_to` is a
    /// new event with the same payload, which the type was likely renamed to.
    EventRemoved {
        version: u32,
        renamed_to: Option<String>,
    },
}

/// One finding, with where to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub event: String,
    pub kind: FindingKind,
    /// In the new declaration, except for a removed event (in the old one).
    pub at: Place,
    /// The old declaration of what changed, when it helps to see it.
    pub was: Option<Place>,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        match self.kind {
            FindingKind::Breaking { .. }
            | FindingKind::VersionDecreased { .. }
            | FindingKind::EventRemoved { .. } => Severity::Error,
            FindingKind::VersionBumped { .. } => Severity::Note,
        }
    }
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Sorted by event, then by place.
    pub findings: Vec<Finding>,
    /// How many events are declared in both versions and were compared.
    pub compared: usize,
    /// Events declared now whose old declaration could not be read (see the old version's
    /// [`Declarations::problems`]): they were not compared.
    pub not_compared: Vec<String>,
}

impl Report {
    /// Whether any finding is an error: the change must not be merged as it is.
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|finding| finding.severity() == Severity::Error)
    }

    /// Renders the old version's problems (as warnings) and every finding, without colour.
    /// `against` names the old version (`HEAD~1`, `main`).
    pub fn render(&self, old: &Declarations, new: &Declarations, against: &str) -> String {
        self.render_with(old, new, against, &Renderer::plain())
    }

    /// As [`Report::render`], with colour for a terminal.
    pub fn render_styled(&self, old: &Declarations, new: &Declarations, against: &str) -> String {
        self.render_with(old, new, against, &Renderer::styled())
    }

    fn render_with(
        &self,
        old: &Declarations,
        new: &Declarations,
        against: &str,
        renderer: &Renderer,
    ) -> String {
        let mut out = String::new();
        let old_note = format!(
            "found in the declarations at `{against}`, which are compared where they can be read"
        );
        for problem in old.problems.iter() {
            out.push_str(&render_as(
                problem,
                &old.sources,
                renderer,
                Level::WARNING,
                Some(&old_note),
            ));
            out.push_str("\n\n");
        }
        for finding in &self.findings {
            out.push_str(&render_finding(finding, old, new, against, renderer));
            out.push_str("\n\n");
        }
        let count = |severity: Severity| {
            self.findings
                .iter()
                .filter(|f| f.severity() == severity)
                .count()
        };
        let (errors, warnings, notes) = (
            count(Severity::Error),
            count(Severity::Warning) + old.problems.len(),
            count(Severity::Note),
        );
        let mut extra = Vec::new();
        if warnings > 0 {
            extra.push(plural(warnings, "warning"));
        }
        if notes > 0 {
            extra.push(plural(notes, "note"));
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        };
        if errors > 0 {
            out.push_str(&format!(
                "error: found {} against `{against}`{extra}",
                plural(errors, "incompatible change")
            ));
        } else {
            out.push_str(&format!(
                "{} compared with `{against}`: no incompatible change{extra}",
                plural(self.compared, "event")
            ));
        }
        if !self.not_compared.is_empty() {
            let names: Vec<String> = self.not_compared.iter().map(|n| format!("`{n}`")).collect();
            out.push_str(&format!(
                "\nnot compared, as their declarations at `{against}` have errors: {}",
                names.join(", ")
            ));
        }
        out
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// The title, label, notes and help of a finding, rendered like a diagnostic.
fn render_finding(
    finding: &Finding,
    old: &Declarations,
    new: &Declarations,
    against: &str,
    renderer: &Renderer,
) -> String {
    let event = &finding.event;
    let upcast = |version: u32| format!("`bus.upcast(\"{event}\", {version}, ..)`");
    let (code, title, label, notes, help): (&str, String, String, Vec<String>, String) =
        match &finding.kind {
            FindingKind::Breaking {
                change,
                mode,
                version,
                now,
            } => {
                let breaks = change.breaks(*version);
                let mut notes = Vec::new();
                if mode.checks_backward()
                    && let Some(why) = breaks.backward
                {
                    notes.push(format!("breaks backward compatibility: {why}"));
                }
                if mode.checks_forward()
                    && let Some(why) = breaks.forward
                {
                    notes.push(format!("breaks forward compatibility: {why}"));
                }
                notes.push(format!(
                    "the event is `compatibility: {}`{}",
                    mode.as_str(),
                    if new
                        .events
                        .get(event)
                        .is_some_and(|d| d.event.compatibility.is_some())
                    {
                        ""
                    } else {
                        " (the project's default)"
                    }
                ));
                (
                    change.code(),
                    if now == version {
                        format!("{}, but `version` is still {version}", change.title())
                    } else {
                        format!("{}, and `version` is not above {version}", change.title())
                    },
                    match change {
                        PayloadChange::FieldRemoved { .. } => {
                            format!("`{}` is gone from here", change.field())
                        }
                        PayloadChange::FieldAdded { .. } => "added".to_owned(),
                        _ => format!("changed since `{against}`"),
                    },
                    notes,
                    format!(
                        "bump `version` to {} and register an upcaster from version {version} with {}, or {}",
                        version + 1,
                        upcast(*version),
                        change.undo(*mode)
                    ),
                )
            }
            FindingKind::VersionDecreased { old, new, implicit } => (
                "version-decreased",
                format!("`version` went down from {old} to {new}"),
                if *implicit {
                    format!("no `version`, so {new}; it was {old} at `{against}`")
                } else {
                    format!("was {old} at `{against}`")
                },
                vec![format!(
                    "events may be stored at version {old}; this declaration would read them as newer than itself, and upcasters only go up"
                )],
                format!(
                    "set `version: {old}` back (or a higher version, with an upcaster from version {old})"
                ),
            ),
            FindingKind::VersionBumped {
                from,
                to,
                mode,
                changes,
            } => {
                let mut notes = Vec::new();
                if changes.is_empty() {
                    notes.push(
                        "the payload did not change: the upcaster can return it as it is"
                            .to_owned(),
                    );
                } else {
                    let list: Vec<String> = changes.iter().map(PayloadChange::summary).collect();
                    notes.push(format!("since version {from}: {}", list.join("; ")));
                }
                let forward: Vec<&str> = changes
                    .iter()
                    .filter(|c| mode.checks_forward() && c.breaks(*from).forward.is_some())
                    .map(PayloadChange::field)
                    .collect();
                if !forward.is_empty() {
                    notes.push(format!(
                        "`compatibility: {}`: consumers still built from version {from} cannot read version {to} events ({}): upgrade them before any producer publishes version {to}",
                        mode.as_str(),
                        forward
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let upcasters: Vec<String> = (*from..*to).map(upcast).collect();
                // Versions kept beside the declaration are upcast by typed upcasters, which the
                // generated code does not compile without: the help names those instead.
                let declared = new.events.get(event).map(|d| &d.event);
                let kept: Vec<&crate::model::KeptVersion> = declared
                    .iter()
                    .flat_map(|event| &event.kept)
                    .filter(|kept| (*from..*to).contains(&kept.version))
                    .collect();
                let help = match declared {
                    Some(declared) if kept.len() == (to - from) as usize => {
                        let impls: Vec<String> = kept
                            .iter()
                            .map(|kept| {
                                format!(
                                    "`impl herald::UpcastFrom<{}> for {}`",
                                    kept.struct_name,
                                    declared.next_shape(kept.version)
                                )
                            })
                            .collect();
                        let files: Vec<String> = kept
                            .iter()
                            .map(|kept| format!("`{}`", kept.origin))
                            .collect();
                        notes.push(format!(
                            "kept in {}: the generated code asks for the typed upcaster of each kept version",
                            files.join(" and ")
                        ));
                        format!(
                            "write {}; `bus.upcast` is refused for a kept version",
                            impls.join(" and ")
                        )
                    }
                    _ => format!(
                        "register {} on the bus, turning a version-{from} payload into version {}; without it, stored version-{from} events fail to reach any consumer",
                        upcasters.join(" and "),
                        from + 1
                    ),
                };
                (
                    "upcaster-needed",
                    format!(
                        "`version` went from {from} to {to}: events stored at version {from} need {}",
                        if to - from == 1 {
                            "an upcaster".to_owned()
                        } else {
                            format!("{} upcasters", to - from)
                        }
                    ),
                    format!("was {from} at `{against}`"),
                    notes,
                    help,
                )
            }
            FindingKind::EventRemoved {
                version,
                renamed_to,
            } => {
                let mut notes = vec![format!(
                    "events stored as `{event}` (version {version}) must still be read: without a declaration they can be neither decoded nor upcast"
                )];
                let help = match renamed_to {
                    Some(renamed) => {
                        notes.push(format!(
                            "`{renamed}` is new and has the same payload: a stored event keeps its type, so renaming one leaves the stored ones unread"
                        ));
                        format!(
                            "keep `{event}` declared beside `{renamed}` (publish only `{renamed}` from now on), or rename it back"
                        )
                    }
                    None => format!(
                        "restore its declaration (as in `{}`); keep it even once nothing publishes the event",
                        old.sources.path(finding.at.location.file)
                    ),
                };
                (
                    "event-removed",
                    format!("declared at `{against}` and no longer"),
                    format!("declared here at `{against}`"),
                    notes,
                    help,
                )
            }
        };
    let sources_of = |side: Side| match side {
        Side::Old => &old.sources,
        Side::New => &new.sources,
    };
    let level = match finding.severity() {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Note => Level::NOTE,
    };
    let was_label = format!("as declared at `{against}`");
    let mut group = level
        .primary_title(format!("event `{event}`: {title}"))
        .id(code)
        .element(snippet(
            sources_of(finding.at.side),
            finding.at.location,
            &label,
            AnnotationKind::Primary,
        ));
    if let Some(was) = finding.was {
        group = group.element(snippet(
            sources_of(was.side),
            was.location,
            &was_label,
            AnnotationKind::Context,
        ));
    }
    for note in notes {
        group = group.element(Level::NOTE.message(note));
    }
    group = group.element(Level::HELP.message(help));
    let report: Vec<Group<'_>> = vec![group];
    renderer.render(&report).to_string()
}

/// Compares every event of `new` with its declaration in `old`. `default` is the mode of the
/// events that do not say (`compatibility:` of codegen.yaml, else backward).
pub fn compare(old: &Declarations, new: &Declarations, default: Compatibility) -> Report {
    let mut findings = Vec::new();
    let mut compared = 0;
    let mut not_compared = Vec::new();
    for (name, now) in &new.events {
        let Some(before) = old.events.get(name) else {
            if old.unreadable.contains(name) {
                not_compared.push(name.clone());
            }
            continue;
        };
        compared += 1;
        compare_event(old, new, before, now, default, &mut findings);
    }
    let added: Vec<&Declared> = new
        .events
        .iter()
        .filter(|(name, _)| !old.events.contains_key(*name) && !old.unreadable.contains(*name))
        .map(|(_, declared)| declared)
        .collect();
    for (name, before) in &old.events {
        if new.events.contains_key(name) || new.unreadable.contains(name) {
            continue;
        }
        // `none` opts the event out of every check, its removal included.
        if before.event.compatibility.unwrap_or(default) == Compatibility::None {
            continue;
        }
        let renamed_to = added
            .iter()
            .find(|now| same_payload(&before.event, &now.event))
            .map(|now| now.event.name.clone());
        findings.push(Finding {
            event: name.clone(),
            kind: FindingKind::EventRemoved {
                version: before.event.version,
                renamed_to,
            },
            at: old.place(Side::Old, before.file, before.type_span),
            was: None,
        });
    }
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                f.event.clone(),
                f.at.side,
                f.at.location.span.start,
                f.severity(),
            )
        };
        key(a).cmp(&key(b))
    });
    Report {
        findings,
        compared,
        not_compared,
    }
}

/// Same keys, same types: what a rename that kept the payload looks like.
fn same_payload(a: &Event, b: &Event) -> bool {
    a.fields.len() == b.fields.len()
        && a.fields
            .iter()
            .zip(&b.fields)
            .all(|(x, y)| x.key == y.key && x.ty == y.ty && x.nullable == y.nullable)
}

fn compare_event(
    old: &Declarations,
    new: &Declarations,
    before: &Declared,
    now: &Declared,
    default: Compatibility,
    findings: &mut Vec<Finding>,
) {
    let name = &now.event.name;
    let mode = now.event.compatibility.unwrap_or(default);
    let (old_version, new_version) = (before.event.version, now.event.version);
    let version_place = new.place(
        Side::New,
        now.file,
        now.version_span.unwrap_or(now.type_span),
    );
    let old_version_place = before
        .version_span
        .map(|span| old.place(Side::Old, before.file, span));
    // A version that went down is an error of its own; the payload is then checked as if
    // the version had stayed, so that one run lists everything to fix.
    if new_version < old_version {
        findings.push(Finding {
            event: name.clone(),
            kind: FindingKind::VersionDecreased {
                old: old_version,
                new: new_version,
                implicit: now.version_span.is_none(),
            },
            at: version_place,
            was: old_version_place,
        });
    }
    let changes = payload_changes(old, new, before, now);
    if new_version > old_version {
        findings.push(Finding {
            event: name.clone(),
            kind: FindingKind::VersionBumped {
                from: old_version,
                to: new_version,
                mode,
                changes: changes.into_iter().map(|(change, _, _)| change).collect(),
            },
            at: version_place,
            was: None,
        });
        return;
    }
    for (change, at, was) in changes {
        let breaks = change.breaks(old_version);
        let broken = (mode.checks_backward() && breaks.backward.is_some())
            || (mode.checks_forward() && breaks.forward.is_some());
        if broken {
            findings.push(Finding {
                event: name.clone(),
                kind: FindingKind::Breaking {
                    change,
                    mode,
                    version: old_version,
                    now: new_version,
                },
                at,
                was,
            });
        }
    }
}

/// Every payload difference, in the new declaration's order then the removed fields, each
/// with where to show it and the old declaration of the field.
fn payload_changes(
    old: &Declarations,
    new: &Declarations,
    before: &Declared,
    now: &Declared,
) -> Vec<(PayloadChange, Place, Option<Place>)> {
    let mut out = Vec::new();
    let here = |span: Span| new.place(Side::New, now.file, span);
    let there = |span: Span| old.place(Side::Old, before.file, span);
    for field in &now.event.fields {
        let Some(spans) = now.fields.get(&field.key) else {
            continue;
        };
        let Some(previous) = before.event.fields.iter().find(|f| f.key == field.key) else {
            out.push((
                PayloadChange::FieldAdded {
                    field: field.key.clone(),
                    shape: FieldShape {
                        ty: field.ty,
                        nullable: field.nullable,
                    },
                },
                here(spans.name),
                None,
            ));
            continue;
        };
        let old_spans = before.fields.get(&field.key);
        if previous.ty != field.ty {
            let both_arrays = matches!(
                (previous.ty, field.ty),
                (PayloadType::Array(_), PayloadType::Array(_))
            );
            let pick = |spans: &FieldSpans| {
                (if both_arrays { spans.items } else { None })
                    .or(spans.type_)
                    .unwrap_or(spans.name)
            };
            out.push((
                PayloadChange::TypeChanged {
                    field: field.key.clone(),
                    old: previous.ty,
                    new: field.ty,
                },
                here(pick(spans)),
                old_spans.map(|s| there(pick(s))),
            ));
        }
        if previous.nullable != field.nullable {
            let change = if field.nullable {
                PayloadChange::NullAllowed {
                    field: field.key.clone(),
                }
            } else {
                PayloadChange::NullRefused {
                    field: field.key.clone(),
                }
            };
            out.push((
                change,
                here(spans.nullable.unwrap_or(spans.name)),
                old_spans.map(|s| there(s.nullable.unwrap_or(s.name))),
            ));
        }
    }
    for previous in &before.event.fields {
        if now.event.fields.iter().any(|f| f.key == previous.key) {
            continue;
        }
        out.push((
            PayloadChange::FieldRemoved {
                field: previous.key.clone(),
                shape: FieldShape {
                    ty: previous.ty,
                    nullable: previous.nullable,
                },
            },
            here(now.payload_span),
            before.fields.get(&previous.key).map(|s| there(s.name)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_TYPES: [PayloadType; 9] = [
        PayloadType::Scalar(Scalar::Uuid),
        PayloadType::Scalar(Scalar::String),
        PayloadType::Scalar(Scalar::Number),
        PayloadType::Scalar(Scalar::Integer),
        PayloadType::Scalar(Scalar::Boolean),
        PayloadType::Scalar(Scalar::Date),
        PayloadType::Scalar(Scalar::DateTime),
        PayloadType::Json,
        PayloadType::Array(Scalar::String),
    ];

    /// The widenings are exactly those serde performs on the generated types, and none of
    /// them goes both ways except `date`/`datetime` (one Rust type).
    #[test]
    fn only_lossless_reads_cross_types() {
        let mut crossing = Vec::new();
        for reader in ALL_TYPES {
            for written in ALL_TYPES {
                if reader != written && reads(reader, written) {
                    crossing.push(format!(
                        "{} reads {}",
                        type_name(reader),
                        type_name(written)
                    ));
                }
            }
        }
        assert_eq!(
            crossing,
            [
                "`string` reads `uuid`",
                "`string` reads `date`",
                "`string` reads `datetime`",
                "`number` reads `integer`",
                "`date` reads `datetime`",
                "`datetime` reads `date`",
            ]
        );
        assert!(reads(
            PayloadType::Array(Scalar::Number),
            PayloadType::Array(Scalar::Integer)
        ));
        assert!(!reads(
            PayloadType::Array(Scalar::String),
            PayloadType::Scalar(Scalar::String)
        ));
    }

    /// The rules table of README.md, cell by cell: (backward breaks, forward breaks).
    #[test]
    fn each_change_breaks_the_directions_the_readme_says() {
        let shape = |nullable| FieldShape {
            ty: PayloadType::Scalar(Scalar::String),
            nullable,
        };
        let field = || "f".to_owned();
        let cells = |change: PayloadChange| {
            let breaks = change.breaks(1);
            (breaks.backward.is_some(), breaks.forward.is_some())
        };
        let rows = [
            (
                PayloadChange::FieldAdded {
                    field: field(),
                    shape: shape(false),
                },
                (true, true),
            ),
            (
                PayloadChange::FieldAdded {
                    field: field(),
                    shape: shape(true),
                },
                (false, true),
            ),
            (
                PayloadChange::FieldRemoved {
                    field: field(),
                    shape: shape(false),
                },
                (true, true),
            ),
            (
                PayloadChange::FieldRemoved {
                    field: field(),
                    shape: shape(true),
                },
                (true, false),
            ),
            (PayloadChange::NullRefused { field: field() }, (true, false)),
            (PayloadChange::NullAllowed { field: field() }, (false, true)),
            (
                PayloadChange::TypeChanged {
                    field: field(),
                    old: PayloadType::Scalar(Scalar::Uuid),
                    new: PayloadType::Scalar(Scalar::Integer),
                },
                (true, true),
            ),
            (
                PayloadChange::TypeChanged {
                    field: field(),
                    old: PayloadType::Scalar(Scalar::Integer),
                    new: PayloadType::Scalar(Scalar::Number),
                },
                (false, true),
            ),
            (
                PayloadChange::TypeChanged {
                    field: field(),
                    old: PayloadType::Scalar(Scalar::String),
                    new: PayloadType::Scalar(Scalar::Uuid),
                },
                (true, false),
            ),
        ];
        for (change, expected) in rows {
            assert_eq!(cells(change.clone()), expected, "{change:?}");
        }
    }
}

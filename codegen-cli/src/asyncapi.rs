//! An AsyncAPI 3.0 document of the events as the NATS relay carries them: one channel per
//! event type on the subject the relay publishes it on, a `send` operation for the events the
//! service relays out and a `receive` operation for its inbound events, and messages whose
//! payload is the event's JSON Schema and whose headers are those the relay sets.
//!
//! The rules mirror `herald::relay` (read there, not linked: the generator never links the
//! runtime): the subject template and its placeholders (`relay/subject.rs`), the headers
//! (`relay/headers.rs`, `relay/outbound.rs`) and what the default filter relays
//! (`relay/filter.rs`).

use serde_json::{Map, Value, json};

use herald_vocabulary::Direction;

use crate::model::{Event, Model, Routing};
use crate::payload;

/// The AsyncAPI version the document declares.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// What the document says beyond the model.
#[derive(Debug, Clone)]
pub struct AsyncApiOptions {
    /// `info.title`.
    pub title: String,
    /// `info.version`: the version of the API the document describes.
    pub version: String,
    /// The relay's subject template (`Relay::subjects`).
    pub subjects: SubjectTemplate,
}

impl Default for AsyncApiOptions {
    fn default() -> Self {
        Self {
            title: "Herald events".into(),
            version: "1.0.0".into(),
            subjects: SubjectTemplate::default(),
        }
    }
}

/// Why a subject template was refused: the runtime refuses the same templates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectTemplateError {
    #[error("the subject template is empty: use e.g. `herald.{{direction}}.{{type}}`")]
    Empty,
    #[error("the subject template `{template}` has an unmatched `{brace}`")]
    UnmatchedBrace { template: String, brace: char },
    #[error(
        "the subject template `{template}` has the unknown placeholder `{{{name}}}`: use \
         {{type}}, {{direction}}, {{tier}}, {{aggregate_type}}, {{aggregate_id}} or {{tenant}}"
    )]
    UnknownPlaceholder { template: String, name: String },
    #[error(
        "the subject template `{template}` has an empty token (a leading, trailing or doubled \
         `.`), which NATS refuses in a subject"
    )]
    EmptyToken { template: String },
    #[error(
        "the subject template `{template}` contains {character:?}: NATS subjects cannot hold \
         whitespace, and `*` and `>` are wildcards, which only subscriptions may use"
    )]
    InvalidCharacter { template: String, character: char },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Type,
    Direction,
    Tier,
    AggregateType,
    /// Varies per event: a channel parameter.
    AggregateId,
    /// Varies per event: a channel parameter.
    Tenant,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "type" => Self::Type,
            "direction" => Self::Direction,
            "tier" => Self::Tier,
            "aggregate_type" => Self::AggregateType,
            "aggregate_id" => Self::AggregateId,
            "tenant" => Self::Tenant,
            _ => return None,
        })
    }

    fn parameter(self) -> Option<&'static str> {
        match self {
            Self::AggregateId => Some("aggregate_id"),
            Self::Tenant => Some("tenant"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder(Placeholder),
}

/// The relay's subject template, checked by the runtime's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl Default for SubjectTemplate {
    fn default() -> Self {
        Self {
            source: Self::DEFAULT.into(),
            pieces: vec![
                Piece::Literal("herald.".into()),
                Piece::Placeholder(Placeholder::Direction),
                Piece::Literal(".".into()),
                Piece::Placeholder(Placeholder::Type),
            ],
        }
    }
}

impl std::fmt::Display for SubjectTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl SubjectTemplate {
    /// The runtime's default (`SubjectTemplate::DEFAULT` of `herald::relay`).
    pub const DEFAULT: &'static str = "herald.{direction}.{type}";

    pub fn parse(template: &str) -> Result<Self, SubjectTemplateError> {
        let owned = || template.to_owned();
        if template.is_empty() {
            return Err(SubjectTemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(character) = rest.chars().next() {
            match character {
                '{' => {
                    let end = rest
                        .find('}')
                        .filter(|end| !rest[1..*end].contains('{'))
                        .ok_or_else(|| SubjectTemplateError::UnmatchedBrace {
                            template: owned(),
                            brace: '{',
                        })?;
                    let name = &rest[1..end];
                    let placeholder = Placeholder::parse(name).ok_or_else(|| {
                        SubjectTemplateError::UnknownPlaceholder {
                            template: owned(),
                            name: name.to_owned(),
                        }
                    })?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(placeholder));
                    rest = &rest[end + 1..];
                }
                '}' => {
                    return Err(SubjectTemplateError::UnmatchedBrace {
                        template: owned(),
                        brace: '}',
                    });
                }
                '*' | '>' => {
                    return Err(SubjectTemplateError::InvalidCharacter {
                        template: owned(),
                        character,
                    });
                }
                other if other.is_whitespace() => {
                    return Err(SubjectTemplateError::InvalidCharacter {
                        template: owned(),
                        character,
                    });
                }
                other => {
                    literal.push(other);
                    rest = &rest[other.len_utf8()..];
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let parsed = Self {
            source: owned(),
            pieces,
        };
        // A filled placeholder is never empty, so only the literal text can empty a token.
        if parsed.fill(|_| "x".into()).split('.').any(str::is_empty) {
            return Err(SubjectTemplateError::EmptyToken { template: owned() });
        }
        Ok(parsed)
    }

    fn fill(&self, mut value: impl FnMut(Placeholder) -> String) -> String {
        let mut subject = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => subject.push_str(text),
                Piece::Placeholder(placeholder) => subject.push_str(&value(*placeholder)),
            }
        }
        subject
    }

    /// The channel address of `event`: its subject, with `{aggregate_id}` and `{tenant}` left
    /// as AsyncAPI channel parameters (they differ from event to event).
    pub fn address(&self, event: &Event) -> String {
        self.fill(|placeholder| match placeholder {
            Placeholder::Type => token(&event.name),
            // An audit-tier event has no direction; the relay puts `audit` in its place.
            Placeholder::Direction => match &event.routing {
                Routing::Domain { direction, .. } => direction.as_str().to_owned(),
                Routing::Audit => "audit".to_owned(),
            },
            Placeholder::Tier => match &event.routing {
                Routing::Domain { .. } => "domain".to_owned(),
                Routing::Audit => "audit".to_owned(),
            },
            Placeholder::AggregateType => token(event.aggregate.as_deref().unwrap_or(MISSING)),
            Placeholder::AggregateId => "{aggregate_id}".to_owned(),
            Placeholder::Tenant => "{tenant}".to_owned(),
        })
    }

    /// The placeholders that vary per event, in the order they appear, each once.
    fn parameters(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for piece in &self.pieces {
            if let Piece::Placeholder(placeholder) = piece
                && let Some(name) = placeholder.parameter()
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
        names
    }
}

/// What the relay puts in a subject for a value an event does not have.
const MISSING: &str = "_";

/// `value` as one subject token, as the relay writes it: NATS's reserved characters become `_`.
fn token(value: &str) -> String {
    if value.is_empty() {
        return MISSING.to_owned();
    }
    value
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// Whether the service sends or receives `event` over NATS, by the relay's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Relayed out: change and outbound events (and audit events, when asked for).
    Send,
    /// Read in by `Inbound`.
    Receive,
}

fn action(event: &Event) -> Action {
    match &event.routing {
        Routing::Domain {
            direction: Direction::Inbound,
            ..
        } => Action::Receive,
        _ => Action::Send,
    }
}

/// The AsyncAPI 3.0 document of every event of `model`, in type order.
pub fn asyncapi_document(model: &Model, options: &AsyncApiOptions) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for event in &model.events {
        let name = &event.name;
        let message_ref = json!({ "$ref": format!("#/components/messages/{name}") });
        let mut channel = Map::new();
        match action(event) {
            // The consumer reads whatever its stream and filter subject hold (another service's
            // relay decides the subject) and routes by `Herald-Type`: no one address is right.
            Action::Receive => {
                channel.insert("address".into(), Value::Null);
                channel.insert(
                    "description".into(),
                    format!(
                        "Messages read by `Inbound` from its stream (the subject is the \
                         sender's; the consumer's filter subject narrows it) whose `Herald-Type` \
                         is `{name}`."
                    )
                    .into(),
                );
            }
            Action::Send => {
                channel.insert("address".into(), options.subjects.address(event).into());
                let mut description = format!(
                    "The subject the relay publishes `{name}` on (subject template `{}`).",
                    options.subjects
                );
                if event.routing == Routing::Audit {
                    description.push_str(
                        " Audit events are relayed only by a relay whose filter includes them \
                         (`EventFilter::include_audit`).",
                    );
                }
                channel.insert("description".into(), description.into());
                let parameters: Map<String, Value> = options
                    .subjects
                    .parameters()
                    .into_iter()
                    .map(|parameter| {
                        let description = match parameter {
                            "aggregate_id" => {
                                "The aggregate id, with `.`, `*`, `>` and whitespace replaced by \
                                 `_` (`_` alone when the event has none); `Herald-Aggregate-Id` \
                                 holds it exactly."
                            }
                            _ => {
                                "The tenant, with `.`, `*`, `>` and whitespace replaced by `_` \
                                 (`_` alone when the event has none); `Herald-Tenant` holds it \
                                 exactly."
                            }
                        };
                        (parameter.to_owned(), json!({ "description": description }))
                    })
                    .collect();
                if !parameters.is_empty() {
                    channel.insert("parameters".into(), Value::Object(parameters));
                }
            }
        }
        channel.insert("messages".into(), json!({ name: message_ref }));
        channels.insert(name.clone(), Value::Object(channel));

        let (verb, summary) = match action(event) {
            Action::Send => (
                "send",
                format!("Relays `{name}` once its transaction commits, at least once."),
            ),
            Action::Receive => (
                "receive",
                format!("Stores `{name}` as an inbound event, once per message id."),
            ),
        };
        operations.insert(
            format!("{verb}_{name}"),
            json!({
                "action": verb,
                "channel": { "$ref": format!("#/channels/{name}") },
                "summary": summary,
                "messages": [{ "$ref": format!("#/channels/{name}/messages/{name}") }],
            }),
        );
        messages.insert(name.clone(), message(event));
    }
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": options.title,
            "version": options.version,
            "description": "Generated by `codegen-cli asyncapi` from the event declarations. \
                            Delivery is at least once: deduplicate on `Nats-Msg-Id`, the event id.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages },
    })
}

/// Pretty JSON with a trailing newline, as checked in.
pub fn asyncapi_json(model: &Model, options: &AsyncApiOptions) -> String {
    let mut text = serde_json::to_string_pretty(&asyncapi_document(model, options))
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

fn message(event: &Event) -> Value {
    let mut message = Map::new();
    message.insert("name".into(), event.name.clone().into());
    message.insert("title".into(), event.struct_name.clone().into());
    if let Some(description) = &event.description {
        message.insert("summary".into(), description.trim().into());
    }
    message.insert("contentType".into(), "application/json".into());
    message.insert("headers".into(), headers(event));
    message.insert("payload".into(), payload::embedded_json_schema(event));
    Value::Object(message)
}

/// The headers the relay sets (`relay/outbound.rs`), as the inbound consumer reads them.
fn headers(event: &Event) -> Value {
    let uuid = |description: &str| json!({ "type": "string", "format": "uuid", "description": description });
    let mut properties = Map::new();
    let receives = action(event) == Action::Receive;
    properties.insert(
        "Nats-Msg-Id".into(),
        if receives {
            json!({
                "type": "string",
                "description": "The event id when it is a UUID (what a Herald relay sends); \
                                otherwise the event id is derived from it and the stream.",
            })
        } else {
            uuid("The event id: JetStream drops a repeat within its duplicate window; deduplicate on it beyond that.")
        },
    );
    properties.insert(
        "Herald-Type".into(),
        json!({ "type": "string", "const": event.name, "description": "The event type." }),
    );
    properties.insert(
        "Herald-Version".into(),
        json!({
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": format!(
                "The payload's schema version, in decimal; this document describes version {}. {}",
                event.version,
                if receives {
                    "An older version is upcast when it is stored."
                } else {
                    "An event stored under an older version is sent with that version."
                }
            ),
        }),
    );
    let mut required = vec![
        "Nats-Msg-Id",
        "Herald-Type",
        "Herald-Version",
        "Herald-Occurred-At",
    ];
    if let Some(aggregate) = &event.aggregate {
        properties.insert(
            "Herald-Aggregate-Type".into(),
            json!({ "type": "string", "const": aggregate, "description": "The aggregate type." }),
        );
        properties.insert(
            "Herald-Aggregate-Id".into(),
            json!({ "type": "string", "description": "The aggregate id, exactly as published." }),
        );
    }
    properties.insert(
        "Herald-Tenant".into(),
        json!({ "type": "string", "description": "The tenant, when the event has one." }),
    );
    properties.insert(
        "Herald-Correlation-Id".into(),
        uuid("The id shared by a chain of events caused by one another, when set."),
    );
    properties.insert(
        "Herald-Causation-Id".into(),
        uuid("The id of the event that caused this one, when set."),
    );
    properties.insert(
        "Herald-Occurred-At".into(),
        json!({
            "type": "string",
            "format": "date-time",
            "description": "When the fact happened: RFC 3339 in UTC with microseconds, e.g. 2026-01-31T09:30:00.123456Z.",
        }),
    );
    // What the inbound consumer insists on: the type routes the message; the id, version and
    // time it derives or defaults when they are absent.
    if receives {
        required = vec!["Herald-Type"];
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The templates the runtime refuses are refused here, for the same reasons.
    #[test]
    fn templates_are_checked_by_the_relays_rules() {
        let refused = |template: &str| SubjectTemplate::parse(template).err();
        assert_eq!(refused(""), Some(SubjectTemplateError::Empty));
        assert!(matches!(
            refused("herald.{type"),
            Some(SubjectTemplateError::UnmatchedBrace { brace: '{', .. })
        ));
        assert!(matches!(
            refused("herald.type}"),
            Some(SubjectTemplateError::UnmatchedBrace { brace: '}', .. })
        ));
        assert!(matches!(
            refused("herald.{kind}"),
            Some(SubjectTemplateError::UnknownPlaceholder { name, .. }) if name == "kind"
        ));
        assert!(matches!(
            refused("herald..{type}"),
            Some(SubjectTemplateError::EmptyToken { .. })
        ));
        assert!(matches!(
            refused("herald.>"),
            Some(SubjectTemplateError::InvalidCharacter { character: '>', .. })
        ));
        assert_eq!(
            SubjectTemplate::parse(SubjectTemplate::DEFAULT).ok(),
            Some(SubjectTemplate::default())
        );
    }

    #[test]
    fn varying_placeholders_are_parameters_once_each() {
        let template =
            SubjectTemplate::parse("t.{tenant}.{aggregate_id}.x{tenant}.{type}").expect("valid");
        assert_eq!(template.parameters(), ["tenant", "aggregate_id"]);
    }
}

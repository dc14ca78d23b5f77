//! The subject an event is published on: a template checked once, when it is parsed, and
//! filled per event; and the NATS rules of subject filters that the stream check needs.

use std::fmt;
use std::str::FromStr;

use crate::event::EventMeta;
use crate::store::StoredEvent;

/// What a placeholder of a [`SubjectTemplate`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// The event type, e.g. `contact_created`.
    Type,
    /// `inbound`, `change` or `outbound`; `audit` for an audit-tier event, which has none.
    Direction,
    /// `domain` or `audit`.
    Tier,
    /// The aggregate type, e.g. `contact`.
    AggregateType,
    /// The aggregate id: differs from event to event.
    AggregateId,
    /// The tenant: differs from event to event.
    Tenant,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 6] = [
        ("type", Placeholder::Type),
        ("direction", Placeholder::Direction),
        ("tier", Placeholder::Tier),
        ("aggregate_type", Placeholder::AggregateType),
        ("aggregate_id", Placeholder::AggregateId),
        ("tenant", Placeholder::Tenant),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(spelling, _)| *spelling == name)
            .map(|(_, placeholder)| *placeholder)
    }

    /// The value for an event type; `None` for the placeholders that vary per event.
    fn static_value(self, meta: &EventMeta) -> Option<&'static str> {
        match self {
            Placeholder::Type => Some(meta.event_type),
            Placeholder::Direction => Some(
                meta.direction()
                    .map_or("audit", |direction| direction.as_str()),
            ),
            Placeholder::Tier => Some(meta.tier().as_str()),
            Placeholder::AggregateType => Some(meta.aggregate.unwrap_or(MISSING)),
            Placeholder::AggregateId | Placeholder::Tenant => None,
        }
    }
}

/// Stands in a subject for a value the event does not have (no aggregate, no tenant).
const MISSING: &str = "_";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder(Placeholder),
}

/// Why a subject template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectTemplateError {
    /// The template is empty.
    #[error("the subject template is empty: use e.g. `herald.{{direction}}.{{type}}`")]
    Empty,
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("the subject template `{template}` has an unmatched `{brace}`")]
    UnmatchedBrace {
        /// The template.
        template: String,
        /// The brace without a partner.
        brace: char,
    },
    /// A placeholder that names nothing the relay knows.
    #[error(
        "the subject template `{template}` has the unknown placeholder `{{{name}}}`: use \
         {{type}}, {{direction}}, {{tier}}, {{aggregate_type}}, {{aggregate_id}} or {{tenant}}"
    )]
    UnknownPlaceholder {
        /// The template.
        template: String,
        /// The name between the braces.
        name: String,
    },
    /// A token (the text between dots) is empty: a leading, trailing or doubled dot.
    #[error(
        "the subject template `{template}` has an empty token (a leading, trailing or doubled \
         `.`), which NATS refuses in a subject"
    )]
    EmptyToken {
        /// The template.
        template: String,
    },
    /// A character NATS does not allow in a published subject.
    #[error(
        "the subject template `{template}` contains {character:?}: NATS subjects cannot hold \
         whitespace, and `*` and `>` are wildcards, which only subscriptions may use"
    )]
    InvalidCharacter {
        /// The template.
        template: String,
        /// The character.
        character: char,
    },
}

/// The subject each relayed event is published on, with placeholders filled from the event:
/// `{type}`, `{direction}` (`audit` for an audit-tier event), `{tier}`, `{aggregate_type}`,
/// `{aggregate_id}` and `{tenant}`. The default is `herald.{direction}.{type}`.
///
/// A value is put in a subject with every character that NATS reserves (`.`, `*`, `>`,
/// whitespace) replaced by `_`, and `_` alone stands for a value the event does not have (no
/// aggregate, no tenant); the headers carry the exact values.
///
/// ```
/// # use herald::relay::SubjectTemplate;
/// let template: SubjectTemplate = "crm.{aggregate_type}.{aggregate_id}.{type}".parse()?;
/// assert!("crm.{nope}".parse::<SubjectTemplate>().is_err());
/// # Ok::<(), herald::relay::SubjectTemplateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl Default for SubjectTemplate {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default subject template is valid")
    }
}

impl fmt::Display for SubjectTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for SubjectTemplate {
    type Err = SubjectTemplateError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        Self::parse(template)
    }
}

impl SubjectTemplate {
    /// The template used when none is given.
    pub const DEFAULT: &'static str = "herald.{direction}.{type}";

    /// Parses and checks `template`: every placeholder known, every brace matched, no empty
    /// token, no character NATS refuses in a published subject.
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
                    let Some(end) = rest.find('}') else {
                        return Err(SubjectTemplateError::UnmatchedBrace {
                            template: owned(),
                            brace: '{',
                        });
                    };
                    let name = &rest[1..end];
                    if name.contains('{') {
                        return Err(SubjectTemplateError::UnmatchedBrace {
                            template: owned(),
                            brace: '{',
                        });
                    }
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
            source: template.to_owned(),
            pieces,
        };
        // Placeholders are never empty once filled, so only the literal text can make a token
        // empty: check the template with every placeholder as one character.
        let shape = parsed.fill(|_| "x".into());
        if shape.split('.').any(str::is_empty) {
            return Err(SubjectTemplateError::EmptyToken {
                template: template.to_owned(),
            });
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

    /// The subject of one stored event of the type `meta`.
    pub(crate) fn render(&self, meta: &EventMeta, event: &StoredEvent) -> String {
        self.fill(|placeholder| match placeholder.static_value(meta) {
            Some(value) => token(value),
            None => {
                let value = match placeholder {
                    Placeholder::AggregateId => event.aggregate_id.as_deref(),
                    _ => event.tenant_id.as_deref(),
                };
                token(value.unwrap_or(MISSING))
            }
        })
    }

    /// The subjects of every event of the type `meta`, as a NATS filter: the tokens that vary
    /// per event (aggregate id, tenant) are `*`.
    pub(crate) fn filter_for(&self, meta: &EventMeta) -> String {
        // A value that varies is filled in as `*`, which no `token` contains: a token that
        // holds one varies per event, whatever literal text surrounds it.
        let rendered = self.fill(|placeholder| match placeholder.static_value(meta) {
            Some(value) => token(value),
            None => "*".to_owned(),
        });
        let wildcard_tokens: Vec<&str> = rendered
            .split('.')
            .map(|part| if part.contains('*') { "*" } else { part })
            .collect();
        wildcard_tokens.join(".")
    }
}

/// `value` as one subject token: the characters NATS reserves replaced by `_`.
pub(crate) fn token(value: &str) -> String {
    if value.is_empty() {
        return MISSING.to_owned();
    }
    value
        .chars()
        .map(|character| match character {
            '.' | '*' | '>' => '_',
            other if other.is_whitespace() || other.is_control() => '_',
            other => other,
        })
        .collect()
}

/// Whether the NATS subject filter `filter` matches every subject that `pattern` (itself a
/// filter) matches: `herald.>` covers `herald.change.*`, `herald.*.x` does not cover
/// `herald.>`.
pub(crate) fn covers(filter: &str, pattern: &str) -> bool {
    let mut filter_tokens = filter.split('.');
    let mut pattern_tokens = pattern.split('.');
    loop {
        match (filter_tokens.next(), pattern_tokens.next()) {
            (None, None) => return true,
            // `>` matches one token or more: the pattern must have one left here.
            (Some(">"), Some(_)) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some("*"), Some(">")) => return false,
            (Some("*"), Some(_)) => {}
            (Some(literal), Some(token)) => {
                if literal != token {
                    return false;
                }
            }
        }
    }
}

/// Whether some subject matches both NATS filters `a` and `b`.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let mut a_tokens = a.split('.');
    let mut b_tokens = b.split('.');
    loop {
        match (a_tokens.next(), b_tokens.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(x), Some(y)) => {
                if x != "*" && y != "*" && x != y {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, RetryPolicy, Routing};

    const META: EventMeta = EventMeta {
        event_type: "contact_created",
        version: 1,
        routing: Routing::Domain {
            direction: Direction::Change,
            pool: "events_change",
        },
        aggregate: Some("contact"),
        source: None,
        destination: None,
        retry: RetryPolicy::DEFAULT,
        description: None,
    };

    fn event(aggregate_id: Option<&str>, tenant: Option<&str>) -> StoredEvent {
        StoredEvent {
            position: 1,
            id: uuid::Uuid::nil(),
            event_type: "contact_created".into(),
            version: 1,
            pool: Some("events_change".into()),
            aggregate_type: Some("contact".into()),
            aggregate_id: aggregate_id.map(str::to_owned),
            tenant_id: tenant.map(str::to_owned),
            correlation_id: None,
            causation_id: None,
            payload: "{}".into(),
            occurred_at: chrono::Utc::now(),
            recorded_at: chrono::Utc::now(),
            claims: 1,
            blocked_subscribers: Vec::new(),
            unreadable: None,
            trace: None,
        }
    }

    #[test]
    fn the_default_is_direction_then_type() {
        let subject = SubjectTemplate::default().render(&META, &event(Some("c-1"), None));
        assert_eq!(subject, "herald.change.contact_created");
    }

    #[test]
    fn every_placeholder_is_filled_and_values_become_tokens() {
        let template =
            SubjectTemplate::parse("x.{tier}.{aggregate_type}.{aggregate_id}.{tenant}-t").unwrap();
        let subject = template.render(&META, &event(Some("a.b *>c"), None));
        assert_eq!(subject, "x.domain.contact.a_b___c._-t");
        assert_eq!(template.filter_for(&META), "x.domain.contact.*.*");
    }

    #[test]
    fn bad_templates_are_refused_with_their_reason() {
        let refused = |template: &str| SubjectTemplate::parse(template).unwrap_err();
        assert_eq!(refused(""), SubjectTemplateError::Empty);
        assert!(matches!(
            refused("a.{nope}"),
            SubjectTemplateError::UnknownPlaceholder { name, .. } if name == "nope"
        ));
        assert!(matches!(
            refused("a.{type"),
            SubjectTemplateError::UnmatchedBrace { brace: '{', .. }
        ));
        assert!(matches!(
            refused("a.type}"),
            SubjectTemplateError::UnmatchedBrace { brace: '}', .. }
        ));
        assert!(matches!(
            refused("a..{type}"),
            SubjectTemplateError::EmptyToken { .. }
        ));
        assert!(matches!(
            refused(".{type}"),
            SubjectTemplateError::EmptyToken { .. }
        ));
        assert!(matches!(
            refused("a.>"),
            SubjectTemplateError::InvalidCharacter { .. }
        ));
        assert!(matches!(
            refused("a b.{type}"),
            SubjectTemplateError::InvalidCharacter { character: ' ', .. }
        ));
    }

    #[test]
    fn filters_cover_by_the_nats_rules() {
        assert!(covers("herald.>", "herald.change.contact_created"));
        assert!(covers("herald.>", "herald.change.*"));
        assert!(covers(
            "herald.*.contact_created",
            "herald.change.contact_created"
        ));
        assert!(covers("herald.change.*", "herald.change.*"));
        assert!(!covers("herald.change.contact_created", "herald.change.*"));
        assert!(!covers("herald.*", "herald.change.contact_created"));
        assert!(!covers("herald.>", "herald"));
        assert!(!covers("herald.*.x", "herald.>"));
        assert!(!covers("other.>", "herald.change.x"));
    }

    #[test]
    fn filters_overlap_when_one_subject_matches_both() {
        assert!(overlaps("herald.>", "herald.dead.*"));
        assert!(overlaps("herald.*.x", "herald.dead.*"));
        assert!(!overlaps("herald.change.>", "herald.dead.*"));
        assert!(!overlaps("herald.*", "herald.dead.*"));
    }
}

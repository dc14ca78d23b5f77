//! A YAML document as a tree of nodes that all know where they are in the source.
//!
//! The files are read into this tree first and into typed declarations second (see `parse`),
//! so that one file with three mistakes reports three diagnostics instead of the first one
//! serde would stop at.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diagnostic::Span;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// How the value is named in "expected …, found …" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A YAML syntax error.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
}

/// Parses one YAML document. An empty document is `Value::Null`.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    if source.trim().is_empty() {
        return Ok(Node {
            value: Value::Null,
            span: Span {
                line: 1,
                column: 1,
                ..Span::default()
            },
        });
    }
    let mut options = serde_saphyr::Options::default();
    // Repeated keys reach our reader, which reports both places.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    serde_saphyr::from_str_with_options::<Node>(source, options).map_err(|err| {
        let span = err.location().map(|l| span_of(&l, source)).unwrap_or(Span {
            line: 1,
            column: 1,
            ..Span::default()
        });
        let mut options = serde_saphyr::RenderOptions::default();
        options.snippets = serde_saphyr::SnippetMode::Off;
        SyntaxError {
            span,
            message: strip_position(&err.render_with_options(options)),
        }
    })
}

/// The parser's own text ends with its idea of the position; ours is shown in the snippet.
fn strip_position(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or(message).trim();
    match first_line.rfind(" at line ") {
        Some(at) => first_line[..at].to_owned(),
        None => first_line.to_owned(),
    }
}

fn span_of(location: &serde_saphyr::Location, source: &str) -> Span {
    let line = u32::try_from(location.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(location.column()).unwrap_or(u32::MAX);
    let span = location.span();
    let start = match span.byte_offset() {
        Some(offset) => usize::try_from(offset).unwrap_or(source.len()),
        None => offset_of(source, line, column),
    };
    let len = span
        .byte_len()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0);
    Span {
        start: start.min(source.len()),
        end: (start + len).min(source.len()),
        line,
        column,
    }
}

/// Byte offset of a 1-based line and character column.
fn offset_of(source: &str, line: u32, column: u32) -> usize {
    let line_start = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum::<usize>();
    let rest = &source[line_start.min(source.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(i, _)| i)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let location = spanned.referenced;
        let span = location.span();
        // No source text here: the YAML deserializer of a string source gives byte offsets.
        let start = span
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .unwrap_or(0);
        let len = span
            .byte_len()
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        Ok(Node {
            value: spanned.value,
            span: Span {
                start,
                end: start + len,
                line: u32::try_from(location.line()).unwrap_or(u32::MAX),
                column: u32::try_from(location.column()).unwrap_or(u32::MAX),
            },
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_place() {
        let src = "type: contact_created\npayload:\n  contact_id: { type: uuid }\n";
        let node = parse(src).expect("valid yaml");
        let Value::Map(entries) = &node.value else {
            panic!("expected a map, got {node:?}")
        };
        let (key, value) = &entries[0];
        assert_eq!(&src[key.span.start..key.span.end], "type");
        assert_eq!(&src[value.span.start..value.span.end], "contact_created");
        assert_eq!((value.span.line, value.span.column), (1, 7));
        let Value::Map(payload) = &entries[1].1.value else {
            panic!("expected a map")
        };
        let (field, body) = &payload[0];
        assert_eq!(&src[field.span.start..field.span.end], "contact_id");
        assert_eq!((body.span.line, body.span.column), (3, 15));
        let Value::Map(body) = &body.value else {
            panic!("expected a map")
        };
        assert_eq!(&src[body[0].1.span.start..body[0].1.span.end], "uuid");
    }

    #[test]
    fn scalars_keep_their_yaml_type() {
        let node = parse("a: 1\nb: true\nc: '1'\nd: 1.5\ne: ~\n").expect("valid yaml");
        let Value::Map(entries) = node.value else {
            panic!("expected a map")
        };
        let values: Vec<_> = entries.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Bool(true),
                Value::Str("1".into()),
                Value::Float(1.5),
                Value::Null
            ]
        );
    }

    #[test]
    fn syntax_errors_have_a_position_and_a_plain_message() {
        let err = parse("type: a\npayload: {\n").expect_err("unterminated flow map");
        assert!(err.span.line >= 2, "{err:?}");
        assert!(!err.message.contains("\n"), "{err:?}");
    }
}

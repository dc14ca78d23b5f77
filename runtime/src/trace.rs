//! Trace context carried through the outbox: the W3C `traceparent` (and `tracestate`) of the
//! span that published an event or enqueued a job run is stored with the row, and restored as
//! the parent of the span that delivers the event or runs the job — so one trace shows the
//! request, its commit, each subscriber, the jobs it triggered and the events those publish,
//! even when a worker on another machine delivers them hours later.
//!
//! Capturing and restoring reads the OpenTelemetry context of `tracing` spans, which needs the
//! feature `opentelemetry` and a [`tracing-opentelemetry`] layer in the application's
//! subscriber. Without them nothing is captured, and the contexts that arrive from elsewhere
//! (a NATS message's `traceparent` header, [`crate::Publish::trace_context`]) are still stored
//! and passed on.
//!
//! [`tracing-opentelemetry`]: https://docs.rs/tracing-opentelemetry

use std::fmt;

/// A W3C trace context (<https://www.w3.org/TR/trace-context/>): the `traceparent` of a span
/// and its vendors' `tracestate`, as stored with an event or a job run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TraceContext {
    traceparent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a W3C traceparent: expected `00-<32 hex trace id>-<16 hex span id>-<2 hex \
     flags>` in lower case, with ids that are not all zeros"
)]
pub struct InvalidTraceparent {
    /// What was given (at most its first 100 characters).
    pub value: String,
}

/// The longest `tracestate` kept: the W3C limit is 32 entries of at most 256 characters each,
/// and a header longer than this is cut at an entry boundary rather than stored whole.
const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// Reads a `traceparent` header (and its `tracestate`, if any). Versions other than `00`
    /// are read by their first four fields, as the W3C specification asks of a reader; `ff`
    /// and anything malformed are refused.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, InvalidTraceparent> {
        let traceparent = traceparent.trim();
        let invalid = || InvalidTraceparent {
            value: traceparent.chars().take(100).collect(),
        };
        let bytes = traceparent.as_bytes();
        let hex = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .is_some_and(|part| part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        };
        let dash = |at: usize| bytes.get(at) == Some(&b'-');
        let well_formed = hex(0..2)
            && dash(2)
            && hex(3..35)
            && dash(35)
            && hex(36..52)
            && dash(52)
            && hex(53..55)
            && (bytes.len() == 55 || (&bytes[0..2] != b"00" && dash(55)));
        if !well_formed
            || &bytes[0..2] == b"ff"
            || bytes[3..35].iter().all(|b| *b == b'0')
            || bytes[36..52].iter().all(|b| *b == b'0')
        {
            return Err(invalid());
        }
        Ok(Self {
            // A later version's extra fields are not ours to pass on as version 00.
            traceparent: format!("00{}", &traceparent[2..55]),
            tracestate: tracestate.and_then(bounded_tracestate),
        })
    }

    /// The `traceparent` header value, e.g.
    /// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value, if the trace carries one.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id: 32 lower-case hex digits, what a tracing backend finds the trace by.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The id of the span that published or enqueued: 16 lower-case hex digits.
    pub fn span_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// Whether the publisher sampled the trace (flag `01`).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|flags| flags & 1 == 1)
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// Rebuilds a context from the two stored columns; a stored value that no longer parses
    /// (written by hand, say) is dropped rather than failing the read of its row.
    pub(crate) fn from_columns(
        traceparent: Option<String>,
        tracestate: Option<String>,
    ) -> Option<Self> {
        let traceparent = traceparent?;
        match Self::parse(&traceparent, tracestate.as_deref()) {
            Ok(context) => Some(context),
            Err(error) => {
                tracing::warn!(%error, "stored trace context ignored");
                None
            }
        }
    }

    /// The context of the current span, if it belongs to a trace (feature `opentelemetry`).
    pub fn current() -> Option<Self> {
        current()
    }

    /// Makes `span` a child of this context, when the OpenTelemetry layer records it (feature
    /// `opentelemetry`); otherwise does nothing. Call it before the span is first entered.
    pub fn set_as_parent_of(&self, span: &tracing::Span) {
        set_parent(span, self);
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent)
    }
}

/// The `tracestate` to keep: empty is none, and an overlong one is cut after its last whole
/// entry within [`MAX_TRACESTATE`] (entries are listed most important first).
fn bounded_tracestate(tracestate: &str) -> Option<String> {
    let tracestate = tracestate.trim();
    if tracestate.is_empty() {
        return None;
    }
    if tracestate.len() <= MAX_TRACESTATE {
        return Some(tracestate.to_owned());
    }
    let mut kept = String::new();
    for entry in tracestate.split(',') {
        let entry = entry.trim();
        if kept.len() + entry.len() + 1 > MAX_TRACESTATE {
            break;
        }
        if !kept.is_empty() {
            kept.push(',');
        }
        kept.push_str(entry);
    }
    (!kept.is_empty()).then_some(kept)
}

/// The context a new row is stored with: the one given explicitly, else the current span's.
pub(crate) fn or_current(given: Option<TraceContext>) -> Option<TraceContext> {
    given.or_else(current)
}

#[cfg(feature = "opentelemetry")]
fn current() -> Option<TraceContext> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let tracestate = span_context.trace_state().header();
    Some(TraceContext {
        traceparent: format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        ),
        tracestate: bounded_tracestate(&tracestate),
    })
}

#[cfg(not(feature = "opentelemetry"))]
fn current() -> Option<TraceContext> {
    None
}

#[cfg(feature = "opentelemetry")]
fn set_parent(span: &tracing::Span, context: &TraceContext) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    // `parse` guarantees the hex fields, so these conversions do not fail.
    let (Ok(trace_id), Ok(span_id), Ok(flags)) = (
        TraceId::from_hex(context.trace_id()),
        SpanId::from_hex(context.span_id()),
        u8::from_str_radix(&context.traceparent[53..55], 16),
    ) else {
        return;
    };
    let state = context
        .tracestate()
        .and_then(|header| header.parse::<TraceState>().ok())
        .unwrap_or_default();
    let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    // A span the subscriber filtered out, or one already entered, keeps its own parent: the
    // trace then has a gap, which is better than failing a delivery over it.
    if let Err(error) =
        span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
    {
        tracing::trace!(?error, "trace context not restored");
    }
}

#[cfg(not(feature = "opentelemetry"))]
fn set_parent(_span: &tracing::Span, _context: &TraceContext) {}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_is_read_into_its_parts() {
        let context = TraceContext::parse(PARENT, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.traceparent(), PARENT);
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.to_string(), PARENT);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        ] {
            let error = TraceContext::parse(bad, None).unwrap_err();
            assert!(
                error.to_string().contains("is not a W3C traceparent"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let context = TraceContext::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next",
            None,
        )
        .unwrap();
        assert_eq!(
            context.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        assert!(!context.sampled());
    }

    #[test]
    fn an_empty_tracestate_is_none_and_an_overlong_one_is_cut_between_entries() {
        assert_eq!(
            TraceContext::parse(PARENT, Some(" ")).unwrap().tracestate(),
            None
        );
        let entries: Vec<String> = (0..40)
            .map(|i| format!("vendor{i}=value{i:0>10}"))
            .collect();
        let long = entries.join(",");
        let kept = TraceContext::parse(PARENT, Some(&long)).unwrap();
        let kept = kept.tracestate().unwrap();
        assert!(kept.len() <= MAX_TRACESTATE, "{}", kept.len());
        assert!(long.starts_with(kept));
        assert!(
            kept.ends_with(char::is_numeric),
            "cut inside an entry: {kept}"
        );
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn a_stored_value_that_does_not_parse_is_dropped() {
        assert_eq!(
            TraceContext::from_columns(Some("garbage".into()), None),
            None
        );
        assert_eq!(TraceContext::from_columns(None, Some("a=b".into())), None);
        assert!(TraceContext::from_columns(Some(PARENT.into()), None).is_some());
    }
}

//! Inbound: a durable JetStream consumer whose messages become `inbound` events of the
//! registry, one transaction each, acknowledged only once committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::headers;
use super::subject::{overlaps, token};
use crate::bus::EventBus;
use crate::event::Direction;
use crate::event::catalog::Catalog;
use crate::outbox::{Publish, PublishError};
use crate::service::ServiceHandle;
use crate::store::Backend;
use crate::trace::TraceContext;

/// The namespace of the event ids derived from messages that carry no UUID as `Nats-Msg-Id`:
/// the same message gets the same id in every process, so a redelivery stores nothing new.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_2f6a_8d3b_4b7e_9a51_0f3c_7d2e_9b40);

/// How long a message whose event could not be stored (the database is down) waits before
/// JetStream delivers it again.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How long a refused message whose dead letter could not be published waits before JetStream
/// delivers it again.
const DEAD_LETTER_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Why an [`Inbound`] consumer did not start.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The stream to read does not exist.
    #[error("JetStream has no stream `{stream}` to read inbound messages from")]
    StreamMissing {
        /// The stream's name.
        stream: String,
    },
    /// No stream captures the dead-letter subjects, so a refused message would have nowhere to
    /// go.
    #[error(
        "no JetStream stream captures the dead-letter subjects `{prefix}.>`: create one (e.g. \
         `nats stream add HERALD_DEAD --subjects '{prefix}.>'`), so that refused messages are \
         kept with their reason"
    )]
    NoDeadLetterStream {
        /// The dead-letter subject prefix.
        prefix: String,
    },
    /// The consumer would read its own dead letters, and refuse them again, forever.
    #[error(
        "the consumer `{consumer}` of `{stream}` would read the dead letters it writes to \
         `{prefix}.>`: give it a filter subject that excludes them, or another dead-letter \
         prefix"
    )]
    ReadsItsDeadLetters {
        /// The stream's name.
        stream: String,
        /// The consumer's name.
        consumer: String,
        /// The dead-letter subject prefix.
        prefix: String,
    },
    /// The dead-letter prefix is not a valid subject.
    #[error(
        "the dead-letter prefix `{prefix}` is not a NATS subject without wildcards (tokens \
         separated by single dots, no whitespace, `*` or `>`)"
    )]
    InvalidDeadLetterPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// A JetStream request failed.
    #[error("JetStream could not {action} for the stream `{stream}`: {source}")]
    JetStream {
        /// What was asked.
        action: &'static str,
        /// The stream's name.
        stream: String,
        /// What the client reported.
        #[source]
        source: async_nats::Error,
    },
}

/// What an inbound consumer did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundStats {
    /// Messages stored as new events.
    pub stored: u64,
    /// Messages whose event was already stored (a redelivery): acknowledged, nothing written.
    pub duplicates: u64,
    /// Messages refused (unknown type, not inbound, payload that does not match) and
    /// published to the dead-letter subject with their reason.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
}

/// Reads a durable JetStream pull consumer and stores each message as an `inbound` event of the
/// registry `C`, through [`EventBus::publish_json`] in a transaction of its own, then
/// acknowledges it. The bus's subscribers and the jobs the event triggers run as for any
/// published event.
///
/// A message becomes the event named by its `Herald-Type` header, with the body as payload and
/// the other [`headers`](super::headers) as the event's aggregate id, tenant, correlation,
/// causation and time (`occurred_at` defaults to when JetStream stored the message). Its event
/// id is its `Nats-Msg-Id` when that is a UUID (a Herald relay sends the event id), otherwise a
/// UUID v5 of the stream and that message id, or of the stream and the message's sequence when
/// it has none: a message delivered again has the same id, and stores nothing new.
///
/// A message that cannot become an event (no or unknown type, a type that is not `inbound`, a
/// body that is not the type's payload) is published to `<dead-letter prefix>.<type>` with
/// its headers, its body and a `Herald-Reject-Reason` header, then terminated, and counted in
/// [`InboundStats::rejected`]. A message whose event could not be stored because the database
/// failed is left for JetStream to deliver again.
pub struct Inbound<C: Catalog, B: Backend> {
    bus: EventBus<C, B>,
    jetstream: jetstream::Context,
    stream: String,
    consumer: String,
    filter_subject: Option<String>,
    dead_letter_prefix: String,
    ack_wait: Duration,
}

impl<C: Catalog, B: Backend> std::fmt::Debug for Inbound<C, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("filter_subject", &self.filter_subject)
            .field("dead_letter_prefix", &self.dead_letter_prefix)
            .finish_non_exhaustive()
    }
}

impl<C: Catalog, B: Backend> Inbound<C, B> {
    /// The dead-letter subject prefix used unless told otherwise.
    pub const DEFAULT_DEAD_LETTER_PREFIX: &'static str = "herald.dead";

    /// A consumer of `stream` under the durable name `consumer`, storing into `bus`'s store.
    pub fn new(
        bus: &EventBus<C, B>,
        client: async_nats::Client,
        stream: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        Self {
            bus: bus.clone(),
            jetstream: jetstream::new(client),
            stream: stream.into(),
            consumer: consumer.into(),
            filter_subject: None,
            dead_letter_prefix: Self::DEFAULT_DEAD_LETTER_PREFIX.to_owned(),
            ack_wait: Duration::from_secs(30),
        }
    }

    /// Reads only the messages of the stream whose subject matches `filter` (when the consumer
    /// is created; an existing durable consumer keeps its own filter).
    pub fn filter_subject(mut self, filter: impl Into<String>) -> Self {
        self.filter_subject = Some(filter.into());
        self
    }

    /// Where refused messages go: `<prefix>.<type>` (default `herald.dead`).
    pub fn dead_letter_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.dead_letter_prefix = prefix.into();
        self
    }

    /// How long JetStream waits for the ack of a delivered message before it delivers it again
    /// (when the consumer is created).
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Checks the set-up (the stream exists, a stream keeps the dead letters, the consumer does
    /// not read them), creates the durable consumer if it does not exist, and starts consuming
    /// on the current tokio runtime.
    pub async fn start(self) -> Result<InboundHandle, InboundError> {
        let failed = |action: &'static str, stream: &str| {
            let stream = stream.to_owned();
            move |error: async_nats::Error| InboundError::JetStream {
                action,
                stream,
                source: error,
            }
        };
        let prefix = &self.dead_letter_prefix;
        if prefix.is_empty()
            || prefix
                .split('.')
                .any(|part| part.is_empty() || part != token(part))
        {
            return Err(InboundError::InvalidDeadLetterPrefix {
                prefix: prefix.clone(),
            });
        }
        let stream = match self.jetstream.get_stream(&self.stream).await {
            Ok(stream) => stream,
            Err(error) => {
                use async_nats::jetstream::context::GetStreamErrorKind;
                return Err(match error.kind() {
                    GetStreamErrorKind::JetStream(cause)
                        if cause.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        InboundError::StreamMissing {
                            stream: self.stream.clone(),
                        }
                    }
                    _ => failed("look up the stream", &self.stream)(Box::new(error)),
                });
            }
        };
        let dead_letters = format!("{prefix}.*");
        let dead_letter_stream = match self.jetstream.stream_by_subject(&dead_letters).await {
            Ok(name) => name,
            Err(error) => {
                use async_nats::jetstream::context::GetStreamByNameErrorKind;
                return Err(match error.kind() {
                    GetStreamByNameErrorKind::NotFound => InboundError::NoDeadLetterStream {
                        prefix: prefix.clone(),
                    },
                    _ => failed("find the dead-letter stream", &self.stream)(Box::new(error)),
                });
            }
        };
        // Checked before the consumer is created with the filter asked for, and again with
        // the filter of the consumer as it is (an existing durable keeps its own).
        let stream_subjects = stream.cached_info().config.subjects.clone();
        let reads_dead_letters = |filter: &str| {
            dead_letter_stream == self.stream
                && if filter.is_empty() {
                    stream_subjects
                        .iter()
                        .any(|subject| overlaps(subject, &dead_letters))
                } else {
                    overlaps(filter, &dead_letters)
                }
        };
        let filter = self.filter_subject.clone().unwrap_or_default();
        let loops = |inbound: &Self| InboundError::ReadsItsDeadLetters {
            stream: inbound.stream.clone(),
            consumer: inbound.consumer.clone(),
            prefix: inbound.dead_letter_prefix.clone(),
        };
        if reads_dead_letters(&filter) {
            return Err(loops(&self));
        }
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &self.consumer,
                pull::Config {
                    durable_name: Some(self.consumer.clone()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.ack_wait,
                    filter_subject: filter,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| failed("create the consumer", &self.stream)(Box::new(error)))?;
        if reads_dead_letters(&consumer.cached_info().config.filter_subject) {
            return Err(loops(&self));
        }
        let counters = Arc::new(Counters::default());
        let worker = Arc::new(Worker {
            bus: self.bus,
            jetstream: self.jetstream,
            dead_letter_prefix: self.dead_letter_prefix,
            counters: counters.clone(),
        });
        let service =
            ServiceHandle::spawn("inbound", move |stopped| consume(worker, consumer, stopped));
        Ok(InboundHandle { service, counters })
    }
}

/// A running [`Inbound`] consumer.
#[derive(Debug)]
pub struct InboundHandle {
    service: ServiceHandle,
    counters: Arc<Counters>,
}

impl InboundHandle {
    /// What the consumer did so far.
    pub fn stats(&self) -> InboundStats {
        InboundStats {
            stored: self.counters.stored.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops consuming after the message in hand; what is not acknowledged is delivered again
    /// by JetStream (to this consumer's next start, or another process of the same durable).
    pub async fn shutdown(self) {
        self.service.shutdown().await;
    }

    /// Whether the consumer has stopped.
    pub fn is_finished(&self) -> bool {
        self.service.is_finished()
    }
}

struct Worker<C: Catalog, B: Backend> {
    bus: EventBus<C, B>,
    jetstream: jetstream::Context,
    dead_letter_prefix: String,
    counters: Arc<Counters>,
}

/// What became of one message.
enum Outcome {
    Stored,
    Duplicate,
    /// It cannot become an event: dead-letter it with this reason.
    Refused(String),
    /// Storing it failed for a reason that may pass (the database): deliver it again later.
    Failed(String),
}

async fn consume<C: Catalog, B: Backend>(
    worker: Arc<Worker<C, B>>,
    consumer: PullConsumer,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "inbound: pulling from JetStream failed; retrying");
                pause(&mut stopped, Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = stopped.changed() => return,
            };
            match next {
                // The pull stream ended (the consumer was deleted, a request limit): open a new
                // one.
                None => break,
                Some(Err(error)) => {
                    // Missing heartbeats while the connection is down, mostly: the stream goes
                    // on pulling once it is back.
                    tracing::warn!(%error, "inbound: JetStream pull reported an error");
                    pause(&mut stopped, Duration::from_millis(100)).await;
                }
                Some(Ok(message)) => worker.handle(message).await,
            }
        }
        pause(&mut stopped, Duration::from_millis(100)).await;
    }
}

async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stopped.changed() => {}
    }
}

impl<C: Catalog, B: Backend> Worker<C, B> {
    async fn handle(&self, message: jetstream::Message) {
        let (stream, sequence, published) = match message.info() {
            Ok(info) => (
                info.stream.to_owned(),
                info.stream_sequence,
                DateTime::<Utc>::from_timestamp_nanos(
                    i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(i64::MAX),
                ),
            ),
            Err(error) => {
                // Not a JetStream delivery at all: nothing to derive an id from, nothing to
                // acknowledge.
                tracing::warn!(%error, subject = %message.subject, "inbound: not a JetStream message");
                return;
            }
        };
        let span =
            tracing::info_span!("herald.inbound", %stream, sequence, subject = %message.subject);
        let sender_trace = sender_trace(&message);
        if let Some(trace) = &sender_trace {
            trace.set_as_parent_of(&span);
        }
        async move {
        // The inbound span's own context when spans are traced (a child of the sender's),
        // else the sender's as it came.
        let trace = TraceContext::current().or(sender_trace);
        let outcome = self.store(&message, &stream, sequence, published, trace).await;
        let ack = match outcome {
            Outcome::Stored => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                message.ack().await
            }
            Outcome::Duplicate => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                message.ack().await
            }
            Outcome::Refused(reason) => {
                tracing::warn!(%reason, "inbound: message refused; dead-lettered");
                match self.dead_letter(&message, &stream, sequence, &reason).await {
                    Ok(()) => {
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        message.ack_with(AckKind::Term).await
                    }
                    Err(error) => {
                        tracing::error!(%error, "inbound: the dead letter could not be published; the message will be delivered again");
                        message
                            .ack_with(AckKind::Nak(Some(DEAD_LETTER_RETRY_DELAY)))
                            .await
                    }
                }
            }
            Outcome::Failed(error) => {
                tracing::warn!(%error, "inbound: storing the event failed; the message will be delivered again");
                message
                    .ack_with(AckKind::Nak(Some(STORE_RETRY_DELAY)))
                    .await
            }
        };
        if let Err(error) = ack {
            // JetStream delivers it again after the ack wait; storing it again is a no-op.
            tracing::warn!(%error, "inbound: the ack did not reach JetStream");
        }
        }
        .instrument(span)
        .await
    }

    async fn store(
        &self,
        message: &jetstream::Message,
        stream: &str,
        sequence: u64,
        published: DateTime<Utc>,
        trace: Option<TraceContext>,
    ) -> Outcome {
        let empty = HeaderMap::new();
        let message_headers = message.headers.as_ref().unwrap_or(&empty);
        let header = |name: &str| message_headers.get(name).map(|value| value.as_str());
        let Some(event_type) = header(headers::TYPE) else {
            return Outcome::Refused(format!(
                "the message has no `{}` header naming its event type",
                headers::TYPE
            ));
        };
        let Some(descriptor) = self.bus.registry().get(event_type) else {
            return Outcome::Refused(format!(
                "unknown event type `{event_type}`: it is not in this service's registry"
            ));
        };
        if descriptor.meta.direction() != Some(Direction::Inbound) {
            let kind = descriptor
                .meta
                .direction()
                .map_or("an audit", |direction| direction.as_str());
            return Outcome::Refused(format!(
                "`{event_type}` is {kind} event in this service's registry, not an inbound one: \
                 only inbound events are stored from JetStream"
            ));
        }
        let payload: serde_json::Value = match serde_json::from_slice(&message.payload) {
            Ok(payload) => payload,
            Err(error) => {
                return Outcome::Refused(format!(
                    "the body of `{event_type}` is not JSON: {error}"
                ));
            }
        };
        let id = event_id(stream, sequence, header(headers::MESSAGE_ID));
        let mut event = Publish::new(payload).id(id);
        if let Some(trace) = trace {
            event = event.trace_context(trace);
        }
        if descriptor.meta.aggregate.is_some()
            && let Some(aggregate_id) = header(headers::AGGREGATE_ID)
        {
            event = event.aggregate_id(aggregate_id);
        }
        if let Some(tenant) = header(headers::TENANT) {
            event = event.tenant(tenant);
        }
        for (name, set) in [
            (
                headers::CORRELATION_ID,
                Publish::correlation_id as fn(_, _) -> _,
            ),
            (headers::CAUSATION_ID, Publish::causation_id),
        ] {
            if let Some(value) = header(name) {
                match Uuid::parse_str(value) {
                    Ok(uuid) => event = set(event, uuid),
                    Err(error) => {
                        return Outcome::Refused(format!(
                            "the `{name}` header `{value}` is not a UUID: {error}"
                        ));
                    }
                }
            }
        }
        let occurred_at = match header(headers::OCCURRED_AT) {
            None => published,
            Some(value) => match DateTime::parse_from_rfc3339(value) {
                Ok(at) => at.with_timezone(&Utc),
                Err(error) => {
                    return Outcome::Refused(format!(
                        "the `{}` header `{value}` is not an RFC 3339 time: {error}",
                        headers::OCCURRED_AT
                    ));
                }
            },
        };
        event = event.occurred_at(occurred_at);
        // A message of an older version (a sender on the previous release) is upcast.
        if let Some(value) = header(headers::VERSION) {
            match value.parse::<u32>() {
                Ok(version) => event = event.payload_version(version),
                Err(error) => {
                    return Outcome::Refused(format!(
                        "the `{}` header `{value}` is not a version number: {error}",
                        headers::VERSION
                    ));
                }
            }
        }

        let store = self.bus.store();
        let mut tx = match store.begin().await {
            Ok(tx) => tx,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        let inserted = match self
            .bus
            .publish_json_reporting(&mut tx, event_type, event)
            .await
        {
            Ok((_, inserted)) => inserted,
            Err(PublishError::Store(error)) => return Outcome::Failed(error.to_string()),
            Err(refused) => return Outcome::Refused(refused.to_string()),
        };
        if let Err(error) = store.commit(tx).await {
            return Outcome::Failed(error.to_string());
        }
        if inserted {
            Outcome::Stored
        } else {
            Outcome::Duplicate
        }
    }

    /// Publishes the refused message, with its reason, where it is kept; `Ok` once JetStream
    /// acknowledged it.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        stream: &str,
        sequence: u64,
        reason: &str,
    ) -> Result<(), String> {
        let event_type = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(headers::TYPE))
            .map_or("unknown", |value| value.as_str());
        let subject = format!("{}.{}", self.dead_letter_prefix, token(event_type));
        let mut dead_headers = message.headers.clone().unwrap_or_default();
        // One dead letter per message: a refused message delivered again (its ack was lost) is
        // dropped by the dead-letter stream's duplicate window.
        dead_headers.insert(
            headers::MESSAGE_ID,
            format!("herald-dead/{stream}/{sequence}").as_str(),
        );
        // A reason quotes user input (a JSON error, a header): a line break would end the
        // header, so it is flattened.
        dead_headers.insert(
            headers::REJECT_REASON,
            reason.replace(['\r', '\n'], " ").as_str(),
        );
        dead_headers.insert(headers::ORIGINAL_SUBJECT, message.subject.as_str());
        dead_headers.insert(headers::ORIGINAL_SEQUENCE, sequence.to_string().as_str());
        let publish = PublishMessage::build()
            .payload(message.payload.clone())
            .headers(dead_headers);
        let ack = self
            .jetstream
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|error| format!("publishing to `{subject}` failed: {error}"))?;
        ack.await
            .map(drop)
            .map_err(|error| format!("JetStream did not store `{subject}`: {error}"))
    }
}

/// The sender's trace context, from the message's W3C headers. A malformed one is ignored, as
/// the W3C specification asks: it costs the trace its link, never the message.
fn sender_trace(message: &jetstream::Message) -> Option<TraceContext> {
    let message_headers = message.headers.as_ref()?;
    let traceparent = message_headers.get(headers::TRACEPARENT)?.as_str();
    let tracestate = message_headers
        .get(headers::TRACESTATE)
        .map(|value| value.as_str());
    match TraceContext::parse(traceparent, tracestate) {
        Ok(trace) => Some(trace),
        Err(error) => {
            tracing::debug!(%error, "inbound: trace context ignored");
            None
        }
    }
}

/// The event id of a message: its `Nats-Msg-Id` when that is a UUID, else a UUID v5 of the
/// stream and the message id (or sequence), the same in every process.
fn event_id(stream: &str, sequence: u64, message_id: Option<&str>) -> Uuid {
    match message_id {
        Some(id) => Uuid::parse_str(id).unwrap_or_else(|_| {
            Uuid::new_v5(
                &MESSAGE_ID_NAMESPACE,
                format!("{stream}/msg/{id}").as_bytes(),
            )
        }),
        None => Uuid::new_v5(
            &MESSAGE_ID_NAMESPACE,
            format!("{stream}/seq/{sequence}").as_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_message_id_is_the_event_id() {
        let id = Uuid::now_v7();
        assert_eq!(event_id("S", 7, Some(&id.to_string())), id);
    }

    #[test]
    fn other_ids_are_derived_the_same_way_every_time() {
        assert_eq!(
            event_id("S", 7, Some("order-1")),
            event_id("S", 9, Some("order-1"))
        );
        assert_ne!(
            event_id("S", 7, Some("order-1")),
            event_id("T", 7, Some("order-1"))
        );
        assert_eq!(event_id("S", 7, None), event_id("S", 7, None));
        assert_ne!(event_id("S", 7, None), event_id("S", 8, None));
    }
}

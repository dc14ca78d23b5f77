//! Outbound: the relay subscriber, which publishes each committed event to JetStream and
//! succeeds only once JetStream acknowledged it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use chrono::SecondsFormat;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::filter::EventFilter;
use super::headers;
use super::subject::{SubjectTemplate, covers};
use crate::bus::EventBus;
use crate::drain::DrainConfig;
use crate::event::catalog::Catalog;
use crate::event::registry::EventDescriptor;
use crate::retry::RetryTiming;
use crate::store::{Backend, StoredEvent};

/// Why the relay's stream is not fit, or JetStream could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The stream does not exist.
    #[error(
        "JetStream has no stream `{stream}`: create it with subjects {subjects:?} and a \
         duplicate window of at least {horizon:?} (e.g. `nats stream add {stream} --subjects \
         '{first}' --dupe-window {horizon_secs}s`), or call `Relay::ensure_stream`",
        first = subjects.first().map(String::as_str).unwrap_or("herald.>"),
        horizon_secs = horizon.as_secs() + 1
    )]
    StreamMissing {
        /// The stream's name.
        stream: String,
        /// The subjects the relay publishes on, as filters.
        subjects: Vec<String>,
        /// The shortest duplicate window that covers the relay's retries.
        horizon: Duration,
    },
    /// Some subjects the relay publishes on are not in the stream: JetStream would not store
    /// those messages (or another stream would).
    #[error(
        "the stream `{stream}` (subjects {stream_subjects:?}) does not capture the subjects \
         {missing:?} that the relay publishes on: add them to the stream, or call \
         `Relay::ensure_stream`"
    )]
    SubjectsNotCovered {
        /// The stream's name.
        stream: String,
        /// The stream's subjects.
        stream_subjects: Vec<String>,
        /// The relay's subjects (as filters) that no subject of the stream covers.
        missing: Vec<String>,
    },
    /// The stream forgets message ids sooner than the relay may publish an event again, so a
    /// retry after a lost ack could store the event twice.
    #[error(
        "the stream `{stream}` keeps message ids for {window:?}, but the relay may publish an \
         event again up to {horizon:?} after its first attempt (its retries, their timeouts and \
         a lease): raise the stream's duplicate window to at least {horizon:?} (e.g. `nats \
         stream edit {stream} --dupe-window {horizon_secs}s`), or call `Relay::ensure_stream`",
        horizon_secs = horizon.as_secs() + 1
    )]
    DuplicateWindowTooShort {
        /// The stream's name.
        stream: String,
        /// The stream's duplicate window.
        window: Duration,
        /// The relay's retry horizon.
        horizon: Duration,
    },
    /// A JetStream request failed.
    #[error("JetStream could not {action} the stream `{stream}`: {source}")]
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

/// What a relay did since it was created: every attempt of every delivery counts once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Messages JetStream stored.
    pub published: u64,
    /// Publishes JetStream acknowledged as duplicates of a message it already had (a retry
    /// after a lost ack, a re-delivery by the drain): delivered, stored once.
    pub duplicates: u64,
    /// Attempts that failed (no ack in time, no stream, no connection): the drain retries them.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
}

/// Sends committed events to a NATS JetStream stream, as an ordinary subscriber of the drain:
/// each delivery is one publish, acknowledged by JetStream before the drain records it, so the
/// drain's retries, dead letters, re-drive and per-aggregate order apply unchanged.
///
/// Each message carries the event id as `Nats-Msg-Id`, so a publish repeated within the
/// stream's duplicate window (a retry after a lost ack, a worker killed before it recorded the
/// delivery) is stored once; the [`headers`](super::headers) name the event, and the body is
/// the payload's JSON as it was stored.
///
/// ```no_run
/// # async fn demo<C: herald::Catalog, B: herald::Backend>(bus: herald::EventBus<C, B>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use herald::relay::Relay;
/// let client = herald::relay::async_nats::connect("nats://127.0.0.1:4222").await?;
/// let relay = Relay::new(client, "HERALD");
/// relay.ensure_stream().await?; // or check_stream, when operators own the stream
/// relay.subscribe(&bus);
/// let drain = bus.drain().spawn();
/// # Ok(()) }
/// ```
pub struct Relay<C: Catalog> {
    jetstream: jetstream::Context,
    stream: Arc<str>,
    subjects: SubjectTemplate,
    filter: EventFilter,
    name: String,
    publish_timeout: Duration,
    retry: RetryTiming,
    lease: Duration,
    counters: Arc<Counters>,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog> Clone for Relay<C> {
    fn clone(&self) -> Self {
        Self {
            jetstream: self.jetstream.clone(),
            stream: self.stream.clone(),
            subjects: self.subjects.clone(),
            filter: self.filter.clone(),
            name: self.name.clone(),
            publish_timeout: self.publish_timeout,
            retry: self.retry,
            lease: self.lease,
            counters: self.counters.clone(),
            catalog: PhantomData,
        }
    }
}

impl<C: Catalog> std::fmt::Debug for Relay<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("stream", &self.stream)
            .field("subjects", &self.subjects)
            .field("filter", &self.filter)
            .field("name", &self.name)
            .field("publish_timeout", &self.publish_timeout)
            .finish_non_exhaustive()
    }
}

impl<C: Catalog> Relay<C> {
    /// The subscriber name a relay registers under unless told otherwise.
    pub const DEFAULT_NAME: &'static str = "nats_relay";

    /// A relay to the stream `stream` over `client`, with the default subjects
    /// ([`SubjectTemplate::DEFAULT`]), events ([`EventFilter::default`]), a publish timeout of
    /// 10 s, and the retry horizon of a drain with the default [`DrainConfig`].
    pub fn new(client: async_nats::Client, stream: impl Into<String>) -> Self {
        let drain = DrainConfig::default();
        Self {
            jetstream: jetstream::new(client),
            stream: stream.into().into(),
            subjects: SubjectTemplate::default(),
            filter: EventFilter::default(),
            name: Self::DEFAULT_NAME.to_owned(),
            publish_timeout: Duration::from_secs(10),
            retry: drain.retry,
            lease: drain.lease,
            counters: Arc::default(),
            catalog: PhantomData,
        }
    }

    /// The subjects events are published on.
    pub fn subjects(mut self, template: SubjectTemplate) -> Self {
        self.subjects = template;
        self
    }

    /// Which events are published.
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The subscriber name (default [`Relay::DEFAULT_NAME`]): it names the relay's deliveries,
    /// retries and dead letters in the outbox, so keep it stable; two relays of one bus (to two
    /// streams) need two names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long one publish may wait for JetStream's ack before the attempt counts as failed.
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// The retry timing and lease of the drain that runs the relay, for
    /// [`Relay::retry_horizon`]; pass the same [`DrainConfig`] as the drain's.
    pub fn drain_config(mut self, config: &DrainConfig) -> Self {
        self.retry = config.retry;
        self.lease = config.lease;
        self
    }

    /// The stream the relay publishes to.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The event types of the registry that the relay publishes.
    pub fn event_types(&self) -> Vec<&'static EventDescriptor> {
        C::registry()
            .iter()
            .filter(|descriptor| self.filter.matches(&descriptor.meta))
            .collect()
    }

    /// The subjects the relay publishes on, as NATS filters (`*` for a token that varies per
    /// event): what the stream must capture.
    pub fn stream_subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self
            .event_types()
            .iter()
            .map(|descriptor| self.subjects.filter_for(&descriptor.meta))
            .collect();
        subjects.sort();
        subjects.dedup();
        subjects
    }

    /// The longest time from an event's first publish to its last retry: the retry delays of
    /// its policy (at their longest, before jitter), one publish timeout per attempt, and a
    /// lease (a worker killed after publishing leaves its claim for another worker to take
    /// after that long). A duplicate window at least this long stores each event once however
    /// its attempts went; only a re-drive by hand can come later.
    pub fn retry_horizon(&self) -> Duration {
        self.event_types()
            .iter()
            .map(|descriptor| {
                let policy = descriptor.meta.retry;
                let attempts = policy.max_attempts().get();
                let delays: Duration = (1..attempts)
                    .map(|attempt| {
                        policy
                            .backoff
                            .delay(self.retry.base, self.retry.cap, attempt)
                    })
                    .sum();
                delays + self.publish_timeout.saturating_mul(attempts) + self.lease
            })
            .max()
            .unwrap_or_default()
    }

    /// What the relay did so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            published: self.counters.published.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Checks that the stream exists, captures every subject of [`Relay::stream_subjects`],
    /// and keeps message ids at least [`Relay::retry_horizon`]: call it at start-up when
    /// operators own the stream.
    pub async fn check_stream(&self) -> Result<(), RelayError> {
        let Some(config) = self.stream_config().await? else {
            return Err(self.missing());
        };
        let missing: Vec<String> = self
            .stream_subjects()
            .into_iter()
            .filter(|subject| !config.subjects.iter().any(|filter| covers(filter, subject)))
            .collect();
        if !missing.is_empty() {
            return Err(RelayError::SubjectsNotCovered {
                stream: self.stream.to_string(),
                stream_subjects: config.subjects,
                missing,
            });
        }
        let horizon = self.retry_horizon();
        if config.duplicate_window < horizon {
            return Err(RelayError::DuplicateWindowTooShort {
                stream: self.stream.to_string(),
                window: config.duplicate_window,
                horizon,
            });
        }
        Ok(())
    }

    /// Creates the stream when it is missing (file storage, the relay's subjects, a duplicate
    /// window of the retry horizon, at least JetStream's default of two minutes); when it
    /// exists, adds the subjects it lacks and raises its duplicate window to the horizon,
    /// leaving every other setting as it was.
    pub async fn ensure_stream(&self) -> Result<(), RelayError> {
        let horizon = self.retry_horizon();
        let subjects = self.stream_subjects();
        let failed = |action: &'static str| {
            let stream = self.stream.to_string();
            move |error: async_nats::error::Error<_>| RelayError::JetStream {
                action,
                stream,
                source: Box::new(error),
            }
        };
        match self.stream_config().await? {
            None => {
                let config = jetstream::stream::Config {
                    name: self.stream.to_string(),
                    subjects,
                    duplicate_window: horizon.max(Duration::from_secs(120)),
                    ..Default::default()
                };
                self.jetstream
                    .create_stream(config)
                    .await
                    .map(drop)
                    .map_err(failed("create"))
            }
            Some(mut config) => {
                let mut changed = false;
                for subject in subjects {
                    if !config
                        .subjects
                        .iter()
                        .any(|filter| covers(filter, &subject))
                    {
                        config.subjects.push(subject);
                        changed = true;
                    }
                }
                if config.duplicate_window < horizon {
                    config.duplicate_window = horizon;
                    changed = true;
                }
                if !changed {
                    return Ok(());
                }
                self.jetstream
                    .update_stream(config)
                    .await
                    .map(drop)
                    .map_err(failed("update"))
            }
        }
    }

    /// The stream's configuration, or `None` when it does not exist.
    async fn stream_config(&self) -> Result<Option<jetstream::stream::Config>, RelayError> {
        use async_nats::jetstream::context::GetStreamErrorKind;
        match self.jetstream.get_stream(&*self.stream).await {
            Ok(stream) => Ok(Some(stream.cached_info().config.clone())),
            Err(error) => match error.kind() {
                GetStreamErrorKind::JetStream(cause)
                    if cause.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(RelayError::JetStream {
                    action: "look up",
                    stream: self.stream.to_string(),
                    source: Box::new(error),
                }),
            },
        }
    }

    fn missing(&self) -> RelayError {
        RelayError::StreamMissing {
            stream: self.stream.to_string(),
            subjects: self.stream_subjects(),
            horizon: self.retry_horizon(),
        }
    }

    /// Registers the relay as the subscriber [`Relay::name`] of every event type of
    /// [`Relay::event_types`] on `bus` (and its clones). Every process that drains those
    /// events' pools must register it too, as with any subscriber.
    ///
    /// # Panics
    /// When one of those types already has a subscriber of that name.
    pub fn subscribe<B: Backend>(&self, bus: &EventBus<C, B>) -> &Self {
        let types: Vec<&'static str> = self
            .event_types()
            .iter()
            .map(|descriptor| descriptor.meta.event_type)
            .collect();
        let relay = self.clone();
        bus.subscribers()
            .add_raw(&self.name, &types, move |event, _attempt| {
                relay.deliver(event)
            });
        self
    }

    /// One delivery: the message is built from the row now, and the future publishes it and
    /// waits for JetStream's ack.
    fn deliver(&self, event: &StoredEvent) -> BoxFuture<'static, Result<(), String>> {
        let message = C::registry()
            .get(&event.event_type)
            .ok_or_else(|| {
                format!(
                    "`{}` is not in this process's registry: it cannot be given a subject",
                    event.event_type
                )
            })
            .and_then(|descriptor| {
                Ok((
                    self.subjects.render(&descriptor.meta, event),
                    message_headers(event)?,
                ))
            });
        let (subject, headers) = match message {
            Ok(message) => message,
            Err(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return std::future::ready(Err(error)).boxed();
            }
        };
        let payload = Bytes::from(event.payload.clone());
        let relay = self.clone();
        async move {
            let publish = PublishMessage::build().payload(payload).headers(headers);
            let outcome = relay.publish(&subject, publish).await;
            let counter = match &outcome {
                Ok(true) => &relay.counters.duplicates,
                Ok(false) => &relay.counters.published,
                Err(_) => &relay.counters.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            outcome.map(drop)
        }
        .boxed()
    }

    /// Publishes and waits for the ack; `Ok(true)` when JetStream already had the message.
    async fn publish(&self, subject: &str, message: PublishMessage) -> Result<bool, String> {
        // The whole exchange is bounded, not just the wait for the ack: while the connection
        // is down, handing the message to the client can wait too.
        let exchange = async {
            let ack: PublishAckFuture = self
                .jetstream
                .send_publish(subject.to_owned(), message)
                .await
                .map_err(|error| describe(subject, error.kind(), &error))?;
            ack.await
                .map_err(|error| describe(subject, error.kind(), &error))
        };
        let ack = tokio::time::timeout(self.publish_timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "JetStream did not acknowledge `{subject}` within {:?}",
                    self.publish_timeout
                )
            })??;
        if *ack.stream != *self.stream {
            return Err(format!(
                "`{subject}` was stored by the stream `{}`, not by `{}`: the relay's subjects \
                 overlap another stream's (see `Relay::check_stream`)",
                ack.stream, self.stream
            ));
        }
        Ok(ack.duplicate)
    }
}

fn describe(subject: &str, kind: PublishErrorKind, error: &dyn std::fmt::Display) -> String {
    match kind {
        PublishErrorKind::StreamNotFound => format!(
            "no JetStream stream captures `{subject}`: create the stream or add the subject \
             (see `Relay::check_stream`)"
        ),
        _ => format!("publishing `{subject}` to JetStream failed: {error}"),
    }
}

/// The headers of the message of `event` (see [`super::headers`]).
fn message_headers(event: &StoredEvent) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    let mut put = |name: &'static str, value: String| -> Result<(), String> {
        // Aggregate ids and tenants are the application's strings: a line break in one would
        // end the header, so it is refused rather than sent cut.
        let value = value.parse::<async_nats::HeaderValue>().map_err(|_| {
            format!("the {name} header cannot carry {value:?}: NATS headers hold no line break")
        })?;
        map.insert(name, value);
        Ok(())
    };
    put(headers::MESSAGE_ID, event.id.to_string())?;
    put(headers::TYPE, event.event_type.clone())?;
    put(headers::VERSION, event.version.to_string())?;
    if let Some(aggregate_type) = &event.aggregate_type {
        put(headers::AGGREGATE_TYPE, aggregate_type.clone())?;
    }
    if let Some(aggregate_id) = &event.aggregate_id {
        put(headers::AGGREGATE_ID, aggregate_id.clone())?;
    }
    if let Some(tenant) = &event.tenant_id {
        put(headers::TENANT, tenant.clone())?;
    }
    if let Some(correlation) = event.correlation_id {
        put(headers::CORRELATION_ID, correlation.to_string())?;
    }
    if let Some(causation) = event.causation_id {
        put(headers::CAUSATION_ID, causation.to_string())?;
    }
    if let Some(trace) = &event.trace {
        put(headers::TRACEPARENT, trace.traceparent().to_owned())?;
        if let Some(tracestate) = trace.tracestate() {
            put(headers::TRACESTATE, tracestate.to_owned())?;
        }
    }
    put(
        headers::OCCURRED_AT,
        event
            .occurred_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    )?;
    Ok(map)
}

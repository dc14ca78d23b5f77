//! The relay to NATS JetStream against a real server (`HERALD_TEST_NATS_URL`; each test says
//! SKIPPED and returns when it is unset), on SQLite and on PostgreSQL. Every test has a stream
//! and subjects of its own, so they run in parallel.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use herald::relay::async_nats::jetstream::message::{PublishMessage, StreamMessage};
use herald::relay::async_nats::{HeaderMap, jetstream};
use herald::relay::{Inbound, InboundError, InboundStats, Relay, RelayError, headers};
use herald::uuid::Uuid;
use herald::{
    Backend, DrainConfig, Envelope, EventBus, HandlerError, Publish, RetryTiming, ServiceHandle,
    Store, TraceContext,
};
use integration_tests::domain::events::ContactCreated;
use integration_tests::domain::{AppEvent, TypedEventBus};
use integration_tests::nats::{Proxy, TestStream, connect, nats_url};
use integration_tests::support::eventually;

const DEADLINE: Duration = Duration::from_secs(60);
/// A sender's W3C trace context, from the specification's examples.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE";

/// Quick retries and a short poll backstop, so that failures are retried within the test.
fn drain_config() -> DrainConfig {
    DrainConfig {
        poll_interval: Duration::from_millis(50),
        retry: RetryTiming {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        ..DrainConfig::default()
    }
}

/// `<prefix>.{direction}.{type}`: the default subjects, under the test's prefix.
fn relay_subjects(test: &TestStream) -> herald::relay::SubjectTemplate {
    format!("{}.{{direction}}.{{type}}", test.prefix)
        .parse()
        .expect("valid template")
}

/// A relay to the test's stream, on subjects under the test's prefix.
fn relay(client: &herald::relay::async_nats::Client, test: &TestStream) -> Relay<AppEvent> {
    Relay::new(client.clone(), &test.name)
        .subjects(relay_subjects(test))
        .drain_config(&drain_config())
}

fn contact_created(n: u128) -> ContactCreated {
    ContactCreated {
        contact_id: Uuid::from_u128(n % 1_000 + 1),
        account_id: None,
        created_by: Uuid::from_u128(n),
    }
}

fn header<'a>(message: &'a StreamMessage, name: &str) -> Option<&'a str> {
    message.headers.get(name).map(|value| value.as_str())
}

/// Publishes `count` `contact_created` events spread over `aggregates` contacts, and returns
/// each contact's event ids in the order they were published.
async fn publish_events<B: Backend>(
    store: &Store<B>,
    count: u128,
    aggregates: u128,
) -> HashMap<String, Vec<Uuid>> {
    let bus = TypedEventBus::new(store.clone());
    let mut order: HashMap<String, Vec<Uuid>> = HashMap::new();
    let events: Vec<(String, Uuid, ContactCreated)> = (0..count)
        .map(|n| {
            let contact = Uuid::from_u128(n % aggregates + 1).to_string();
            (contact, Uuid::now_v7(), contact_created(n))
        })
        .collect();
    for chunk in events.chunks(250) {
        let mut tx = store.begin().await.unwrap();
        let batch = chunk.iter().map(|(contact, id, payload)| {
            Publish::new(payload.clone()).id(*id).aggregate_id(contact)
        });
        bus.publish_many(&mut tx, batch).await.unwrap();
        store.commit(tx).await.unwrap();
        for (contact, id, _) in chunk {
            order.entry(contact.clone()).or_default().push(*id);
        }
    }
    order
}

/// The stream holds each expected event exactly once, and each aggregate's in publication
/// order.
fn assert_once_and_in_order(messages: &[StreamMessage], expected: &HashMap<String, Vec<Uuid>>) {
    let total: usize = expected.values().map(Vec::len).sum();
    let ids: Vec<&str> = messages
        .iter()
        .map(|message| header(message, headers::MESSAGE_ID).expect("Nats-Msg-Id"))
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an event is twice in the stream");
    assert_eq!(messages.len(), total, "every event once in the stream");
    let mut seen: HashMap<String, Vec<Uuid>> = HashMap::new();
    for message in messages {
        let aggregate = header(message, headers::AGGREGATE_ID).expect("aggregate id header");
        let id = header(message, headers::MESSAGE_ID)
            .unwrap()
            .parse()
            .unwrap();
        seen.entry(aggregate.to_owned()).or_default().push(id);
    }
    for (aggregate, ids) in expected {
        assert_eq!(
            seen.get(aggregate),
            Some(ids),
            "the events of {aggregate} are out of order (or missing) in the stream"
        );
    }
}

/// Runs each listed `async fn scenario<B: Backend>(store: Store<B>, nats_url: String)` on
/// SQLite and on PostgreSQL (a schema each), as `sqlite::scenario` and `postgres::scenario`;
/// skipped with a message when NATS (or PostgreSQL) is not configured.
macro_rules! on_sqlite_and_postgres {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(nats) = integration_tests::nats::nats_url(stringify!($scenario))
                    else {
                        return;
                    };
                    let (_dir, store) = integration_tests::support::sqlite().await;
                    super::$scenario(store, nats).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(nats) = integration_tests::nats::nats_url(stringify!($scenario))
                    else {
                        return;
                    };
                    let Some(schema) =
                        integration_tests::support::PostgresSchema::create(stringify!($scenario))
                            .await
                    else {
                        return;
                    };
                    super::$scenario(schema.store(10).await, nats).await;
                    schema.drop().await;
                }
            )*
        }
    };
}

on_sqlite_and_postgres!(
    message_carries_headers_body_and_event_id,
    order_per_aggregate_survives_intermittent_failures,
    redrive_of_a_published_event_stores_no_second_message,
    deliveries_retry_while_nats_is_unreachable,
    inbound_message_delivered_again_is_stored_once,
    bad_inbound_messages_end_on_the_dead_letter_subject,
    two_services_end_to_end,
);

async fn message_carries_headers_body_and_event_id<B: Backend>(store: Store<B>, nats: String) {
    let client = connect(&nats).await;
    let test = TestStream::new(&client);
    let relay = relay(&client, &test);
    relay.ensure_stream().await.expect("ensure the stream");
    relay
        .check_stream()
        .await
        .expect("the ensured stream passes the check");
    let bus = TypedEventBus::new(store.clone());
    relay.subscribe(&bus);

    let payload = contact_created(42);
    let (correlation, causation) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.unwrap();
    let id = bus
        .publish_with(
            &mut tx,
            Publish::new(payload.clone())
                .aggregate_id("contact-42")
                .tenant("acme")
                .correlation_id(correlation)
                .causation_id(causation)
                .trace_context(TraceContext::parse(TRACEPARENT, Some(TRACESTATE)).unwrap()),
        )
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let summary = bus
        .drain()
        .config(drain_config())
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(summary.delivered, 1);

    let messages = test.messages(&test.name).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(
        message.subject.as_str(),
        format!("{}.change.contact_created", test.prefix)
    );
    let id_text = id.to_string();
    let correlation_text = correlation.to_string();
    let causation_text = causation.to_string();
    for (name, value) in [
        (headers::MESSAGE_ID, id_text.as_str()),
        (headers::TYPE, "contact_created"),
        (headers::VERSION, "1"),
        (headers::AGGREGATE_TYPE, "contact"),
        (headers::AGGREGATE_ID, "contact-42"),
        (headers::TENANT, "acme"),
        (headers::CORRELATION_ID, correlation_text.as_str()),
        (headers::CAUSATION_ID, causation_text.as_str()),
        (headers::TRACEPARENT, TRACEPARENT),
        (headers::TRACESTATE, TRACESTATE),
    ] {
        assert_eq!(header(message, name), Some(value), "header {name}");
    }
    let occurred_at = header(message, headers::OCCURRED_AT).expect("occurred-at header");
    let occurred_at = herald::chrono::DateTime::parse_from_rfc3339(occurred_at).unwrap();
    assert!(
        (herald::chrono::Utc::now() - occurred_at.to_utc())
            .num_seconds()
            .abs()
            < 60
    );
    assert!(occurred_at.to_rfc3339().len() > 20, "{occurred_at}");
    let body: herald::serde_json::Value = herald::serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(body, herald::serde_json::to_value(&payload).unwrap());
    let stats = relay.stats();
    assert_eq!((stats.published, stats.duplicates, stats.failed), (1, 0, 0));
    test.delete(&[&test.name]).await;
}

/// 1,000 events on 20 aggregates while the relay's connection to NATS is cut after every
/// 16 KiB it sends (some 40 messages): the publishes in flight fail, some after JetStream
/// stored the message (their ack lost), the drain retries them, and the stream ends up with
/// every event once, each aggregate's in order.
async fn order_per_aggregate_survives_intermittent_failures<B: Backend>(
    store: Store<B>,
    nats: String,
) {
    let proxy = Proxy::cutting_every(&nats, 16 * 1024).await;
    let direct = connect(&nats).await;
    let test = TestStream::new(&direct);
    let through_proxy = connect(&proxy.url()).await;
    // The stream is set up over the direct connection, which is never cut.
    relay(&direct, &test)
        .ensure_stream()
        .await
        .expect("ensure the stream");
    // Loopback acks take well under a millisecond: a short timeout keeps a cut from holding a
    // batch for long.
    let relay = Relay::<AppEvent>::new(through_proxy, &test.name)
        .subjects(relay_subjects(&test))
        .drain_config(&drain_config())
        .publish_timeout(Duration::from_millis(100));
    let expected = publish_events(&store, 1_000, 20).await;

    let bus = TypedEventBus::new(store.clone());
    relay.subscribe(&bus);
    let drain = bus.drain().config(drain_config()).spawn();
    eventually("every event in the stream", DEADLINE, || async {
        test.count(&test.name).await >= 1_000 && store.stats().await.unwrap().pending_events == 0
    })
    .await;
    eventually("every delivery recorded", DEADLINE, || async {
        let stats = store.stats().await.unwrap();
        stats.pending_events == 0 && stats.retrying_deliveries == 0
    })
    .await;
    drain.shutdown().await;

    assert!(
        store.dead_letters(10).await.unwrap().is_empty(),
        "no delivery ran out of attempts"
    );
    assert_once_and_in_order(&test.messages(&test.name).await, &expected);
    let stats = relay.stats();
    assert!(
        stats.failed > 0,
        "the cuts made no publish fail, so the test proved nothing: {stats:?}"
    );
    assert!(
        stats.duplicates > 0,
        "no ack was lost after JetStream stored the message: {stats:?}"
    );
    eprintln!("relay under cuts: {stats:?}");
    test.delete(&[&test.name]).await;
}

/// A delivery that failed after JetStream stored the message (here: the relay expected another
/// stream name, so it refused the ack) ends as a dead letter; re-driving it publishes the
/// event again, and JetStream acknowledges that as a duplicate: one message in the stream.
async fn redrive_of_a_published_event_stores_no_second_message<B: Backend>(
    store: Store<B>,
    nats: String,
) {
    let client = connect(&nats).await;
    let test = TestStream::new(&client);
    let good = relay(&client, &test);
    good.ensure_stream().await.expect("ensure the stream");
    // Same subjects, so JetStream stores its messages in the test's stream, and acks them as
    // that stream's: this relay counts each such ack as a failure.
    let wrong_stream = Relay::<AppEvent>::new(client.clone(), format!("{}_OTHER", test.name))
        .subjects(relay_subjects(&test));
    let first_bus = TypedEventBus::new(store.clone());
    wrong_stream.subscribe(&first_bus);
    let mut tx = store.begin().await.unwrap();
    let id = first_bus
        .publish(&mut tx, "contact-1", contact_created(1))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    first_bus
        .drain()
        .retry(RetryTiming {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        })
        .run_until_idle()
        .await
        .unwrap();
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "the refused acks dead-lettered the delivery");
    assert!(
        dead[0].last_error.contains("not by"),
        "{}",
        dead[0].last_error
    );
    assert_eq!(wrong_stream.stats().failed, 10, "every attempt published");
    assert_eq!(
        test.count(&test.name).await,
        1,
        "ten publishes, one message"
    );

    let second_bus = TypedEventBus::new(store.clone());
    good.subscribe(&second_bus);
    assert_eq!(
        store
            .redrive(&herald::ops::Redrive::event(id))
            .await
            .unwrap(),
        1
    );
    second_bus
        .drain()
        .config(drain_config())
        .run_until_idle()
        .await
        .unwrap();
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    let stats = good.stats();
    assert_eq!((stats.published, stats.duplicates), (0, 1));
    let messages = test.messages(&test.name).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        header(&messages[0], headers::MESSAGE_ID),
        Some(id.to_string().as_str())
    );
    test.delete(&[&test.name]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_checks_say_what_is_wrong() {
    let Some(nats) = nats_url("stream_checks_say_what_is_wrong") else {
        return;
    };
    let client = connect(&nats).await;
    let test = TestStream::new(&client);
    // The default drain config: ten attempts with exponential backoff from 1 s, 10 s publish
    // timeouts and a 30 s lease, far longer than JetStream's default window of two minutes.
    let relay = Relay::<AppEvent>::new(client.clone(), &test.name).subjects(relay_subjects(&test));
    let horizon = relay.retry_horizon();
    assert!(horizon > Duration::from_secs(120), "{horizon:?}");

    let missing = relay.check_stream().await.unwrap_err();
    assert!(
        matches!(missing, RelayError::StreamMissing { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("ensure_stream"), "{missing}");

    test.create(&test.name, vec![test.subject("change.contact_created")])
        .await;
    let uncovered = relay.check_stream().await.unwrap_err();
    let RelayError::SubjectsNotCovered { missing, .. } = &uncovered else {
        panic!("expected uncovered subjects, got {uncovered}");
    };
    assert!(
        missing.contains(&test.subject("change.contact_updated")),
        "{missing:?}"
    );
    assert!(!missing.contains(&test.subject("change.contact_created")));

    let only_created = relay
        .clone()
        .filter(herald::relay::EventFilter::default().types(["contact_created"]));
    let short = only_created.check_stream().await.unwrap_err();
    assert!(
        matches!(short, RelayError::DuplicateWindowTooShort { window, .. } if window == Duration::from_secs(120)),
        "{short}"
    );

    relay
        .ensure_stream()
        .await
        .expect("ensure raises the window, adds subjects");
    relay.check_stream().await.expect("fit after ensure_stream");
    test.delete(&[&test.name]).await;
}

/// Service B of the inbound tests: its own registry, in which `contact_created` (service A's
/// change event) is an inbound event from the CRM, beside a change event of its own.
mod service_b {
    use herald::uuid::Uuid;
    use herald::{Catalog, EventDescriptor, InCatalog, Registry};

    #[derive(
        Debug,
        Clone,
        PartialEq,
        herald::serde::Serialize,
        herald::serde::Deserialize,
        herald::schemars::JsonSchema,
        herald::Event,
    )]
    #[serde(crate = "herald::serde", deny_unknown_fields)]
    #[schemars(crate = "herald::schemars")]
    #[event(type = "contact_created", direction = "inbound", source = "crm")]
    pub struct CrmContactCreated {
        pub contact_id: Uuid,
        pub account_id: Option<Uuid>,
        pub created_by: Uuid,
    }

    #[derive(
        Debug,
        Clone,
        herald::serde::Serialize,
        herald::serde::Deserialize,
        herald::schemars::JsonSchema,
        herald::Event,
    )]
    #[serde(crate = "herald::serde", deny_unknown_fields)]
    #[schemars(crate = "herald::schemars")]
    #[event(type = "invoice_sent", direction = "change", aggregate = "invoice")]
    pub struct InvoiceSent {
        pub invoice_id: Uuid,
    }

    pub struct ServiceB;

    // Sorted by type, as `Registry::new` requires.
    static REGISTRY: Registry = Registry::new(&[
        EventDescriptor::of::<CrmContactCreated>(),
        EventDescriptor::of::<InvoiceSent>(),
    ]);

    impl Catalog for ServiceB {
        fn registry() -> &'static Registry {
            &REGISTRY
        }
    }

    impl InCatalog<ServiceB> for CrmContactCreated {}
    impl InCatalog<ServiceB> for InvoiceSent {}

    /// What B's triggered job is given of the contact.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct NewContact {
        pub contact_id: Uuid,
    }

    impl From<&CrmContactCreated> for NewContact {
        fn from(event: &CrmContactCreated) -> Self {
            Self {
                contact_id: event.contact_id,
            }
        }
    }

    /// B's job triggered by the inbound event, enqueued in the transaction that stores it.
    #[herald::job_handler(triggers = [CrmContactCreated])]
    pub async fn welcome_contact(
        _ctx: herald::JobContext,
        input: NewContact,
    ) -> Result<Uuid, herald::JobError> {
        Ok(input.contact_id)
    }
}

use service_b::{CrmContactCreated, ServiceB};

/// The streams of an inbound test: `<name>` on `<prefix>.in.>`, and `<name>_DEAD` on
/// `<prefix>.dead.>` for the dead letters.
async fn inbound_streams(test: &TestStream) -> (String, String) {
    let dead = format!("{}_DEAD", test.name);
    test.create(&test.name, vec![test.subject("in.>")]).await;
    test.create(&dead, vec![test.subject("dead.>")]).await;
    (test.name.clone(), dead)
}

/// Publishes a message to JetStream and waits for its ack.
async fn send(
    jetstream: &jetstream::Context,
    subject: String,
    headers: &[(&str, &str)],
    body: &str,
) {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    jetstream
        .send_publish(
            subject,
            PublishMessage::build()
                .payload(body.to_owned().into())
                .headers(map),
        )
        .await
        .expect("publish")
        .await
        .expect("JetStream ack");
}

fn crm_contact_json(n: u128) -> String {
    herald::serde_json::to_string(&contact_created(n)).unwrap()
}

/// A subscriber of B's inbound event that records the envelopes it sees.
fn record_contacts<B: Backend>(
    bus: &EventBus<ServiceB, B>,
) -> Arc<Mutex<Vec<Envelope<CrmContactCreated>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    bus.subscribe("crm_contacts", move |event: Envelope<CrmContactCreated>| {
        sink.lock().unwrap().push(event);
        async { Ok::<_, HandlerError>(()) }
    });
    seen
}

async fn wait_for_stats(handle: &herald::relay::InboundHandle, expected: InboundStats) {
    eventually(&format!("inbound stats {expected:?}"), DEADLINE, || async {
        handle.stats() == expected
    })
    .await;
}

fn start_drain<C: herald::Catalog, B: Backend>(bus: &EventBus<C, B>) -> ServiceHandle {
    bus.drain().config(drain_config()).spawn()
}

/// A message read twice (here by a second durable consumer of the same stream, as after an ack
/// that did not reach JetStream) has the same event id both times: the second read stores
/// nothing. With a UUID `Nats-Msg-Id` that id is the event id; without one, the id is derived
/// from the stream and the sequence.
async fn inbound_message_delivered_again_is_stored_once<B: Backend>(store: Store<B>, nats: String) {
    let client = connect(&nats).await;
    let jetstream = jetstream::new(client.clone());
    let test = TestStream::new(&client);
    let (stream, dead) = inbound_streams(&test).await;
    let message_id = Uuid::now_v7();
    let id_text = message_id.to_string();
    send(
        &jetstream,
        test.subject("in.contact"),
        &[
            (headers::TYPE, "contact_created"),
            (headers::MESSAGE_ID, &id_text),
            (headers::TRACEPARENT, TRACEPARENT),
        ],
        &crm_contact_json(1),
    )
    .await;
    send(
        &jetstream,
        test.subject("in.contact"),
        // A sender's broken trace context costs the trace its link, not the message.
        &[
            (headers::TYPE, "contact_created"),
            (headers::TRACEPARENT, "00-not-a-trace"),
        ],
        &crm_contact_json(2),
    )
    .await;

    let bus = EventBus::<ServiceB, B>::new(store.clone());
    let seen = record_contacts(&bus);
    let dead_prefix = test.subject("dead");
    let first = Inbound::new(&bus, client.clone(), &stream, "first")
        .dead_letter_prefix(&dead_prefix)
        .start()
        .await
        .expect("start the first consumer");
    let stored_twice = InboundStats {
        stored: 2,
        duplicates: 0,
        rejected: 0,
    };
    wait_for_stats(&first, stored_twice).await;
    first.shutdown().await;

    let second = Inbound::new(&bus, client.clone(), &stream, "second")
        .dead_letter_prefix(&dead_prefix)
        .start()
        .await
        .expect("start the second consumer");
    let read_again = InboundStats {
        stored: 0,
        duplicates: 2,
        rejected: 0,
    };
    wait_for_stats(&second, read_again).await;
    second.shutdown().await;

    let summary = bus.drain().run_until_idle().await.unwrap();
    assert_eq!(summary.events, 2, "two events stored, not four");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].id, message_id,
        "the UUID message id is the event id"
    );
    assert_eq!(seen[0].payload.created_by, Uuid::from_u128(1));
    assert_eq!(seen[1].payload.created_by, Uuid::from_u128(2));
    let trace_of = |id| {
        let store = store.clone();
        async move { store.event(id).await.unwrap().expect("stored").event.trace }
    };
    assert_eq!(
        trace_of(seen[0].id)
            .await
            .map(|trace| trace.traceparent().to_owned()),
        Some(TRACEPARENT.to_owned()),
        "the sender's trace context is stored with the event"
    );
    assert_eq!(trace_of(seen[1].id).await, None);
    assert_eq!(test.count(&dead).await, 0);
    test.delete(&[&stream, &dead]).await;
}

/// A message the inbound consumer must refuse, and where and why it must end.
struct BadMessage {
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    /// The last token of its dead-letter subject.
    dead_letter_token: &'static str,
    /// Words its `Herald-Reject-Reason` must contain.
    reason: &'static str,
}

/// Messages that cannot become inbound events are kept on the dead-letter subject with their
/// headers, body and reason, and terminated; nothing is stored for them.
async fn bad_inbound_messages_end_on_the_dead_letter_subject<B: Backend>(
    store: Store<B>,
    nats: String,
) {
    let client = connect(&nats).await;
    let jetstream = jetstream::new(client.clone());
    let test = TestStream::new(&client);
    let (stream, dead) = inbound_streams(&test).await;
    let bad = [
        BadMessage {
            headers: &[(headers::TYPE, "order_shipped")],
            body: "{}",
            dead_letter_token: "order_shipped",
            reason: "unknown event type `order_shipped`",
        },
        BadMessage {
            headers: &[],
            body: "{}",
            dead_letter_token: "unknown",
            reason: "no `Herald-Type` header",
        },
        BadMessage {
            headers: &[(headers::TYPE, "invoice_sent")],
            body: r#"{"invoice_id":"00000000-0000-0000-0000-000000000001"}"#,
            dead_letter_token: "invoice_sent",
            reason: "is change event in this service's registry, not an inbound one",
        },
        BadMessage {
            headers: &[(headers::TYPE, "contact_created")],
            body: r#"{"contact_id":"not a uuid"}"#,
            dead_letter_token: "contact_created",
            reason: "does not match its schema",
        },
        BadMessage {
            headers: &[(headers::TYPE, "contact_created")],
            body: "<contact/>",
            dead_letter_token: "contact_created",
            reason: "is not JSON",
        },
        BadMessage {
            headers: &[
                (headers::TYPE, "contact_created"),
                (headers::VERSION, "two"),
            ],
            body: r#"{"contact_id":"00000000-0000-0000-0000-000000000001"}"#,
            dead_letter_token: "contact_created",
            reason: "the `Herald-Version` header `two` is not a version number",
        },
        BadMessage {
            headers: &[(headers::TYPE, "contact_created"), (headers::VERSION, "9")],
            body: r#"{"contact_id":"00000000-0000-0000-0000-000000000001"}"#,
            dead_letter_token: "contact_created",
            reason: "newer than the version 1 this code reads",
        },
    ];
    for message in &bad {
        send(
            &jetstream,
            test.subject("in.bad"),
            message.headers,
            message.body,
        )
        .await;
    }

    let bus = EventBus::<ServiceB, B>::new(store.clone());
    let inbound = Inbound::new(&bus, client.clone(), &stream, "service_b")
        .dead_letter_prefix(test.subject("dead"))
        .start()
        .await
        .expect("start the consumer");
    wait_for_stats(
        &inbound,
        InboundStats {
            stored: 0,
            duplicates: 0,
            rejected: 7,
        },
    )
    .await;
    inbound.shutdown().await;

    assert_eq!(store.stats().await.unwrap().pending_events, 0);
    let dead_letters = test.messages(&dead).await;
    assert_eq!(dead_letters.len(), bad.len());
    for (letter, sent) in dead_letters.iter().zip(&bad) {
        assert_eq!(
            letter.subject.as_str(),
            test.subject(&format!("dead.{}", sent.dead_letter_token))
        );
        let why = header(letter, headers::REJECT_REASON).expect("a reason");
        assert!(
            why.contains(sent.reason),
            "reason {why:?} should say {:?}",
            sent.reason
        );
        assert_eq!(
            header(letter, headers::ORIGINAL_SUBJECT),
            Some(test.subject("in.bad").as_str())
        );
        assert_eq!(letter.payload.as_ref(), sent.body.as_bytes());
    }
    test.delete(&[&stream, &dead]).await;
}

/// Service A publishes `contact_created` in a transaction; its relay sends it to JetStream;
/// service B (its own database, its own registry) consumes the subject, stores the message as
/// its inbound `contact_created`, and B's subscriber runs with A's event id.
async fn two_services_end_to_end<B: Backend>(store_a: Store<B>, nats: String) {
    let client = connect(&nats).await;
    let test = TestStream::new(&client);
    let dead = format!("{}_DEAD", test.name);
    test.create(&dead, vec![test.subject("dead.>")]).await;

    // Service A: the example domain, relaying its change events.
    let bus_a = TypedEventBus::new(store_a.clone());
    let relay = relay(&client, &test);
    relay.ensure_stream().await.expect("ensure the stream");
    relay.subscribe(&bus_a);
    let drain_a = start_drain(&bus_a);

    // Service B: another database, another registry.
    let (_dir, store_b) = integration_tests::support::sqlite().await;
    let bus_b = EventBus::<ServiceB, _>::new(store_b.clone())
        .with_jobs(herald::Jobs::<ServiceB>::new().register::<service_b::WelcomeContact>());
    let seen = record_contacts(&bus_b);
    let inbound = Inbound::new(&bus_b, client.clone(), &test.name, "service_b")
        .filter_subject(test.subject("change.contact_created"))
        .dead_letter_prefix(test.subject("dead"))
        .start()
        .await
        .expect("start B's consumer");
    let drain_b = start_drain(&bus_b);

    let payload = contact_created(7);
    let mut tx = store_a.begin().await.unwrap();
    let id = bus_a
        .publish_with(
            &mut tx,
            Publish::new(payload.clone())
                .aggregate_id(payload.contact_id)
                .tenant("acme"),
        )
        .await
        .unwrap();
    store_a.commit(tx).await.unwrap();

    eventually("B's subscriber to see A's event", DEADLINE, || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, id, "B stores A's event under A's event id");
    assert_eq!(seen[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(
        seen[0].payload,
        CrmContactCreated {
            contact_id: payload.contact_id,
            account_id: None,
            created_by: payload.created_by,
        }
    );
    assert_eq!(
        inbound.stats(),
        InboundStats {
            stored: 1,
            duplicates: 0,
            rejected: 0
        }
    );
    // B's triggered job was enqueued with the inbound event, in A's tenant, and runs.
    let worker = bus_b.worker().run_until_idle().await.expect("B's worker");
    assert_eq!(worker.completed, 1);
    let runs = store_b
        .jobs()
        .list(&herald::ops::RunFilter::default().tenant("acme"))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].job.as_str(), runs[0].event_id),
        ("welcome_contact", Some(id))
    );
    assert_eq!(
        runs[0].output,
        Some(herald::serde_json::json!(payload.contact_id))
    );
    for service in [drain_a, drain_b] {
        service.shutdown().await;
    }
    inbound.shutdown().await;
    test.delete(&[&test.name, &dead]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_refuses_a_set_up_that_would_lose_or_loop_dead_letters() {
    let Some(nats) = nats_url("inbound_refuses_a_set_up_that_would_lose_or_loop_dead_letters")
    else {
        return;
    };
    let client = connect(&nats).await;
    let test = TestStream::new(&client);
    let bus = EventBus::<ServiceB, _>::new(herald::memory());
    let start = |prefix: String| {
        Inbound::new(&bus, client.clone(), &test.name, "service_b")
            .dead_letter_prefix(prefix)
            .start()
    };
    let missing = start(test.subject("dead")).await.unwrap_err();
    assert!(
        matches!(missing, InboundError::StreamMissing { .. }),
        "{missing}"
    );

    test.create(&test.name, vec![test.subject(">")]).await;
    let nowhere = start(format!("{}x.dead", test.prefix)).await.unwrap_err();
    assert!(
        matches!(nowhere, InboundError::NoDeadLetterStream { .. }),
        "{nowhere}"
    );
    let looping = start(test.subject("dead")).await.unwrap_err();
    assert!(
        matches!(looping, InboundError::ReadsItsDeadLetters { .. }),
        "{looping}"
    );
    let invalid = start("dead..letters".to_owned()).await.unwrap_err();
    assert!(
        matches!(invalid, InboundError::InvalidDeadLetterPrefix { .. }),
        "{invalid}"
    );
    test.delete(&[&test.name]).await;
}

/// NATS unreachable (the proxy in front of it closed) while 100 events are committed: every
/// delivery fails and is retried; once NATS is reachable again the relay resumes by itself and
/// the stream gets every event once, in order, with no dead letter.
async fn deliveries_retry_while_nats_is_unreachable<B: Backend>(store: Store<B>, nats: String) {
    let proxy = Proxy::start(&nats).await;
    let direct = connect(&nats).await;
    let test = TestStream::new(&direct);
    relay(&direct, &test)
        .ensure_stream()
        .await
        .expect("ensure the stream");
    let through_proxy = connect(&proxy.url()).await;
    // Retries spread over seconds (ten attempts, from 100 ms up to 500 ms apart), so that the
    // outage below ends well before any delivery runs out of attempts.
    let config = DrainConfig {
        retry: RetryTiming {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        },
        ..drain_config()
    };
    let relay = Relay::<AppEvent>::new(through_proxy, &test.name)
        .subjects(relay_subjects(&test))
        .drain_config(&config)
        .publish_timeout(Duration::from_millis(200));
    let bus = TypedEventBus::new(store.clone());
    relay.subscribe(&bus);

    proxy.stop();
    let expected = publish_events(&store, 100, 20).await;
    let drain = bus.drain().config(config).spawn();
    eventually(
        "deliveries to fail while NATS is away",
        DEADLINE,
        || async { relay.stats().failed >= 40 },
    )
    .await;
    assert_eq!(test.count(&test.name).await, 0, "nothing got through");
    assert_eq!(relay.stats().published, 0);

    proxy.resume().await;
    eventually("every event in the stream", DEADLINE, || async {
        let stats = store.stats().await.unwrap();
        test.count(&test.name).await >= 100
            && stats.pending_events == 0
            && stats.retrying_deliveries == 0
    })
    .await;
    drain.shutdown().await;
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    assert_once_and_in_order(&test.messages(&test.name).await, &expected);
    eprintln!("relay across an outage: {:?}", relay.stats());
    test.delete(&[&test.name]).await;
}

/// How many times the kill test kills the relay worker (`HERALD_RELAY_KILLS`, default 5).
fn kills() -> u64 {
    std::env::var("HERALD_RELAY_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(5)
}

fn spawn_relay_worker(database_url: &str, nats: &str, test: &TestStream, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_relay_worker"))
        .args([database_url, nats, &test.name, &test.prefix, id])
        .stdout(Stdio::null())
        .spawn()
        .expect("start relay_worker")
}

/// 2,000 events on 20 aggregates, relayed by a worker process that is killed with SIGKILL
/// mid-stream again and again (each time after it got some further), then left to finish: the
/// stream holds every event exactly once, each aggregate's in order. A killed worker's claims
/// pass to the next one after their 1 s lease; what it published without recording is published
/// again, and JetStream drops the copy.
async fn relay_killed_again_and_again<B: Backend>(store: Store<B>, database_url: &str, nats: &str) {
    const EVENTS: u64 = 2_000;
    let client = connect(nats).await;
    let test = TestStream::new(&client);
    relay(&client, &test)
        .ensure_stream()
        .await
        .expect("ensure the stream");
    let expected = publish_events(&store, u128::from(EVENTS), 20).await;
    let kills = kills();
    let step = EVENTS / (kills + 2);
    let mut counts_at_kill = Vec::new();
    for round in 0..kills {
        let mut worker = spawn_relay_worker(database_url, nats, &test, &format!("worker-{round}"));
        let target = step * (round + 1);
        eventually(
            &format!("the stream to reach {target} messages"),
            DEADLINE,
            || async { test.count(&test.name).await >= target },
        )
        .await;
        worker.kill().expect("SIGKILL the relay worker");
        worker.wait().expect("reap the relay worker");
        let count = test.count(&test.name).await;
        assert!(
            count < EVENTS,
            "the worker relayed everything before kill {round}"
        );
        counts_at_kill.push(count);
    }
    let mut last = spawn_relay_worker(database_url, nats, &test, "last");
    eventually("every event relayed", DEADLINE, || async {
        let stats = store.stats().await.unwrap();
        stats.pending_events == 0 && stats.retrying_deliveries == 0
    })
    .await;
    last.kill().expect("stop the last worker");
    last.wait().expect("reap the last worker");
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    assert_once_and_in_order(&test.messages(&test.name).await, &expected);
    eprintln!("killed {kills} times, with {counts_at_kill:?} messages in the stream");
    test.delete(&[&test.name]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_relay_killed_again_and_again_loses_and_duplicates_nothing() {
    let Some(nats) = nats_url("sqlite_relay_killed_again_and_again_loses_and_duplicates_nothing")
    else {
        return;
    };
    let (dir, store) = integration_tests::support::sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    relay_killed_again_and_again(store, &url, &nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_relay_killed_again_and_again_loses_and_duplicates_nothing() {
    const TEST: &str = "postgres_relay_killed_again_and_again_loses_and_duplicates_nothing";
    let Some(nats) = nats_url(TEST) else {
        return;
    };
    let Some(schema) = integration_tests::support::PostgresSchema::create(TEST).await else {
        return;
    };
    let store = schema.store(4).await;
    relay_killed_again_and_again(store, &schema.url_with_search_path(), &nats).await;
    schema.drop().await;
}

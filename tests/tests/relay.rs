//! The relay to NATS JetStream against a real server (`HERALD_TEST_NATS_URL`; each test says
//! SKIPPED and returns when it is unset), on SQLite and on PostgreSQL. Every test has a stream
//! and subjects of its own, so they run in parallel.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use herald::relay::async_nats::jetstream::message::StreamMessage;
use herald::relay::{Relay, RelayError, headers};
use herald::uuid::Uuid;
use herald::{Backend, DrainConfig, Publish, RetryTiming, Store};
use integration_tests::domain::events::ContactCreated;
use integration_tests::domain::{AppEvent, TypedEventBus};
use integration_tests::nats::{Proxy, TestStream, connect, nats_url};
use integration_tests::support::eventually;

const DEADLINE: Duration = Duration::from_secs(60);

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

/// A relay to the test's stream, on subjects under the test's prefix.
fn relay(client: &herald::relay::async_nats::Client, test: &TestStream) -> Relay<AppEvent> {
    Relay::new(client.clone(), &test.name)
        .subjects(
            format!("{}.{{direction}}.{{type}}", test.prefix)
                .parse()
                .expect("valid template"),
        )
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
                .causation_id(causation),
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

/// 1,000 events on 20 aggregates while the connection to NATS is cut every 75 ms: publishes
/// fail (some after JetStream stored the message, their ack lost), the drain retries them, and
/// the stream ends up with every event once, each aggregate's in order.
async fn order_per_aggregate_survives_intermittent_failures<B: Backend>(
    store: Store<B>,
    nats: String,
) {
    let proxy = Proxy::start(&nats).await;
    let direct = connect(&nats).await;
    let test = TestStream::new(&direct);
    let through_proxy = connect(&proxy.url()).await;
    // Loopback acks take well under a millisecond: a short timeout keeps a cut from holding a
    // batch for long.
    let relay = relay(&through_proxy, &test).publish_timeout(Duration::from_millis(100));
    relay.ensure_stream().await.expect("ensure the stream");
    let expected = publish_events(&store, 1_000, 20).await;

    let bus = TypedEventBus::new(store.clone());
    relay.subscribe(&bus);
    let cutter = {
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(75)).await;
                proxy.cut();
            }
        })
    };
    // Batches of 20 (one event per aggregate at most): 50 round trips or more, so that the run
    // spans several cuts even on a fast database.
    let drain = bus.drain().config(drain_config()).batch_size(20).spawn();
    eventually("every event in the stream", DEADLINE, || async {
        test.count(&test.name).await >= 1_000 && store.stats().await.unwrap().pending_events == 0
    })
    .await;
    cutter.abort();
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
        .subjects(
            format!("{}.{{direction}}.{{type}}", test.prefix)
                .parse()
                .unwrap(),
        );
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
    let relay = Relay::<AppEvent>::new(client.clone(), &test.name).subjects(
        format!("{}.{{direction}}.{{type}}", test.prefix)
            .parse()
            .unwrap(),
    );
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

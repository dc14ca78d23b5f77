//! The transactional outbox, bus and drain against real databases: every scenario runs on
//! SQLite, on PostgreSQL (when `HERALD_TEST_POSTGRES_URL` names a server) and in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::chrono::Utc;
use herald::ops::{Redrive, Retention};
use herald::testing::SilentEventClaim;
use herald::uuid::Uuid;
use herald::{
    Backend, DrainBuilder, DrainSummary, Envelope, Publish, PublishError, RetryTiming,
    ServiceHandle, Store,
};
use integration_tests::domain::events::{
    ContactCreated, CrmSyncCompleted, StripePaymentReceived, WebhookOutboundContactSync,
};
use integration_tests::domain::{AppEvent, TypedEventBus};
use integration_tests::support::{PostgresSchema, eventually};

const DEADLINE: Duration = Duration::from_secs(20);
/// How long a woken drain may take to deliver: far below its poll interval of an hour, so that
/// only a wake-up delivers in time, and generous, so that a loaded machine does not fail it.
const WAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Lets a lane that has just delivered look again, find nothing and go to sleep. Were it too
/// short, the next commit would be found by that look and the test would pass without proving
/// the wake-up; it cannot make the test fail.
const SETTLE: Duration = Duration::from_millis(200);

fn contact_created(contact: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::from_u128(7),
    }
}

fn payment(event_id: &str) -> StripePaymentReceived {
    StripePaymentReceived {
        event_id: event_id.to_owned(),
        customer_id: "cus_1".to_owned(),
        amount_cents: 1250.0,
        currency: "eur".to_owned(),
        received_at: Utc::now(),
    }
}

/// A drain tuned for tests: quick retries, a short poll backstop.
fn start<B: Backend>(bus: &TypedEventBus<B>) -> ServiceHandle {
    bus.drain()
        .poll_interval(Duration::from_millis(50))
        .retry(RetryTiming {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        })
        .spawn()
}

/// A drain for `run_until_idle` whose retries are due at once, so that one call runs every
/// attempt of a failing delivery.
fn drain_now<B: Backend>(bus: &TypedEventBus<B>) -> DrainBuilder<AppEvent, B> {
    bus.drain().retry(RetryTiming {
        base: Duration::ZERO,
        cap: Duration::ZERO,
    })
}

/// Runs the drain until idle, failing (instead of hanging) if it waits for something.
async fn until_idle<B: Backend>(drain: DrainBuilder<AppEvent, B>) -> DrainSummary {
    tokio::time::timeout(DEADLINE, drain.run_until_idle())
        .await
        .expect("run_until_idle returns once nothing is claimable")
        .expect("run_until_idle")
}

/// Records what a subscriber saw.
#[derive(Clone)]
struct Seen<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Seen<T> {
    fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }
    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

async fn publish_one<B: Backend>(bus: &TypedEventBus<B>, contact: Uuid) -> Uuid {
    let mut tx = bus.store().begin().await.unwrap();
    let id = bus
        .publish(&mut tx, contact, contact_created(contact))
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    id
}

async fn rollback_delivers_nothing<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.push(e.payload.contact_id);
            Ok::<_, herald::HandlerError>(())
        }
    });

    let rolled_back = Uuid::from_u128(1);
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish(&mut tx, rolled_back, contact_created(rolled_back))
        .await
        .unwrap();
    drop(tx);
    let committed = Uuid::from_u128(2);
    publish_one(&bus, committed).await;

    let summary = until_idle(bus.drain()).await;
    assert_eq!((summary.events, summary.delivered), (1, 1), "{summary:?}");
    assert_eq!(seen.all(), vec![committed]);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.processed_events, 1, "{stats:?}");
    assert_eq!(stats.pending_events, 0, "{stats:?}");
}

async fn same_id_is_stored_and_delivered_once<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let count = Arc::new(AtomicU32::new(0));
    let counter = count.clone();
    bus.subscribe("count", move |_: Envelope<ContactCreated>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let id = Uuid::now_v7();
    let contact = Uuid::from_u128(3);
    for _ in 0..2 {
        let mut tx = bus.store().begin().await.unwrap();
        let published = bus
            .publish_with(
                &mut tx,
                Publish::new(contact_created(contact))
                    .id(id)
                    .aggregate_id(contact),
            )
            .await
            .unwrap();
        assert_eq!(published, id);
        bus.store().commit(tx).await.unwrap();
    }
    assert_eq!(until_idle(bus.drain()).await.events, 1);
    assert_eq!(bus.store().stats().await.unwrap().processed_events, 1);
    // A second publish of a delivered id stores nothing either.
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish_with(
        &mut tx,
        Publish::new(contact_created(contact))
            .id(id)
            .aggregate_id(contact),
    )
    .await
    .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(until_idle(bus.drain()).await, DrainSummary::default());
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(
        stats.processed_events + stats.pending_events,
        1,
        "{stats:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

async fn subscribers_receive_the_exact_payload_and_stamps<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let seen: Seen<Envelope<StripePaymentReceived>> = Seen::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<StripePaymentReceived>| {
        let sink = sink.clone();
        async move {
            sink.push(e);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let sent = payment("evt_1");
    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let mut tx = bus.store().begin().await.unwrap();
    let id = bus
        .publish_with(
            &mut tx,
            Publish::new(sent.clone())
                .tenant("acme")
                .correlation_id(correlation)
                .causation_id(cause),
        )
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(until_idle(bus.drain()).await.delivered, 1);
    assert_eq!(seen.len(), 1);
    let envelope = &seen.all()[0];
    assert_eq!(envelope.payload, sent);
    assert_eq!(envelope.id, id);
    assert_eq!(id.get_version_num(), 7, "ids default to UUID v7");
    assert_eq!(envelope.event_type, "stripe_payment_received");
    assert_eq!(envelope.version, 1);
    assert_eq!(envelope.tenant_id.as_deref(), Some("acme"));
    assert_eq!(envelope.correlation_id, Some(correlation));
    assert_eq!(envelope.causation_id, Some(cause));
    assert_eq!(envelope.aggregate_id, None);
    assert_eq!(envelope.attempt, 1);
}

async fn retry_then_dead_letter_then_redrive<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts: Seen<u32> = Seen::default();
    let (flag, sink) = (healthy.clone(), attempts.clone());
    bus.subscribe("ledger", move |e: Envelope<StripePaymentReceived>| {
        let (flag, sink) = (flag.clone(), sink.clone());
        async move {
            sink.push(e.attempt);
            if flag.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(format!("ledger unavailable (attempt {})", e.attempt))
            }
        }
    });
    let mut tx = bus.store().begin().await.unwrap();
    let id = bus
        .publish_with(&mut tx, Publish::new(payment("evt_2")))
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();

    // stripe_payment_received.yaml: `retry: { attempts: 5, backoff: exponential }`.
    let summary = until_idle(drain_now(&bus)).await;
    assert_eq!(
        (summary.retried, summary.dead_lettered),
        (4, 1),
        "{summary:?}"
    );
    assert_eq!(bus.store().stats().await.unwrap().dead_letters, 1);
    assert_eq!(attempts.all(), vec![1, 2, 3, 4, 5]);
    let dead = bus.store().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, id);
    assert_eq!(dead[0].subscriber, "ledger");
    assert_eq!(dead[0].event_type, "stripe_payment_received");
    assert_eq!(dead[0].attempts, 5);
    assert_eq!(dead[0].last_error, "ledger unavailable (attempt 5)");

    healthy.store(true, Ordering::SeqCst);
    let redriven = bus
        .store()
        .redrive(&Redrive::event(id).subscriber("ledger"))
        .await
        .unwrap();
    assert_eq!(redriven, 1);
    assert_eq!(until_idle(drain_now(&bus)).await.delivered, 1);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
    assert_eq!(stats.retrying_deliveries, 0, "{stats:?}");
    assert_eq!(attempts.all(), vec![1, 2, 3, 4, 5, 1]);
}

async fn a_failing_subscriber_retries_alone<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let sibling_runs = Arc::new(AtomicU32::new(0));
    let flaky_runs = Arc::new(AtomicU32::new(0));
    let counter = sibling_runs.clone();
    bus.subscribe("search_index", move |_: Envelope<ContactCreated>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let counter = flaky_runs.clone();
    bus.subscribe("welcome_mail", move |_: Envelope<ContactCreated>| {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err("smtp timeout"),
                _ => Ok(()),
            }
        }
    });
    publish_one(&bus, Uuid::from_u128(4)).await;
    let summary = until_idle(drain_now(&bus)).await;
    assert_eq!((summary.delivered, summary.retried), (2, 2), "{summary:?}");
    assert_eq!(flaky_runs.load(Ordering::SeqCst), 3);
    assert_eq!(bus.store().stats().await.unwrap().retrying_deliveries, 0);
    assert_eq!(sibling_runs.load(Ordering::SeqCst), 1);
}

async fn a_panicking_subscriber_is_a_failed_delivery<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    bus.subscribe("explodes", |_: Envelope<CrmSyncCompleted>| async move {
        if Uuid::now_v7().is_nil() {
            return Ok::<_, herald::HandlerError>(());
        }
        panic!("boom")
    });
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish_with(
        &mut tx,
        Publish::new(CrmSyncCompleted {
            integration_id: Uuid::from_u128(9),
            provider: "hubspot".into(),
            counts: herald::serde_json::Map::from_iter([("contacts".to_owned(), 3.into())]),
            duration_ms: 12.0,
        })
        .aggregate_id(Uuid::from_u128(9)),
    )
    .await
    .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(until_idle(drain_now(&bus)).await.dead_lettered, 1);
    assert_eq!(bus.store().stats().await.unwrap().dead_letters, 1);
    let dead = bus.store().dead_letters(1).await.unwrap();
    assert_eq!(dead[0].last_error, "subscriber panicked: boom");
}

async fn audit_events_have_no_route_and_reach_audit_subscribers<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe("audit_log", move |e: Envelope<CrmSyncCompleted>| {
        let sink = sink.clone();
        async move {
            sink.push(e.payload.provider);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish(
        &mut tx,
        Uuid::from_u128(10),
        CrmSyncCompleted {
            integration_id: Uuid::from_u128(10),
            provider: "salesforce".into(),
            counts: herald::serde_json::Map::new(),
            duration_ms: 40.0,
        },
    )
    .await
    .unwrap();
    bus.store().commit(tx).await.unwrap();
    // A drain of the domain pools only never sees audit events ...
    let domain_only = bus
        .drain()
        .pools(["events_change", "events_inbound", "events_outbound"]);
    assert_eq!(until_idle(domain_only).await, DrainSummary::default());
    assert_eq!(seen.len(), 0);
    assert_eq!(bus.store().stats().await.unwrap().pending_events, 1);
    // ... the audit lane delivers them.
    let audit = until_idle(bus.drain().pools(["audit"])).await;
    assert_eq!((audit.events, audit.delivered), (1, 1), "{audit:?}");
    assert_eq!(seen.all(), vec!["salesforce".to_owned()]);
}

async fn untyped_publish_checks_type_and_payload<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<WebhookOutboundContactSync>| {
        let sink = sink.clone();
        async move {
            sink.push(e.payload.operation);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let contact = Uuid::from_u128(11);
    let mut tx = bus.store().begin().await.unwrap();
    let unknown = bus
        .publish_json(
            &mut tx,
            "contact_teleported",
            Publish::new(herald::serde_json::json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown event type `contact_teleported`: it is not in the registry"
    );
    let bad = bus
        .publish_json(
            &mut tx,
            "webhook_outbound_contact_sync",
            Publish::new(herald::serde_json::json!({"contact_id": "not a uuid"}))
                .aggregate_id(contact),
        )
        .await
        .unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("payload of `webhook_outbound_contact_sync` does not match its schema"),
        "{bad}"
    );
    bus.publish_json(
        &mut tx,
        "webhook_outbound_contact_sync",
        Publish::new(herald::serde_json::json!({
            "contact_id": contact,
            "operation": "upsert",
            "occurred_at": "2026-11-22T10:00:00Z",
        }))
        .aggregate_id(contact),
    )
    .await
    .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(until_idle(bus.drain()).await.delivered, 1);
    assert_eq!(seen.all(), vec!["upsert".to_owned()]);
}

async fn multi_tenant_stores_require_a_tenant<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.multi_tenant(true));
    let contact = Uuid::from_u128(12);
    let mut tx = bus.store().begin().await.unwrap();
    let error = bus
        .publish(&mut tx, contact, contact_created(contact))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        PublishError::TenantRequired {
            event_type: "contact_created"
        }
    ));
    assert!(error.to_string().contains("`contact_created`"), "{error}");
    bus.publish_with(
        &mut tx,
        Publish::new(contact_created(contact))
            .aggregate_id(contact)
            .without_tenant(),
    )
    .await
    .unwrap();
    bus.publish_with(
        &mut tx,
        Publish::new(contact_created(contact))
            .aggregate_id(contact)
            .tenant("acme"),
    )
    .await
    .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(bus.store().stats().await.unwrap().pending_events, 2);
}

async fn aggregate_ids_follow_the_yaml<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let mut tx = bus.store().begin().await.unwrap();
    let missing = bus
        .publish_with(&mut tx, Publish::new(contact_created(Uuid::from_u128(13))))
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        PublishError::MissingAggregateId {
            event_type: "contact_created",
            aggregate: "contact"
        }
    ));
    let unexpected = bus
        .publish(&mut tx, "x", payment("evt_3"))
        .await
        .unwrap_err();
    assert!(matches!(
        unexpected,
        PublishError::UnexpectedAggregateId {
            event_type: "stripe_payment_received"
        }
    ));
    assert!(
        unexpected
            .to_string()
            .contains("publish_with(&mut tx, Publish::new(payload))"),
        "{unexpected}"
    );
}

/// Payloads that could not be stored alike on every database, or never decoded by a
/// subscriber, are refused before anything is written.
async fn unstorable_payloads_are_refused_in_heralds_words<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let mut tx = bus.store().begin().await.unwrap();
    let mut with_nul = payment("evt_nul");
    with_nul.customer_id = "cus\u{0}1".to_owned();
    let nul = bus
        .publish_with(&mut tx, Publish::new(with_nul))
        .await
        .unwrap_err();
    assert!(matches!(
        nul,
        PublishError::NulCharacter {
            event_type: "stripe_payment_received"
        }
    ));
    assert!(nul.to_string().contains("NUL character"), "{nul}");

    let positional = herald::serde_json::json!(["evt_5", "cus_1", 1.0, "eur", Utc::now()]);
    let array = bus
        .publish_json(&mut tx, "stripe_payment_received", Publish::new(positional))
        .await
        .unwrap_err();
    assert!(matches!(array, PublishError::NotAnObject { .. }), "{array}");

    let mut deep = herald::serde_json::json!(1);
    for _ in 0..200 {
        deep = herald::serde_json::json!({ "nested": deep });
    }
    let counts = herald::serde_json::json!({
        "integration_id": Uuid::nil(), "provider": "hubspot", "counts": deep, "duration_ms": 1.0
    });
    let too_deep = bus
        .publish_json(
            &mut tx,
            "crm_sync_completed",
            Publish::new(counts).aggregate_id(Uuid::nil()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(too_deep, PublishError::TooDeep { limit: 128, .. }),
        "{too_deep}"
    );

    // The transaction is still usable: nothing reached the database.
    bus.publish_with(&mut tx, Publish::new(payment("evt_fine")))
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    assert_eq!(bus.store().stats().await.unwrap().pending_events, 1);
}

async fn an_expired_lease_is_reclaimed<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.push(e.payload.contact_id);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let contact = Uuid::from_u128(14);
    publish_one(&bus, contact).await;
    // A worker claims the event and goes silent, holding its claim.
    let silent = SilentEventClaim::take(bus.store(), "events_change", Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(silent.len(), 1);
    let drain = start(&bus);
    eventually(
        "the event is delivered after the lease",
        DEADLINE,
        || async { seen.len() == 1 },
    )
    .await;
    drain.shutdown().await;
    assert_eq!(seen.all(), vec![contact]);
    // The silent worker's late acknowledgement is fenced off: it acknowledges nothing.
    assert_eq!(silent.acknowledge_late().await.unwrap(), 0);
}

async fn shutdown_releases_in_flight_claims<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    bus.subscribe("stuck", move |_: Envelope<ContactCreated>| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            std::future::pending::<Result<(), herald::HandlerError>>().await
        }
    });
    publish_one(&bus, Uuid::from_u128(15)).await;
    let drain = bus
        .drain()
        .lease(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_millis(50))
        .spawn();
    started.notified().await;
    drain.shutdown().await;
    // Released, not left to a lease of an hour: another worker claims it at once.
    let reclaimed = SilentEventClaim::take(bus.store(), "events_change", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
}

async fn prune_keeps_what_is_still_owed<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    bus.subscribe("always_fails", |_: Envelope<StripePaymentReceived>| async {
        Err("down")
    });
    publish_one(&bus, Uuid::from_u128(16)).await;
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish_with(&mut tx, Publish::new(payment("evt_4")))
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    let summary = until_idle(drain_now(&bus)).await;
    assert_eq!(
        (summary.events, summary.dead_lettered),
        (2, 1),
        "{summary:?}"
    );
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.processed_events, 2, "{stats:?}");
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    let hour = Retention::all(Duration::from_secs(3600));
    assert_eq!(bus.store().prune(&hour).await.unwrap().events, 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = Retention::all(Duration::ZERO);
    assert_eq!(bus.store().prune(&now).await.unwrap().events, 1);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.processed_events, 1, "the dead letter's event stays");
}

/// Four workers share one pool; each aggregate's events must reach the subscriber in publish
/// order, also while some deliveries fail and retry.
async fn per_aggregate_order_holds_with_four_workers<B: Backend>(store: Store<B>) {
    const AGGREGATES: u128 = 20;
    const PER_AGGREGATE: usize = 15;
    let seen: Seen<(String, Uuid)> = Seen::default();
    let failures = Arc::new(AtomicU32::new(0));
    let mut drains = Vec::new();
    let mut buses = Vec::new();
    for worker in 0..4 {
        let bus = TypedEventBus::new(store.clone());
        let (sink, failures) = (seen.clone(), failures.clone());
        bus.subscribe("ordered", move |e: Envelope<ContactCreated>| {
            let (sink, failures) = (sink.clone(), failures.clone());
            async move {
                // Every 7th first attempt fails, so retries must keep the order too.
                if e.attempt == 1 && e.id.as_u128().is_multiple_of(7) {
                    failures.fetch_add(1, Ordering::SeqCst);
                    return Err("transient".into());
                }
                tokio::time::sleep(Duration::from_micros((e.id.as_u128() % 500) as u64)).await;
                sink.push((e.aggregate_id.clone().unwrap_or_default(), e.id));
                Ok::<_, herald::HandlerError>(())
            }
        });
        drains.push(
            bus.drain()
                .worker_id(format!("worker-{worker}"))
                .batch_size(8)
                .poll_interval(Duration::from_millis(20))
                .retry(RetryTiming {
                    base: Duration::from_millis(2),
                    cap: Duration::from_millis(10),
                })
                .spawn(),
        );
        buses.push(bus);
    }
    let bus = &buses[0];
    let mut expected: HashMap<String, Vec<Uuid>> = HashMap::new();
    for round in 0..PER_AGGREGATE {
        let mut tx = bus.store().begin().await.unwrap();
        for aggregate in 0..AGGREGATES {
            let contact = Uuid::from_u128(1000 + aggregate);
            let id = bus
                .publish(&mut tx, contact, contact_created(contact))
                .await
                .unwrap();
            expected.entry(contact.to_string()).or_default().push(id);
        }
        bus.store().commit(tx).await.unwrap();
        if round % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let total = AGGREGATES as usize * PER_AGGREGATE;
    eventually("every event is delivered", DEADLINE, || async {
        seen.len() >= total
    })
    .await;
    for drain in drains {
        drain.shutdown().await;
    }
    assert!(
        failures.load(Ordering::SeqCst) > 0,
        "no retry was exercised"
    );
    let mut delivered: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (aggregate, id) in seen.all() {
        delivered.entry(aggregate).or_default().push(id);
    }
    assert_eq!(delivered, expected);
}

async fn run_until_idle_counts_every_outcome_exactly<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    bus.subscribe("search_index", |_: Envelope<ContactCreated>| async {
        Ok::<_, herald::HandlerError>(())
    });
    bus.subscribe("welcome_mail", |e: Envelope<ContactCreated>| async move {
        if e.attempt == 1 {
            Err("smtp timeout")
        } else {
            Ok(())
        }
    });
    bus.subscribe("ledger", |_: Envelope<StripePaymentReceived>| async {
        Err("ledger down")
    });
    for n in 0..3 {
        publish_one(&bus, Uuid::from_u128(100 + n)).await;
    }
    let mut tx = bus.store().begin().await.unwrap();
    bus.publish_with(&mut tx, Publish::new(payment("evt_5")))
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();

    let summary = until_idle(drain_now(&bus)).await;
    // Three contacts: search_index delivers at once, welcome_mail on its second attempt. The
    // payment's ledger fails all five attempts of stripe_payment_received.yaml.
    assert_eq!(
        summary,
        DrainSummary {
            events: 4,
            delivered: 3 + 3,
            retried: 3 + 4,
            dead_lettered: 1,
            retries_scheduled: 0,
        }
    );
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.processed_events, 4, "{stats:?}");
    assert_eq!(stats.pending_events, 0, "{stats:?}");
    assert_eq!(stats.retrying_deliveries, 0, "{stats:?}");
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    // Nothing is left for a second call.
    assert_eq!(until_idle(drain_now(&bus)).await, DrainSummary::default());
}

async fn run_until_idle_does_not_wait_for_a_retry_due_later<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let attempts: Seen<(Uuid, u32)> = Seen::default();
    let sink = attempts.clone();
    bus.subscribe("crm", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.push((e.id, e.attempt));
            Err::<(), _>("crm down")
        }
    });
    let in_an_hour = || {
        bus.drain().retry(RetryTiming {
            base: Duration::from_secs(3600),
            cap: Duration::from_secs(3600),
        })
    };
    let contact = Uuid::from_u128(200);
    let first = publish_one(&bus, contact).await;
    assert_eq!(
        until_idle(in_an_hour()).await,
        DrainSummary {
            events: 1,
            retried: 1,
            retries_scheduled: 1,
            ..DrainSummary::default()
        }
    );
    // A later event of the same aggregate queues behind that retry, without an attempt.
    publish_one(&bus, contact).await;
    assert_eq!(
        until_idle(in_an_hour()).await,
        DrainSummary {
            events: 1,
            retries_scheduled: 1,
            ..DrainSummary::default()
        }
    );
    assert_eq!(attempts.all(), vec![(first, 1)]);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.pending_events, 0, "{stats:?}");
    assert_eq!(stats.retrying_deliveries, 2, "{stats:?}");
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
}

/// The drain of `drained` never polls (its backstop comes after an hour); events are committed
/// through `writer` (the same store, or another one on the same database) while it is idle.
async fn an_idle_drain_is_woken_by_commits_of<B: Backend>(drained: &Store<B>, writer: &Store<B>) {
    let bus = TypedEventBus::new(drained.clone());
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.push(e.payload.contact_id);
            Ok::<_, herald::HandlerError>(())
        }
    });
    let writer = TypedEventBus::new(writer.clone());
    let drain = bus.drain().poll_interval(Duration::from_secs(3600)).spawn();
    // The first event shows the drain running (its first look may find it without a wake-up).
    let first = Uuid::from_u128(300);
    publish_one(&writer, first).await;
    eventually("the first event is delivered", WAKE_DEADLINE, || async {
        seen.len() == 1
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    let second = Uuid::from_u128(301);
    publish_one(&writer, second).await;
    eventually(
        "the idle drain is woken by the commit",
        WAKE_DEADLINE,
        || async { seen.len() == 2 },
    )
    .await;
    // With an hour between polls, a lane that missed the stop would hold shutdown up that long.
    tokio::time::timeout(DEADLINE, drain.shutdown())
        .await
        .expect("the drain stops");
    assert_eq!(seen.all(), vec![first, second]);
}

async fn an_idle_drain_delivers_a_later_commit_at_once<B: Backend>(store: Store<B>) {
    an_idle_drain_is_woken_by_commits_of(&store, &store).await;
}

/// Another process commits through a pool of its own: only `LISTEN/NOTIFY` can wake the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_commit_of_another_store_wakes_the_drain() {
    let Some(schema) =
        PostgresSchema::create("postgres_a_commit_of_another_store_wakes_the_drain").await
    else {
        return;
    };
    let (drained, writer) = (schema.store(5).await, schema.store(5).await);
    an_idle_drain_is_woken_by_commits_of(&drained, &writer).await;
    schema.drop().await;
}

integration_tests::on_every_backend!(
    rollback_delivers_nothing,
    same_id_is_stored_and_delivered_once,
    subscribers_receive_the_exact_payload_and_stamps,
    retry_then_dead_letter_then_redrive,
    a_failing_subscriber_retries_alone,
    a_panicking_subscriber_is_a_failed_delivery,
    audit_events_have_no_route_and_reach_audit_subscribers,
    untyped_publish_checks_type_and_payload,
    multi_tenant_stores_require_a_tenant,
    aggregate_ids_follow_the_yaml,
    an_expired_lease_is_reclaimed,
    shutdown_releases_in_flight_claims,
    prune_keeps_what_is_still_owed,
    per_aggregate_order_holds_with_four_workers,
    run_until_idle_counts_every_outcome_exactly,
    run_until_idle_does_not_wait_for_a_retry_due_later,
    an_idle_drain_delivers_a_later_commit_at_once,
    unstorable_payloads_are_refused_in_heralds_words,
);

/// The memory store's record of what was committed, for unit tests of code that publishes.
#[tokio::test]
async fn memory_published_lists_committed_events_in_order() {
    let store = herald::memory();
    let bus = TypedEventBus::new(store.clone());
    let (first, second) = (Uuid::from_u128(400), Uuid::from_u128(401));
    let mut tx = store.begin().await.unwrap();
    bus.publish_with(
        &mut tx,
        Publish::new(contact_created(first))
            .aggregate_id(first)
            .tenant("acme"),
    )
    .await
    .unwrap();
    bus.publish_with(&mut tx, Publish::new(payment("evt_mem")))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let mut rolled_back = store.begin().await.unwrap();
    bus.publish(&mut rolled_back, second, contact_created(second))
        .await
        .unwrap();
    drop(rolled_back);

    let published = store.backend().published();
    let types: Vec<&str> = published.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["contact_created", "stripe_payment_received"]);
    assert_eq!(published[0].aggregate_id, Some(first.to_string()));
    assert_eq!(published[0].tenant_id.as_deref(), Some("acme"));
    let contacts: Vec<Uuid> = store
        .backend()
        .published_of::<ContactCreated>()
        .iter()
        .map(|event| event.contact_id)
        .collect();
    assert_eq!(contacts, vec![first], "only committed events of that type");
}

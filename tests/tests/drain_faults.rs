//! The drain against subscribers and workers that misbehave: events whose claims keep being
//! lost (poison), handlers that hang, and handlers slower than the lease. Every scenario runs
//! on SQLite, on PostgreSQL (when `HERALD_TEST_POSTGRES_URL` names a server) and in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::ops::ProjectionLag;
use herald::serde_json;
use herald::testing::{RawEvent, SilentDeliveryClaim, SilentEventClaim};
use herald::uuid::Uuid;
use herald::{Backend, Envelope, Event, HandlerError, RetryTiming, ServiceHandle, Store};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::fixtures::Folds;
use integration_tests::support::{PostgresSchema, eventually};

const DEADLINE: Duration = Duration::from_secs(20);

fn contact_created(contact: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::from_u128(7),
    }
}

async fn publish<B: Backend>(bus: &TypedEventBus<B>, contacts: &[Uuid]) {
    let mut tx = bus.store().begin().await.unwrap();
    for contact in contacts {
        bus.publish(&mut tx, *contact, contact_created(*contact))
            .await
            .unwrap();
    }
    bus.store().commit(tx).await.unwrap();
}

/// How many times each contact's event reached a subscriber.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<Uuid, u32>>>);

impl Calls {
    fn record(&self, contact: Uuid) {
        *self.0.lock().unwrap().entry(contact).or_default() += 1;
    }
    fn of(&self, contact: Uuid) -> u32 {
        self.0.lock().unwrap().get(&contact).copied().unwrap_or(0)
    }
    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

/// Subscribes `name` to `contact_created`, counting the deliveries per contact.
fn record_calls<B: Backend>(bus: &TypedEventBus<B>, name: &str) -> Calls {
    let calls = Calls::default();
    let seen = calls.clone();
    bus.subscribe(name, move |e: Envelope<ContactCreated>| {
        let seen = seen.clone();
        async move {
            seen.record(e.payload.contact_id);
            Ok::<_, HandlerError>(())
        }
    });
    calls
}

/// Two drains with leases of 300 ms, so that a delivery slower than that outlives several.
fn two_drains_with_short_leases<B: Backend>(bus: &TypedEventBus<B>) -> Vec<ServiceHandle> {
    (0..2)
        .map(|_| {
            bus.drain()
                .lease(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(50))
                .retry(quick_retries())
                .spawn()
        })
        .collect()
}

fn quick_retries() -> RetryTiming {
    RetryTiming {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
    }
}

async fn a_poison_event_is_dead_lettered_once_lost_claims_spend_its_attempts<B: Backend>(
    store: Store<B>,
) {
    let bus = TypedEventBus::new(store);
    let calls = record_calls(&bus, "record");
    let poison = Uuid::from_u128(1);
    publish(&bus, &[poison]).await;
    // Every claim of the event is lost, as if each worker that took it crashed mid-delivery.
    let max_attempts = ContactCreated::META.retry.max_attempts().get();
    for _ in 0..max_attempts {
        let lost = SilentEventClaim::take(bus.store(), "events_change", Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(
            lost.len(),
            1,
            "the event is claimable again after a lost claim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healthy = Uuid::from_u128(2);
    publish(&bus, &[healthy]).await;

    let summary = bus.drain().run_until_idle().await.unwrap();

    assert_eq!(calls.of(poison), 0, "a poison event is not run again");
    assert_eq!(calls.of(healthy), 1, "the lane moves on");
    assert_eq!((summary.events, summary.dead_lettered), (2, 1));
    let dead = bus.store().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subscriber, "record");
    assert_eq!(dead[0].attempts, max_attempts);
    assert_eq!(
        dead[0].last_error,
        format!("claim lost {max_attempts} times: worker crashed or stalled while delivering")
    );
    // The next claim finds nothing: the event is no longer claimed for ever.
    let again = SilentEventClaim::take(bus.store(), "events_change", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty());
}

/// Subscribes `name` to `contact_created`: its first delivery of each event fails, the retries
/// succeed after `retry_takes`. Counts every call.
fn fail_once_then<B: Backend>(bus: &TypedEventBus<B>, name: &str, retry_takes: Duration) -> Calls {
    let calls = Calls::default();
    let seen = calls.clone();
    bus.subscribe(name, move |e: Envelope<ContactCreated>| {
        let seen = seen.clone();
        async move {
            let contact = e.payload.contact_id;
            let first = seen.of(contact) == 0;
            seen.record(contact);
            if first {
                return Err(HandlerError::from("the first delivery fails"));
            }
            tokio::time::sleep(retry_takes).await;
            Ok(())
        }
    });
    calls
}

async fn a_poison_retry_is_dead_lettered_once_lost_claims_spend_its_attempts<B: Backend>(
    store: Store<B>,
) {
    let bus = TypedEventBus::new(store);
    let calls = fail_once_then(&bus, "record", Duration::ZERO);
    let poison = Uuid::from_u128(1);
    publish(&bus, &[poison]).await;
    // Only the first fan-out: the retry it owes is not due yet, and is left to the silent
    // workers below once it is.
    let retry_in = Duration::from_millis(200);
    let summary = bus
        .drain()
        .retry(RetryTiming {
            base: retry_in,
            cap: retry_in,
        })
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!((summary.events, summary.retries_scheduled), (1, 1));
    tokio::time::sleep(retry_in * 2).await;
    // One attempt was made; every claim of the retry after it is lost, as if each worker that
    // took it crashed while re-delivering, until they have spent the remaining attempts.
    let max_attempts = ContactCreated::META.retry.max_attempts().get();
    for _ in 1..max_attempts {
        let lost =
            SilentDeliveryClaim::take(bus.store(), "events_change", Duration::from_millis(1))
                .await
                .unwrap();
        assert_eq!(
            lost.len(),
            1,
            "the retry is claimable again after a lost claim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    bus.drain()
        .retry(quick_retries())
        .run_until_idle()
        .await
        .unwrap();

    assert_eq!(calls.of(poison), 1, "a poison retry is not run again");
    let dead = bus.store().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, max_attempts);
    let lost = max_attempts - 1;
    assert_eq!(
        dead[0].last_error,
        format!("claim lost {lost} times: worker crashed or stalled while delivering")
    );
    let again = SilentDeliveryClaim::take(bus.store(), "events_change", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty(), "no longer claimed for ever");
}

async fn a_retry_slower_than_the_lease_keeps_its_claim<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    // Past several leases of 300 ms, which the retry lane renews meanwhile.
    let calls = fail_once_then(&bus, "record", Duration::from_millis(1200));
    let slow = Uuid::from_u128(30);
    publish(&bus, &[slow]).await;
    let workers = two_drains_with_short_leases(&bus);
    eventually("the retry is delivered", DEADLINE, || async {
        let stats = bus.store().stats().await.unwrap();
        stats.pending_events == 0 && stats.retrying_deliveries == 0
    })
    .await;
    for worker in workers {
        worker.shutdown().await;
    }
    assert_eq!(
        calls.of(slow),
        2,
        "the first delivery and one retry: the retry's lease held"
    );
    assert!(bus.store().dead_letters(10).await.unwrap().is_empty());
}

async fn a_released_claim_does_not_count_as_lost<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let calls = Calls::default();
    let seen = calls.clone();
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    bus.subscribe("hangs_on_shutdown", move |e: Envelope<ContactCreated>| {
        let (seen, signal) = (seen.clone(), signal.clone());
        async move {
            seen.record(e.payload.contact_id);
            signal.notify_one();
            std::future::pending::<Result<(), HandlerError>>().await
        }
    });
    let contact = Uuid::from_u128(3);
    publish(&bus, &[contact]).await;
    // Stopped gracefully more often than the event has attempts: each stop gives the claim
    // back, which is no crash.
    let max_attempts = ContactCreated::META.retry.max_attempts().get();
    for _ in 0..=max_attempts {
        let drain = bus
            .drain()
            .shutdown_timeout(Duration::from_millis(10))
            .spawn();
        started.notified().await;
        drain.shutdown().await;
    }
    assert_eq!(calls.of(contact), max_attempts + 1);
    assert!(bus.store().dead_letters(10).await.unwrap().is_empty());
}

async fn a_hanging_subscriber_times_out_and_its_pool_moves_on<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let hanging = Uuid::from_u128(10);
    let later: Vec<Uuid> = (11..16).map(Uuid::from_u128).collect();
    let calls = Calls::default();
    let seen = calls.clone();
    bus.subscribe_with_timeout(
        "hangs_on_one",
        Duration::from_millis(200),
        move |e: Envelope<ContactCreated>| {
            let seen = seen.clone();
            async move {
                seen.record(e.payload.contact_id);
                if e.payload.contact_id == hanging {
                    std::future::pending::<()>().await;
                }
                Ok::<_, HandlerError>(())
            }
        },
    );
    let quick = record_calls(&bus, "quick");
    publish(&bus, &[hanging]).await;
    let drain = bus
        .drain()
        .batch_size(1)
        .poll_interval(Duration::from_millis(50))
        .retry(RetryTiming {
            base: Duration::from_secs(3600),
            cap: Duration::from_secs(3600),
        })
        .spawn();
    publish(&bus, &later).await;
    eventually(
        "the later events of the pool are delivered",
        DEADLINE,
        || async { later.iter().all(|contact| calls.of(*contact) == 1) },
    )
    .await;
    drain.shutdown().await;
    assert_eq!(calls.of(hanging), 1);
    assert_eq!(quick.of(hanging), 1, "the other subscriber was not held");
    // The timed-out delivery is a failed attempt of that subscriber only, waiting for its retry.
    let stats = bus.store().stats().await.unwrap();
    assert_eq!((stats.pending_events, stats.retrying_deliveries), (0, 1));
}

async fn a_subscriber_slower_than_the_lease_keeps_its_batch<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let slow = Uuid::from_u128(20);
    let quick: Vec<Uuid> = (21..41).map(Uuid::from_u128).collect();
    let calls = Calls::default();
    let seen = calls.clone();
    let probe = bus.store().clone();
    // While the slow delivery runs, its quick batch-mates must already be completed: the slow
    // handler watches the backlog shrink to its own event before it returns.
    let completed_before_slow = Arc::new(Mutex::new(None));
    let witness = completed_before_slow.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let (seen, probe, witness) = (seen.clone(), probe.clone(), witness.clone());
        async move {
            seen.record(e.payload.contact_id);
            if e.payload.contact_id == slow {
                let mut only_this_one_left = false;
                for _ in 0..150 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if probe.stats().await?.pending_events == 1 {
                        only_this_one_left = true;
                        break;
                    }
                }
                // Past several leases of 300 ms, which the batch renews meanwhile.
                tokio::time::sleep(Duration::from_millis(1200)).await;
                *witness.lock().unwrap() = Some(only_this_one_left);
            }
            Ok::<_, HandlerError>(())
        }
    });
    let mut all = vec![slow];
    all.extend(&quick);
    publish(&bus, &all).await;
    let workers = two_drains_with_short_leases(&bus);
    eventually("every event is processed", DEADLINE, || async {
        bus.store().stats().await.unwrap().pending_events == 0
    })
    .await;
    for worker in workers {
        worker.shutdown().await;
    }
    assert_eq!(
        calls.of(slow),
        1,
        "the slow delivery ran once: its lease held"
    );
    assert!(quick.iter().all(|contact| calls.of(*contact) == 1));
    assert_eq!(calls.total(), 21);
    assert_eq!(
        *completed_before_slow.lock().unwrap(),
        Some(true),
        "the quick events completed while the slow one still ran"
    );
}

async fn an_event_of_an_unknown_type_waits_for_a_process_that_knows_it<B: Backend>(
    store: Store<B>,
) {
    let (contact, other) = (Uuid::from_u128(50), Uuid::from_u128(51));
    let unknown = RawEvent::change(
        "contact_merged",
        1,
        serde_json::json!({ "contact_id": contact, "into": other }),
    );
    a_newer_releases_event_waits_for_a_process_that_reads_it(store, unknown, contact, other).await;
}

async fn an_event_of_a_newer_version_waits_for_a_process_that_reads_it<B: Backend>(
    store: Store<B>,
) {
    let (contact, other) = (Uuid::from_u128(52), Uuid::from_u128(53));
    // Version 2 of `contact_created`, which this code reads at version 1 and would fail to
    // decode (the new field is unknown to its struct).
    let newer = RawEvent::change(
        "contact_created",
        ContactCreated::META.version + 1,
        serde_json::json!({
            "contact_id": contact,
            "account_id": null,
            "created_by": Uuid::from_u128(7),
            "source": "import",
        }),
    );
    a_newer_releases_event_waits_for_a_process_that_reads_it(store, newer, contact, other).await;
}

/// A newer release stored `newer` on the aggregate `contact`, then this release published an
/// event of `contact` and one of the unrelated `other`: only `other`'s is delivered here, and
/// `newer` waits, pending, for a process that reads it, holding `contact`'s next event back.
async fn a_newer_releases_event_waits_for_a_process_that_reads_it<B: Backend>(
    store: Store<B>,
    newer: RawEvent,
    contact: Uuid,
    other: Uuid,
) {
    let bus = TypedEventBus::new(store);
    let calls = record_calls(&bus, "record");
    let mut tx = bus.store().begin().await.unwrap();
    let newer = newer
        .aggregate("contact", contact, 1)
        .insert(bus.store(), &mut tx)
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    publish(&bus, &[contact, other]).await;

    let summary = bus.drain().run_until_idle().await.unwrap();

    assert_eq!(summary.events, 1, "only the unrelated event is delivered");
    assert_eq!(summary.dead_lettered, 0, "nothing failed to decode");
    assert_eq!((calls.of(other), calls.of(contact)), (1, 0));
    assert_eq!(bus.store().stats().await.unwrap().pending_events, 2);
    // A process that reads it still finds it pending and delivers it; then the aggregate's
    // next event follows, in order.
    // (On PostgreSQL the lane gave it back due a second later: wait for that.)
    let take = || SilentEventClaim::take(bus.store(), "events_change", Duration::from_secs(30));
    let mut newer_release = take().await.unwrap();
    for _ in 0..50 {
        if !newer_release.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        newer_release = take().await.unwrap();
    }
    assert_eq!(newer_release.event_ids(), vec![newer]);
    assert_eq!(newer_release.acknowledge_late().await.unwrap(), 1);
    let summary = bus.drain().run_until_idle().await.unwrap();
    assert_eq!((summary.events, calls.of(contact)), (1, 1));
}

/// Two transactions publish to one aggregate at once, the first to publish committing last: the
/// aggregate's events must still be delivered in the order of their positions. (SQLite and
/// memory have one writer at a time, so only PostgreSQL can interleave them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_publishers_to_one_aggregate_deliver_in_order() {
    let Some(schema) =
        PostgresSchema::create("postgres_concurrent_publishers_to_one_aggregate").await
    else {
        return;
    };
    let bus = TypedEventBus::new(schema.store(5).await);
    let order = Arc::new(Mutex::new(Vec::new()));
    let sink = order.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(e.id);
            Ok::<_, HandlerError>(())
        }
    });
    let contact = Uuid::from_u128(60);
    let mut first_tx = bus.store().begin().await.unwrap();
    let first = bus
        .publish(&mut first_tx, contact, contact_created(contact))
        .await
        .unwrap();
    let second_publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut tx = bus.store().begin().await.unwrap();
            let id = bus
                .publish(&mut tx, contact, contact_created(contact))
                .await
                .unwrap();
            bus.store().commit(tx).await.unwrap();
            id
        })
    };
    // Time for the second publisher to commit, were it not held until the first commits; a
    // drain meanwhile would deliver whatever is committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.drain().run_until_idle().await.unwrap();
    bus.store().commit(first_tx).await.unwrap();
    let second = second_publisher.await.unwrap();
    bus.drain().run_until_idle().await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec![first, second]);
    schema.drop().await;
}

/// Subscribers that each hold one of the store's few pooled connections for a while, in a
/// batch that outlasts several lease renewals: the renewal needs a connection too, and must not
/// stop the deliveries that would give theirs back from making progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_subscribers_holding_pooled_connections_do_not_starve_the_renewal() {
    let Some(schema) =
        PostgresSchema::create("postgres_subscribers_holding_pooled_connections").await
    else {
        return;
    };
    let bus = TypedEventBus::new(schema.store(3).await);
    let pool = bus.store().backend().pool().clone();
    let calls = Calls::default();
    let seen = calls.clone();
    bus.subscribe("queries", move |e: Envelope<ContactCreated>| {
        let (seen, pool) = (seen.clone(), pool.clone());
        async move {
            herald::sqlx::query("SELECT pg_sleep(0.1)")
                .execute(&pool)
                .await?;
            seen.record(e.payload.contact_id);
            Ok::<_, HandlerError>(())
        }
    });
    let contacts: Vec<Uuid> = (100..130).map(Uuid::from_u128).collect();
    publish(&bus, &contacts).await;
    let drain = bus
        .drain()
        .lease(Duration::from_millis(150))
        .poll_interval(Duration::from_millis(50))
        .spawn();
    // Far below the pool's acquire timeout (30 s), which a starved renewal would wait out.
    eventually(
        "every event is processed",
        Duration::from_secs(10),
        || async { bus.store().stats().await.unwrap().pending_events == 0 },
    )
    .await;
    drain.shutdown().await;
    assert!(contacts.iter().all(|contact| calls.of(*contact) == 1));
    schema.drop().await;
}

/// On SQLite a payload is text that nothing checks: a row written by another tool with bytes
/// that are not UTF-8 must not fail every claim of its pool, nor hold the good events claimed
/// with it. (PostgreSQL's `jsonb` never stores such a payload.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_unreadable_row_is_dead_lettered_and_the_rest_delivered() {
    let (_dir, store) = integration_tests::support::sqlite().await;
    let bus = TypedEventBus::new(store.clone());
    let calls = record_calls(&bus, "record");
    let (good, garbled) = (Uuid::from_u128(200), Uuid::from_u128(201));
    publish(&bus, &[garbled, good]).await;
    let pool = store.backend().pool().clone();
    herald::sqlx::query(
        "UPDATE herald_events SET payload = CAST(X'7B22FF22' AS TEXT) WHERE aggregate_id = ?",
    )
    .bind(garbled.to_string())
    .execute(&pool)
    .await
    .unwrap();

    let summary = bus.drain().run_until_idle().await.unwrap();

    assert_eq!((calls.of(good), calls.of(garbled)), (1, 0));
    assert_eq!((summary.events, summary.dead_lettered), (2, 1));
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .last_error
            .starts_with("the stored row cannot be read:"),
        "{}",
        dead[0].last_error
    );
    // Re-driven before the row is repaired, the retry lane dead-letters it again instead of
    // failing its claims.
    store.redrive(&herald::ops::Redrive::all()).await.unwrap();
    let again = bus.drain().run_until_idle().await.unwrap();
    assert_eq!(again.dead_lettered, 1);
    assert_eq!(calls.of(garbled), 0);
}

async fn a_projections_lag_counts_what_it_has_yet_to_fold<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let projector = bus.projector(Folds::default());
    assert_eq!(projector.lag().await.unwrap(), ProjectionLag::default());
    publish(&bus, &[Uuid::from_u128(300), Uuid::from_u128(301)]).await;
    assert_eq!(projector.lag().await.unwrap().behind, 2);
    eventually("the projection folds both", DEADLINE, || async {
        projector.catch_up().await.unwrap();
        *projector.projection().0.lock().unwrap() == 2
    })
    .await;
    assert_eq!(projector.lag().await.unwrap(), ProjectionLag::default());
    let listed = bus.store().projections().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.name.as_str(), p.lag))
            .collect::<Vec<_>>(),
        vec![("folds", ProjectionLag::default())],
        "operators see the projection, caught up"
    );
    let last = bus.store().events(&Default::default()).await.unwrap()[0].position;
    assert_eq!(listed[0].position, last);
}

/// A long-running writing transaction pins PostgreSQL's snapshot horizon: projections stall
/// behind it by design (they never skip an event that commits later at a smaller position),
/// the lag says so, and they resume when it ends; the drain does not stall at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_long_transaction_holds_projections_back_but_not_the_drain() {
    let Some(schema) =
        PostgresSchema::create("postgres_a_long_transaction_holds_projections").await
    else {
        return;
    };
    let bus = TypedEventBus::new(schema.store(4).await);
    let calls = record_calls(&bus, "record");
    let projector = bus.projector(Folds::default());
    // A writing transaction left open: it has a transaction id, which pins the horizon.
    let mut long = bus.store().begin().await.unwrap();
    let pinned = Uuid::from_u128(310);
    bus.publish(&mut long, pinned, contact_created(pinned))
        .await
        .unwrap();
    let later = Uuid::from_u128(311);
    publish(&bus, &[later]).await;

    let summary = bus.drain().run_until_idle().await.unwrap();
    assert_eq!(
        (summary.events, calls.of(later)),
        (1, 1),
        "the drain is not held"
    );
    assert_eq!(
        projector.catch_up().await.unwrap(),
        0,
        "the projection is held back"
    );
    let lag = projector.lag().await.unwrap();
    assert!(lag.behind >= 1 && lag.held_back >= 1, "{lag:?}");

    bus.store().commit(long).await.unwrap();
    eventually("the projection resumes", DEADLINE, || async {
        projector.catch_up().await.unwrap();
        *projector.projection().0.lock().unwrap() == 2
    })
    .await;
    assert_eq!(projector.lag().await.unwrap(), ProjectionLag::default());
    schema.drop().await;
}

/// Database pressure, as in the published comparisons of PostgreSQL queues: an analytics
/// reader holds a snapshot open the whole time (pinning vacuum, so every claim and completion
/// leaves dead rows that cannot be pruned), a burst of 800 events on 20 aggregates lands at
/// once while a second publisher keeps adding single events, and two drains work through it. Nothing is lost or delivered twice,
/// each aggregate's events arrive in order, and the backlog is gone while the reader still
/// holds its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_under_pressure_nothing_is_lost_reordered_or_stalled() {
    let Some(schema) = PostgresSchema::create("postgres_under_pressure").await else {
        return;
    };
    let bus = TypedEventBus::new(schema.store(8).await);
    let seen: Arc<Mutex<Vec<(Uuid, u32)>>> = Arc::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            // `created_by` carries the event's number within its aggregate.
            let n = e.payload.created_by.as_u128() as u32;
            sink.lock().unwrap().push((e.payload.contact_id, n));
            Ok::<_, HandlerError>(())
        }
    });
    let mut reader = bus.store().backend().pool().begin().await.unwrap();
    herald::sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *reader)
        .await
        .unwrap();
    let _: i64 = herald::sqlx::query_scalar("SELECT count(*) FROM herald_events")
        .fetch_one(&mut *reader)
        .await
        .unwrap();

    let drains: Vec<_> = (0..2)
        .map(|w| {
            bus.drain()
                .worker_id(format!("pressure-{w}"))
                .poll_interval(Duration::from_millis(50))
                .retry(quick_retries())
                .spawn()
        })
        .collect();
    let aggregates: Vec<Uuid> = (0..20).map(|i| Uuid::from_u128(5_000 + i)).collect();
    let event = |contact: Uuid, n: u32| ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::from_u128(u128::from(n)),
    };
    // The burst: 40 events on each of 20 aggregates, 200 per transaction.
    let burst = {
        let (bus, aggregates) = (bus.clone(), aggregates.clone());
        tokio::spawn(async move {
            for chunk in 0..4_u32 {
                let mut tx = bus.store().begin().await.unwrap();
                for n in chunk * 10..(chunk + 1) * 10 {
                    for contact in &aggregates {
                        bus.publish(&mut tx, *contact, event(*contact, n))
                            .await
                            .unwrap();
                    }
                }
                bus.store().commit(tx).await.unwrap();
            }
        })
    };
    // Meanwhile, single events on aggregates of their own, one transaction each.
    let singles: Vec<Uuid> = (0..200).map(|i| Uuid::from_u128(9_000 + i)).collect();
    for contact in &singles {
        let mut tx = bus.store().begin().await.unwrap();
        bus.publish(&mut tx, *contact, event(*contact, 0))
            .await
            .unwrap();
        bus.store().commit(tx).await.unwrap();
    }
    burst.await.unwrap();
    let expected = aggregates.len() * 40 + singles.len();
    eventually(
        "every event is delivered",
        Duration::from_secs(120),
        || async { seen.lock().unwrap().len() >= expected },
    )
    .await;
    // Still inside the reader's snapshot: the drain did not wait for it.
    let _: i64 = herald::sqlx::query_scalar("SELECT count(*) FROM herald_events")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    for drain in drains {
        drain.shutdown().await;
    }
    reader.rollback().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), expected, "each event once");
    let mut per_aggregate: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for (contact, n) in seen {
        per_aggregate.entry(contact).or_default().push(n);
    }
    for contact in &aggregates {
        assert_eq!(
            per_aggregate[contact],
            (0..40).collect::<Vec<_>>(),
            "the events of {contact} out of order or missing"
        );
    }
    assert_eq!(bus.store().stats().await.unwrap().pending_events, 0);
    schema.drop().await;
}

integration_tests::on_every_backend!(
    a_projections_lag_counts_what_it_has_yet_to_fold,
    an_event_of_an_unknown_type_waits_for_a_process_that_knows_it,
    an_event_of_a_newer_version_waits_for_a_process_that_reads_it,
    a_poison_event_is_dead_lettered_once_lost_claims_spend_its_attempts,
    a_poison_retry_is_dead_lettered_once_lost_claims_spend_its_attempts,
    a_retry_slower_than_the_lease_keeps_its_claim,
    a_released_claim_does_not_count_as_lost,
    a_hanging_subscriber_times_out_and_its_pool_moves_on,
    a_subscriber_slower_than_the_lease_keeps_its_batch,
);

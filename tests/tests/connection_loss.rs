//! PostgreSQL connections lost under Herald's background loops: every connection of the drain,
//! the job worker and the `LISTEN` task is terminated by the server (`pg_terminate_backend`),
//! again and again, while events and jobs flow. Nothing may be lost, and the loops must recover
//! by themselves. Each test has a schema and an `application_name` of its own, so that only its
//! own connections are terminated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::sqlx::{Connection, PgConnection};
use herald::uuid::Uuid;
use herald::{Envelope, HandlerError, Jobs, PostgresStore};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::fixtures::{
    completed_runs, contact_created, count_deliveries_by_contact, quick_retries,
};
use integration_tests::jobs::{Probe, SyncContact};
use integration_tests::support::{PostgresSchema, eventually};

const DEADLINE: Duration = Duration::from_secs(30);

/// A migrated store of `schema` whose connections are named `schema.name`.
async fn named_store(schema: &PostgresSchema, max_connections: u32) -> PostgresStore {
    let options = schema.options().application_name(&schema.name);
    let store = herald::postgres_with(options, max_connections)
        .await
        .expect("connect to PostgreSQL");
    store.migrate().await.expect("migrate PostgreSQL");
    store
}

/// Terminates every connection named `application_name`; returns how many.
async fn terminate_all(admin: &mut PgConnection, application_name: &str) -> u64 {
    herald::sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()) AS terminated",
    )
    .bind(application_name)
    .fetch_one(admin)
    .await
    .map(|count| count as u64)
    .expect("terminate backends")
}

/// Publishes one `contact_created` per contact, ten per transaction, `pause` between commits.
async fn publish_in_tens(
    producer: &TypedEventBus<herald::PostgresBackend>,
    contacts: &[Uuid],
    pause: Duration,
) {
    for batch in contacts.chunks(10) {
        let mut tx = producer.store().begin().await.unwrap();
        for contact in batch {
            producer
                .publish(&mut tx, *contact, contact_created(*contact))
                .await
                .unwrap();
        }
        producer.store().commit(tx).await.unwrap();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_storm_of_terminated_connections_loses_nothing() {
    let Some(schema) = PostgresSchema::create("postgres_a_storm_of_terminated_connections").await
    else {
        return;
    };
    let jobs = || Jobs::new().register::<SyncContact>();
    // Herald's background loops run on the named store; the producer publishes through a store
    // of its own, so that the storm hits only the loops.
    let bus = TypedEventBus::new(named_store(&schema, 6).await).with_jobs(jobs());
    let producer = TypedEventBus::new(schema.store(2).await).with_jobs(jobs());
    let delivered = count_deliveries_by_contact(&bus);
    let quick = quick_retries();
    let drain = bus
        .drain()
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(200))
        .retry(quick)
        .spawn();
    let probe = Probe::default();
    let worker = bus
        .worker()
        .state(probe.clone())
        .poll_interval(Duration::from_millis(200))
        .retry(quick)
        .spawn();

    let storm = {
        let (url, name) = (schema.url.clone(), schema.name.clone());
        tokio::spawn(async move {
            let mut admin = PgConnection::connect(&url).await.expect("admin connection");
            let mut terminated = 0;
            for _ in 0..40 {
                terminated += terminate_all(&mut admin, &name).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            terminated
        })
    };
    let contacts: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();
    publish_in_tens(&producer, &contacts, Duration::from_millis(5)).await;
    let terminated = storm.await.unwrap();
    assert!(terminated > 0, "the storm terminated no connection");

    eventually("every event is delivered", DEADLINE, || async {
        let delivered = delivered.lock().unwrap();
        contacts
            .iter()
            .all(|contact| delivered.contains_key(contact))
    })
    .await;
    eventually("every triggered job completes", DEADLINE, || async {
        completed_runs(producer.store()).await == contacts.len()
    })
    .await;
    // A batch whose completion the storm defeated every time comes back after its lease.
    eventually("every event is completed", DEADLINE, || async {
        producer.store().stats().await.unwrap().pending_events == 0
    })
    .await;
    drain.shutdown().await;
    worker.shutdown().await;
    let stats = producer.store().stats().await.unwrap();
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
    schema.drop().await;
}

/// A drain that never polls (an hour between looks) is woken only by `LISTEN`: after its
/// connections are terminated, it must listen again by itself and deliver the next commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_listen_connection_comes_back_after_it_is_terminated() {
    let Some(schema) = PostgresSchema::create("postgres_the_listen_connection_comes_back").await
    else {
        return;
    };
    let bus = TypedEventBus::new(named_store(&schema, 4).await);
    let writer = TypedEventBus::new(schema.store(2).await);
    let seen: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(e.payload.contact_id);
            Ok::<_, HandlerError>(())
        }
    });
    let drain = bus.drain().poll_interval(Duration::from_secs(3600)).spawn();
    let publish = |contact: Uuid| {
        let writer = writer.clone();
        async move {
            let mut tx = writer.store().begin().await.unwrap();
            writer
                .publish(&mut tx, contact, contact_created(contact))
                .await
                .unwrap();
            writer.store().commit(tx).await.unwrap();
        }
    };
    let first = Uuid::from_u128(1);
    publish(first).await;
    eventually("the first commit is delivered", DEADLINE, || async {
        seen.lock().unwrap().len() == 1
    })
    .await;

    let mut admin = PgConnection::connect(&schema.url).await.unwrap();
    assert!(terminate_all(&mut admin, &schema.name).await > 0);
    // Listening again takes a moment; commits meanwhile are found by the look that follows it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Uuid::from_u128(2);
    publish(second).await;
    eventually(
        "the commit after the outage is delivered without a poll",
        Duration::from_secs(10),
        || async { seen.lock().unwrap().len() == 2 },
    )
    .await;
    drain.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), vec![first, second]);
    schema.drop().await;
}

/// The application holds every connection of its pool (a traffic spike, a leak): Herald's
/// claims, deliveries and heartbeats run on a pool of their own, so events are still delivered
/// and jobs still run meanwhile; the jobs' results, which wait for a durable commit on the
/// application's pool, are recorded as soon as a connection is free again, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_exhausted_application_pool_stops_neither_deliveries_nor_jobs() {
    let Some(schema) = PostgresSchema::create("postgres_an_exhausted_application_pool").await
    else {
        return;
    };
    let jobs = || Jobs::new().register::<SyncContact>();
    let bus = TypedEventBus::new(named_store(&schema, 3).await).with_jobs(jobs());
    let producer = TypedEventBus::new(schema.store(2).await).with_jobs(jobs());
    let delivered = count_deliveries_by_contact(&bus);
    let drain = bus
        .drain()
        .poll_interval(Duration::from_millis(100))
        .spawn();
    let probe = Probe::default();
    let worker = bus
        .worker()
        .state(probe.clone())
        .poll_interval(Duration::from_millis(100))
        .spawn();
    // Let the loops take the connections they keep (LISTEN) before the application takes the
    // rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    while let Ok(Ok(connection)) = tokio::time::timeout(
        Duration::from_millis(500),
        bus.store().backend().pool().acquire(),
    )
    .await
    {
        held.push(connection);
    }
    assert!(
        !held.is_empty(),
        "the application's pool had no connection to take"
    );

    let contacts: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    publish_in_tens(&producer, &contacts, Duration::ZERO).await;
    eventually(
        "every event is delivered while the pool is exhausted",
        DEADLINE,
        || async { delivered.lock().unwrap().len() >= contacts.len() },
    )
    .await;
    eventually(
        "every triggered job runs while the pool is exhausted",
        DEADLINE,
        || async { probe.calls().len() >= contacts.len() },
    )
    .await;
    drop(held);

    eventually("every job's result is recorded", DEADLINE, || async {
        completed_runs(producer.store()).await == contacts.len()
    })
    .await;
    drain.shutdown().await;
    worker.shutdown().await;
    let stats = producer.store().stats().await.unwrap();
    assert_eq!(stats.pending_events, 0, "{stats:?}");
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
    {
        let delivered = delivered.lock().unwrap();
        assert_eq!(delivered.len(), contacts.len(), "an event was lost");
        assert!(
            contacts
                .iter()
                .all(|contact| delivered.contains_key(contact)),
            "an event was lost"
        );
    }
    schema.drop().await;
}

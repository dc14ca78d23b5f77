//! A worker killed with SIGKILL in the middle of a batch of 10,000 events loses nothing: a new
//! worker reclaims its leases and every event reaches every subscriber at least once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::sqlx::{self, Executor};
use herald::{Backend, Publish, Store};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::support::{PostgresSchema, sqlite};

const EVENTS: u128 = 10_000;
const SUBSCRIBERS: i64 = 2;

fn spawn_worker(url: &str, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_worker"))
        .args([url, id])
        .stdout(Stdio::null())
        .spawn()
        .expect("start crash_worker")
}

async fn publish_backlog<B: Backend>(store: &Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let events: Vec<_> = (0..EVENTS)
        .map(|n| {
            // 500 aggregates of 20 events each: ordering constraints are in play too.
            let contact = herald::uuid::Uuid::from_u128(n % 500 + 1);
            Publish::new(ContactCreated {
                contact_id: contact,
                account_id: None,
                created_by: herald::uuid::Uuid::from_u128(n),
            })
            .aggregate_id(contact)
        })
        .collect();
    for chunk in events.chunks(1000) {
        let mut tx = store.begin().await.unwrap();
        bus.publish_many(&mut tx, chunk.to_vec()).await.unwrap();
        store.commit(tx).await.unwrap();
    }
}

/// Polls `count` until it reaches `at_least`, or panics after `deadline`.
async fn wait_for<F, Fut>(what: &str, deadline: Duration, at_least: i64, mut count: F) -> i64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = i64>,
{
    let start = Instant::now();
    loop {
        let value = count().await;
        if value >= at_least {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out waiting for {what}: {value} of {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kill-and-restart scenario. `count` answers: deliveries recorded, and (event, subscriber)
/// pairs with no delivery at all.
async fn kill_mid_batch_then_restart<F, Fut>(url: &str, count: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (i64, i64)>,
{
    let total = EVENTS as i64 * SUBSCRIBERS;
    let mut first = spawn_worker(url, "first");
    let recorded = wait_for(
        "the first worker to start",
        Duration::from_secs(60),
        500,
        || async { count().await.0 },
    )
    .await;
    first.kill().expect("SIGKILL the first worker");
    first.wait().expect("reap the first worker");
    let (recorded_at_kill, _) = count().await;
    assert!(
        recorded_at_kill < total,
        "the first worker finished everything ({recorded} recorded) before it could be killed"
    );

    let mut second = spawn_worker(url, "second");
    let result = wait_for(
        "every event at every subscriber",
        Duration::from_secs(180),
        0,
        || async {
            let (_, missing) = count().await;
            -missing
        },
    )
    .await;
    second.kill().expect("stop the second worker");
    second.wait().expect("reap the second worker");
    let (recorded_total, missing) = count().await;
    assert_eq!(result, 0);
    assert_eq!(missing, 0);
    assert!(recorded_total >= total);
    eprintln!(
        "killed after {recorded_at_kill} of {total} deliveries; {} redelivered after the crash \
         (at-least-once)",
        recorded_total - total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_killed_mid_batch_loses_nothing() {
    let (dir, store) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let pool = store.backend().pool().clone();
    pool.execute(
        "CREATE TABLE received (event_id BLOB NOT NULL, subscriber TEXT NOT NULL); \
         CREATE INDEX received_by_event ON received (event_id, subscriber);",
    )
    .await
    .unwrap();
    publish_backlog(&store).await;
    kill_mid_batch_then_restart(&url, || async {
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM received")
            .fetch_one(&pool)
            .await
            .unwrap();
        let missing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM herald_events e, (SELECT 'projection' AS name \
             UNION ALL SELECT 'notifier') s WHERE NOT EXISTS (SELECT 1 FROM received r \
             WHERE r.event_id = e.id AND r.subscriber = s.name)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (recorded, missing)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_killed_mid_batch_loses_nothing() {
    let Some(schema) =
        PostgresSchema::create("postgres_worker_killed_mid_batch_loses_nothing").await
    else {
        return;
    };
    let store = schema.store(4).await;
    let pool = store.backend().pool().clone();
    pool.execute(
        "CREATE TABLE received (event_id UUID NOT NULL, subscriber TEXT NOT NULL); \
         CREATE INDEX received_by_event ON received (event_id, subscriber);",
    )
    .await
    .unwrap();
    publish_backlog(&store).await;
    kill_mid_batch_then_restart(&schema.url_with_search_path(), || async {
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM received")
            .fetch_one(&pool)
            .await
            .unwrap();
        let missing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM herald_events e \
             CROSS JOIN (VALUES ('projection'), ('notifier')) AS s(name) \
             WHERE NOT EXISTS (SELECT 1 FROM received r \
               WHERE r.event_id = e.id AND r.subscriber = s.name)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (recorded, missing)
    })
    .await;
    schema.drop().await;
}

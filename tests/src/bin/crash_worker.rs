//! A drain worker for the crash test: delivers the example domain's `contact_created` events to
//! two subscribers that each record every delivery in the `received` table, until it is killed.
//!
//! Usage: `crash_worker <database-url> <worker-id>`

use std::time::Duration;

use herald::{Backend, Envelope, Store};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;

const SUBSCRIBERS: [&str; 2] = ["projection", "notifier"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(worker)) = (args.next(), args.next()) else {
        return Err("usage: crash_worker <database-url> <worker-id>".into());
    };
    if url.starts_with("sqlite:") {
        let store = herald::sqlite(&url).await?;
        let pool = store.backend().pool().clone();
        run(store, worker, move |subscriber, event_id| {
            let pool = pool.clone();
            async move {
                herald::sqlx::query("INSERT INTO received (event_id, subscriber) VALUES (?, ?)")
                    .bind(event_id)
                    .bind(subscriber)
                    .execute(&pool)
                    .await
                    .map(drop)
            }
        })
        .await
    } else {
        let store = herald::postgres(&url).await?;
        let pool = store.backend().pool().clone();
        run(store, worker, move |subscriber, event_id| {
            let pool = pool.clone();
            async move {
                herald::sqlx::query("INSERT INTO received (event_id, subscriber) VALUES ($1, $2)")
                    .bind(event_id)
                    .bind(subscriber)
                    .execute(&pool)
                    .await
                    .map(drop)
            }
        })
        .await
    }
}

async fn run<B, R, Fut>(
    store: Store<B>,
    worker: String,
    record: R,
) -> Result<(), Box<dyn std::error::Error>>
where
    B: Backend,
    R: Fn(&'static str, herald::uuid::Uuid) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), herald::sqlx::Error>> + Send + 'static,
{
    let bus = TypedEventBus::new(store);
    for subscriber in SUBSCRIBERS {
        let record = record.clone();
        bus.subscribe(subscriber, move |e: Envelope<ContactCreated>| {
            record(subscriber, e.id)
        });
    }
    let _drain = bus
        .drain()
        .worker_id(worker)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
        .spawn();
    println!("draining");
    std::future::pending::<()>().await;
    Ok(())
}

//! A job worker for the kill test: runs `slow_sync` with a one-second lease until killed.
//!
//! Usage: `job_worker <database-url> <worker-id>`

use std::time::Duration;

use herald::{Backend, Store};
use integration_tests::domain::{JobBindings, TypedEventBus};
use integration_tests::jobs::{Ledger, SlowSync};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(worker)) = (args.next(), args.next()) else {
        return Err("usage: job_worker <database-url> <worker-id>".into());
    };
    if url.starts_with("sqlite:") {
        let store = herald::sqlite(&url).await?;
        let ledger = Ledger::Sqlite(store.backend().pool().clone());
        run(store, ledger, worker).await
    } else {
        let store = herald::postgres(&url).await?;
        let ledger = Ledger::Postgres(store.backend().pool().clone());
        run(store, ledger, worker).await
    }
}

async fn run<B: Backend>(
    store: Store<B>,
    ledger: Ledger,
    worker: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let _worker = TypedEventBus::new(store)
        .with_jobs(JobBindings::new().register::<SlowSync>())
        .worker()
        .state(ledger)
        .worker_id(worker)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
        .spawn();
    std::future::pending::<()>().await;
    Ok(())
}

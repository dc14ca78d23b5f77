//! A worker killed with SIGKILL in the middle of a run loses nothing: the run is rescued once
//! its lease expires, runs again on another worker and completes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::ops::RunStatus;
use herald::sqlx::{self, Executor};
use herald::{Backend, Store};
use integration_tests::jobs::{Ledger, Nothing, SlowSync};
use integration_tests::support::{PostgresSchema, eventually, sqlite};

fn spawn_worker(url: &str, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_job_worker"))
        .args([url, id])
        .stdout(Stdio::null())
        .spawn()
        .expect("start job_worker")
}

async fn kill_mid_run_then_rescue<B: Backend, F, Fut>(store: &Store<B>, url: &str, ledger: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let mut tx = store.begin().await.unwrap();
    let id = store
        .jobs()
        .start::<SlowSync>(&mut tx, Nothing {})
        .await
        .unwrap();
    store.commit(tx).await.unwrap();

    let mut first = spawn_worker(url, "first");
    eventually(
        "the first worker starts the run",
        Duration::from_secs(30),
        || async { ledger().await.contains(&"started 1".to_owned()) },
    )
    .await;
    first.kill().expect("SIGKILL the first worker");
    first.wait().expect("reap the first worker");
    let killed_at = Instant::now();

    let mut second = spawn_worker(url, "second");
    eventually(
        "the rescued run completes",
        Duration::from_secs(30),
        || async { store.jobs().get(id).await.unwrap().unwrap().status == RunStatus::Completed },
    )
    .await;
    let took = killed_at.elapsed();
    second.kill().expect("stop the second worker");
    second.wait().expect("reap the second worker");

    let run = store.jobs().get(id).await.unwrap().unwrap();
    assert_eq!(run.attempt, 2);
    assert_eq!(ledger().await, ["started 1", "started 2", "finished 2"]);
    eprintln!("killed mid-run; rescued and completed {took:?} later (lease 1 s, run 1.5 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_job_worker_killed_mid_run_is_rescued() {
    let (dir, store) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let pool = store.backend().pool().clone();
    pool.execute(Ledger::SCHEMA).await.unwrap();
    kill_mid_run_then_rescue(&store, &url, || async {
        sqlx::query_scalar("SELECT entry FROM ledger ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_job_worker_killed_mid_run_is_rescued() {
    let Some(schema) =
        PostgresSchema::create("postgres_job_worker_killed_mid_run_is_rescued").await
    else {
        return;
    };
    let store = schema.store(4).await;
    let pool = store.backend().pool().clone();
    pool.execute(
        "CREATE TABLE ledger (position BIGSERIAL, run_id TEXT NOT NULL, entry TEXT NOT NULL)",
    )
    .await
    .unwrap();
    kill_mid_run_then_rescue(&store, &schema.url_with_search_path(), || async {
        sqlx::query_scalar("SELECT entry FROM ledger ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap()
    })
    .await;
    schema.drop().await;
}

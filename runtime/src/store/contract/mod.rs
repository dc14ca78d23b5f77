//! The backend contract: the promises every backend keeps at the seam — claim order, leases,
//! fencing, dedupe, caps, conflicts — tested once and run against SQLite, PostgreSQL (when
//! `HERALD_TEST_POSTGRES_URL` names a server; a schema each) and memory, in the manner of
//! River's `riverdrivertest`. Time is passed in, so leases and backoffs expire without sleeping.

mod jobs;
mod ops;
mod outbox;
mod trace;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
#[cfg(feature = "postgres")]
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use super::{Backend, Claim, NewEvent, NewRun, Store};

/// The variable that names the PostgreSQL server of the tests.
#[cfg(feature = "postgres")]
const POSTGRES_URL_VAR: &str = "HERALD_TEST_POSTGRES_URL";

/// The instant the tests start at: far from the machine's clock, so that nothing passes by
/// accident of real time.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

fn claim(owner: &str, now: DateTime<Utc>) -> Claim<'_> {
    Claim {
        owner,
        limit: 100,
        lease: Duration::from_secs(30),
        now,
    }
}

/// A change event of `contact_created` in `events_change`, of aggregate `aggregate` if given.
fn event(aggregate: Option<&str>) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        event_type: "contact_created",
        version: 1,
        tier: "domain",
        direction: Some("change"),
        pool: Some("events_change"),
        aggregate_type: aggregate.map(|_| "contact"),
        aggregate_id: aggregate.map(str::to_owned),
        tenant_id: None,
        correlation_id: None,
        causation_id: None,
        payload: r#"{"n":1}"#.to_owned(),
        occurred_at: t0(),
        aggregate_sequence: None,
        trace: None,
    }
}

fn run(job: &'static str, run_at: DateTime<Utc>) -> NewRun {
    let id = Uuid::now_v7();
    NewRun {
        id,
        job,
        pool: "batch",
        input: r#"{"n":1}"#.to_owned(),
        max_attempts: 3,
        run_at: Some(run_at),
        dedupe_key: None,
        scope_type: None,
        scope_id: None,
        event_id: None,
        parent_id: None,
        root_id: id,
        tenant_id: None,
        child_key: None,
        trace: None,
    }
}

async fn insert_events<B: Backend>(store: &Store<B>, events: &[NewEvent]) -> Vec<Uuid> {
    let mut tx = store.begin().await.expect("begin");
    let ids = store
        .backend()
        .insert_events(&mut tx, events, t0())
        .await
        .expect("insert events");
    store.commit(tx).await.expect("commit");
    ids
}

async fn insert_runs<B: Backend>(store: &Store<B>, runs: &[NewRun]) -> Vec<Uuid> {
    let mut tx = store.begin().await.expect("begin");
    let ids = store
        .backend()
        .insert_runs(&mut tx, runs, t0())
        .await
        .expect("insert runs");
    store.commit(tx).await.expect("commit");
    ids
}

#[cfg(feature = "postgres")]
/// A migrated PostgreSQL store in a schema of its own, or `None` after saying that the test
/// is skipped.
pub(super) async fn postgres(test: &str) -> Option<(super::PostgresStore, String, String)> {
    let url = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("SKIPPED {test} on PostgreSQL: set {POSTGRES_URL_VAR} to run it");
            return None;
        }
    };
    let schema = format!("herald_contract_{}", Uuid::new_v4().simple());
    let mut connection = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR}={url} is unreachable: {error}"));
    connection
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .expect("create the test schema");
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("a PostgreSQL URL")
        .options([("search_path", schema.as_str())]);
    let store = crate::postgres_with(options, 10).await.expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, url, schema))
}

#[cfg(feature = "postgres")]
pub(super) async fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut connection) = PgConnection::connect(url).await {
        let _ = connection
            .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await;
    }
}

/// Runs each `async fn promise<B: Backend>(store: Store<B>)` of the calling module on every
/// backend, as tests `sqlite::promise`, `postgres::promise` and `memory::promise`.
macro_rules! on_every_backend {
    ($($promise:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $promise() {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
                    let store = crate::sqlite(&url).await.expect("open SQLite");
                    store.migrate().await.expect("migrate");
                    super::$promise(store).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $promise() {
                    let Some((store, url, schema)) =
                        crate::store::contract::postgres(stringify!($promise)).await
                    else {
                        return;
                    };
                    super::$promise(store).await;
                    crate::store::contract::drop_schema(&url, &schema).await;
                }
            )*
        }

        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $promise() {
                    super::$promise(crate::memory()).await;
                }
            )*
        }
    };
}
use on_every_backend;

//! Databases for tests: a fresh SQLite file each, and on PostgreSQL a fresh schema each, so that
//! tests run in parallel without seeing each other's rows.

use std::future::Future;
use std::time::{Duration, Instant};

use herald::sqlx::postgres::PgConnectOptions;
use herald::sqlx::{Connection, Executor, PgConnection};
use herald::{PostgresStore, SqliteStore};

/// The variable that names the PostgreSQL server of the tests; `.ci/run` always sets it.
pub const POSTGRES_URL_VAR: &str = "HERALD_TEST_POSTGRES_URL";

/// The variable that names the directory of PostgreSQL's `initdb` and `pg_ctl`, with which the
/// server-restart test runs a server of its own; `.ci/run` always sets it.
pub const POSTGRES_BIN_VAR: &str = "HERALD_TEST_POSTGRES_BIN";

/// A migrated SQLite store in a temporary directory that lives as long as the returned guard.
pub async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let store = herald::sqlite(&url).await.expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    (dir, store)
}

/// The PostgreSQL URL of the tests, or `None` after saying plainly that the test is skipped.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED {test} on PostgreSQL: set {POSTGRES_URL_VAR} to run it");
            None
        }
    }
}

/// A schema of its own on the test server, dropped by [`PostgresSchema::drop`].
pub struct PostgresSchema {
    pub url: String,
    pub name: String,
}

impl PostgresSchema {
    /// Creates a fresh schema; `None` (with a SKIPPED line) when no server is configured.
    pub async fn create(test: &str) -> Option<Self> {
        let url = postgres_url(test)?;
        let name = format!("herald_test_{}", herald::uuid::Uuid::new_v4().simple());
        let mut connection = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR}={url} is unreachable: {error}"));
        connection
            .execute(herald::sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .await
            .expect("create test schema");
        Some(Self { url, name })
    }

    /// Connection options whose `search_path` is this schema.
    pub fn options(&self) -> PgConnectOptions {
        self.url
            .parse::<PgConnectOptions>()
            .expect("valid PostgreSQL URL")
            .options([("search_path", self.name.as_str())])
    }

    /// The URL with this schema as `search_path`, for child processes.
    pub fn url_with_search_path(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }

    /// A migrated store in this schema.
    pub async fn store(&self, max_connections: u32) -> PostgresStore {
        let store = herald::postgres_with(self.options(), max_connections)
            .await
            .expect("connect to PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        store
    }

    pub async fn drop(self) {
        if let Ok(mut connection) = PgConnection::connect(&self.url).await {
            let _ = connection
                .execute(herald::sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA {} CASCADE",
                    self.name
                )))
                .await;
        }
    }
}

/// Polls `condition` until it holds; panics with `what` once `deadline` has passed. A deadline
/// for progress, not a measurement: it only fails when something is stuck.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs each listed `async fn scenario<B: Backend>(store: Store<B>)` of the calling module on
/// SQLite, on PostgreSQL (a schema each; skipped with a message when no server is named) and
/// in memory, as tests named `sqlite::scenario`, `postgres::scenario`, `memory::scenario`.
#[macro_export]
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (_dir, store) = $crate::support::sqlite().await;
                    super::$scenario(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(schema) =
                        $crate::support::PostgresSchema::create(stringify!($scenario)).await
                    else {
                        return;
                    };
                    super::$scenario(schema.store(10).await).await;
                    schema.drop().await;
                }
            )*
        }

        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(herald::memory()).await;
                }
            )*
        }
    };
}

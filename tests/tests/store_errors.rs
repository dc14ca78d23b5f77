//! Databases in the wrong state say what to do instead of failing with raw SQL errors:
//! never migrated, migrated by a newer Herald, or holding a foreign table with Herald's name.

use herald::sqlx::Executor;
use herald::uuid::Uuid;
use herald::{Backend, Publish, PublishError, Store, StoreError};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::support::PostgresSchema;

async fn fresh_sqlite() -> (tempfile::TempDir, herald::SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    (dir, herald::sqlite(&url).await.expect("open SQLite"))
}

async fn publishing_before_migrate_says_to_migrate<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let mut tx = store.begin().await.expect("begin");
    let contact = Uuid::now_v7();
    let error = bus
        .publish_with(
            &mut tx,
            Publish::new(ContactCreated {
                contact_id: contact,
                account_id: None,
                created_by: Uuid::nil(),
            })
            .aggregate_id(contact),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PublishError::Store(StoreError::NotMigrated { table }) if table == "herald_events"),
        "{error:?}"
    );
    assert!(error.to_string().contains("store.migrate()"), "{error}");
}

async fn a_newer_schema_is_refused<B: RawSql>(store: Store<B>, record: &'static str) {
    store.migrate().await.expect("migrate");
    let mut tx = store.begin().await.expect("begin");
    B::execute_raw(&mut tx, record).await;
    store.commit(tx).await.expect("commit");
    let error = store.migrate().await.unwrap_err();
    // This code knows every migration in the runtime's folder, the newest last.
    let known = std::fs::read_dir("../runtime/migrations/sqlite")
        .expect("the runtime's migrations")
        .count() as i64;
    assert!(
        matches!(
            error,
            StoreError::NewerSchema {
                applied: 999,
                known: k,
            } if k == known
        ),
        "{error:?} (known {known})"
    );
    assert!(error.to_string().contains("newer Herald"), "{error}");
}

async fn foreign_tables_are_named<B: RawSql>(store: Store<B>, table: &'static str) {
    let mut tx = store.begin().await.expect("begin");
    B::execute_raw(&mut tx, table).await;
    store.commit(tx).await.expect("commit");
    let error = store.migrate().await.unwrap_err();
    let expected = if table.contains("herald_migrations") {
        "herald_migrations"
    } else {
        "herald_events"
    };
    assert!(
        matches!(&error, StoreError::ForeignTable { table } if table == expected),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("not created by Herald"),
        "{error}"
    );
}

/// Raw SQL in a store's transaction: the tests set up broken databases by hand.
trait RawSql: Backend {
    async fn execute_raw(tx: &mut Self::Transaction<'static>, sql: &'static str);
}

impl RawSql for herald::SqliteBackend {
    async fn execute_raw(tx: &mut Self::Transaction<'static>, sql: &'static str) {
        tx.execute(sql).await.expect("raw SQL");
    }
}

impl RawSql for herald::PostgresBackend {
    async fn execute_raw(tx: &mut Self::Transaction<'static>, sql: &'static str) {
        tx.execute(sql).await.expect("raw SQL");
    }
}

const NEWER: &str =
    "INSERT INTO herald_migrations (version, name, applied_at) VALUES (999, 'future', 0)";
const NEWER_PG: &str = "INSERT INTO herald_migrations (version, name) VALUES (999, 'future')";
const FOREIGN_MIGRATIONS: &str = "CREATE TABLE herald_migrations (migration_id TEXT)";
const FOREIGN_EVENTS: &str = "CREATE TABLE herald_events (what TEXT)";

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn publishing_before_migrate_says_to_migrate() {
        let (_dir, store) = fresh_sqlite().await;
        super::publishing_before_migrate_says_to_migrate(store).await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let (_dir, store) = fresh_sqlite().await;
        super::a_newer_schema_is_refused(store, NEWER).await;
    }

    #[tokio::test]
    async fn a_foreign_migrations_table_is_named() {
        let (_dir, store) = fresh_sqlite().await;
        foreign_tables_are_named(store, FOREIGN_MIGRATIONS).await;
    }

    #[tokio::test]
    async fn a_foreign_events_table_is_named() {
        let (_dir, store) = fresh_sqlite().await;
        foreign_tables_are_named(store, FOREIGN_EVENTS).await;
    }
}

mod postgres {
    use super::*;

    async fn fresh(test: &str) -> Option<(PostgresSchema, herald::PostgresStore)> {
        let schema = PostgresSchema::create(test).await?;
        let store = herald::postgres_with(schema.options(), 4)
            .await
            .expect("connect to PostgreSQL");
        Some((schema, store))
    }

    #[tokio::test]
    async fn publishing_before_migrate_says_to_migrate() {
        let Some((schema, store)) = fresh("publishing_before_migrate_says_to_migrate").await else {
            return;
        };
        super::publishing_before_migrate_says_to_migrate(store).await;
        schema.drop().await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let Some((schema, store)) = fresh("a_newer_schema_is_refused").await else {
            return;
        };
        super::a_newer_schema_is_refused(store, NEWER_PG).await;
        schema.drop().await;
    }

    #[tokio::test]
    async fn a_foreign_migrations_table_is_named() {
        let Some((schema, store)) = fresh("a_foreign_migrations_table_is_named").await else {
            return;
        };
        foreign_tables_are_named(store, FOREIGN_MIGRATIONS).await;
        schema.drop().await;
    }

    #[tokio::test]
    async fn a_foreign_events_table_is_named() {
        let Some((schema, store)) = fresh("a_foreign_events_table_is_named").await else {
            return;
        };
        foreign_tables_are_named(store, FOREIGN_EVENTS).await;
        schema.drop().await;
    }
}

//! A read model of contacts, folded from the outbox in order in the same transaction as its
//! checkpoint: rebuilt from scratch it equals the live one, and on PostgreSQL it never skips an
//! event whose transaction commits after a later position became visible.

use crm::contact::ContactCommand;
use crm::generated::TypedEventBus;
use crm::generated::events::ContactCreated;
use herald::futures_util::future::BoxFuture;
use herald::sqlx::{self, Row};
use herald::uuid::Uuid;
use herald::{
    Backend, HandlerError, PostgresBackend, ProjectedEvent, Projection, Projector, SqliteBackend,
    Store,
};
use integration_tests::support::{PostgresSchema, sqlite};

/// `contact_directory`: one row per contact with its name, whether it is archived, and how many
/// of its events were folded.
struct Directory;

const SQLITE_TABLE: &str = "CREATE TABLE contact_directory (contact_id TEXT PRIMARY KEY, \
     name TEXT, archived INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0)";
const POSTGRES_TABLE: &str = "CREATE TABLE contact_directory (contact_id TEXT PRIMARY KEY, \
     name TEXT, archived INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0)";

/// What an event changes in the directory, if it concerns it.
enum Fold {
    Created,
    Renamed(Option<String>),
    Archived,
}

fn fold(event: &ProjectedEvent) -> Option<Fold> {
    match event.event_type.as_str() {
        "contact_created" => Some(Fold::Created),
        "contact_updated" => Some(Fold::Renamed(
            event.payload["name"].as_str().map(str::to_owned),
        )),
        "contact_archived" => Some(Fold::Archived),
        _ => None,
    }
}

impl Projection<SqliteBackend> for Directory {
    fn name(&self) -> &str {
        "contact_directory"
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Sqlite>,
        event: &'a ProjectedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let (Some(fold), Some(id)) = (fold(event), event.aggregate_id.as_deref()) else {
                return Ok(());
            };
            let statement = match fold {
                Fold::Created => {
                    sqlx::query("INSERT INTO contact_directory (contact_id, events) VALUES (?1, 1)")
                        .bind(id)
                }
                Fold::Renamed(name) => sqlx::query(
                    "UPDATE contact_directory SET name = coalesce(?2, name), \
                     events = events + 1 WHERE contact_id = ?1",
                )
                .bind(id)
                .bind(name),
                Fold::Archived => sqlx::query(
                    "UPDATE contact_directory SET archived = 1, events = events + 1 \
                     WHERE contact_id = ?1",
                )
                .bind(id),
            };
            statement.execute(&mut **tx).await?;
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Sqlite>,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM contact_directory")
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

impl Projection<PostgresBackend> for Directory {
    fn name(&self) -> &str {
        "contact_directory"
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Postgres>,
        event: &'a ProjectedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let (Some(fold), Some(id)) = (fold(event), event.aggregate_id.as_deref()) else {
                return Ok(());
            };
            let statement = match fold {
                Fold::Created => {
                    sqlx::query("INSERT INTO contact_directory (contact_id, events) VALUES ($1, 1)")
                        .bind(id)
                }
                Fold::Renamed(name) => sqlx::query(
                    "UPDATE contact_directory SET name = coalesce($2, name), \
                     events = events + 1 WHERE contact_id = $1",
                )
                .bind(id)
                .bind(name),
                Fold::Archived => sqlx::query(
                    "UPDATE contact_directory SET archived = 1, events = events + 1 \
                     WHERE contact_id = $1",
                )
                .bind(id),
            };
            statement.execute(&mut **tx).await?;
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM contact_directory")
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

type DirectoryRow = (String, Option<String>, i64, i64);

async fn drive_commands<B: Backend>(store: &Store<B>, projector: &Projector<Directory, B>)
where
    Directory: Projection<B>,
{
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<crm::contact::Contact>();
    for n in 0..3u128 {
        let id = Uuid::from_u128(100 + n);
        contacts
            .execute(
                id,
                ContactCommand::Create {
                    contact_id: id,
                    account_id: None,
                    created_by: Uuid::nil(),
                },
            )
            .await
            .unwrap();
        projector.catch_up().await.unwrap();
        for name in ["Ada", "Grace"] {
            contacts
                .execute(
                    id,
                    ContactCommand::Update {
                        email: None,
                        name: Some(format!("{name} {n}")),
                        tags: Vec::new(),
                        updated_by: Uuid::nil(),
                    },
                )
                .await
                .unwrap();
        }
        if n == 1 {
            contacts
                .execute(
                    id,
                    ContactCommand::Archive {
                        at: "2026-11-22T12:00:00Z".parse().unwrap(),
                        reason: None,
                    },
                )
                .await
                .unwrap();
        }
    }
    projector.catch_up().await.unwrap();
}

fn expected() -> Vec<DirectoryRow> {
    (0..3u128)
        .map(|n| {
            (
                Uuid::from_u128(100 + n).to_string(),
                Some(format!("Grace {n}")),
                i64::from(n == 1),
                if n == 1 { 4 } else { 3 },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rebuilt_read_model_equals_the_live_one() {
    let (_dir, store) = sqlite().await;
    let pool = store.backend().pool().clone();
    sqlx::raw_sql(SQLITE_TABLE).execute(&pool).await.unwrap();
    let projector = Projector::new(store.clone(), Directory).batch_size(4);
    drive_commands(&store, &projector).await;
    let read = || async {
        sqlx::query(
            "SELECT contact_id, name, archived, events FROM contact_directory ORDER BY contact_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                row.get::<Option<String>, _>(1),
                row.get::<i64, _>(2),
                row.get::<i64, _>(3),
            )
        })
        .collect::<Vec<DirectoryRow>>()
    };
    let live = read().await;
    assert_eq!(live, expected());
    assert_eq!(projector.rebuild().await.unwrap(), 10);
    assert_eq!(read().await, live);
    assert_eq!(projector.catch_up().await.unwrap(), 0, "nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rebuilt_read_model_equals_the_live_one_and_skips_nothing() {
    let Some(schema) =
        PostgresSchema::create("postgres_rebuilt_read_model_equals_the_live_one_and_skips_nothing")
            .await
    else {
        return;
    };
    let store = schema.store(10).await;
    let pool = store.backend().pool().clone();
    sqlx::raw_sql(POSTGRES_TABLE).execute(&pool).await.unwrap();
    let projector = Projector::new(store.clone(), Directory).batch_size(4);
    drive_commands(&store, &projector).await;
    let read = || async {
        sqlx::query(
            "SELECT contact_id, name, archived::bigint, events::bigint FROM contact_directory \
             ORDER BY contact_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                row.get::<Option<String>, _>(1),
                row.get::<i64, _>(2),
                row.get::<i64, _>(3),
            )
        })
        .collect::<Vec<DirectoryRow>>()
    };
    let live = read().await;
    assert_eq!(live, expected());
    assert_eq!(projector.rebuild().await.unwrap(), 10);
    assert_eq!(read().await, live);

    // Transaction A takes a position and stays open; B takes a later one and commits.
    let bus = TypedEventBus::new(store.clone());
    let (early, late) = (Uuid::from_u128(200), Uuid::from_u128(201));
    let created = |id| ContactCreated {
        contact_id: id,
        account_id: None,
        created_by: Uuid::nil(),
    };
    let mut a = store.begin().await.unwrap();
    bus.publish(&mut a, early, created(early)).await.unwrap();
    let mut b = store.begin().await.unwrap();
    bus.publish(&mut b, late, created(late)).await.unwrap();
    b.commit().await.unwrap();
    // B's event is visible, but reading it now would skip A's smaller position for ever.
    assert_eq!(projector.catch_up().await.unwrap(), 0);
    a.commit().await.unwrap();
    assert_eq!(projector.catch_up().await.unwrap(), 2);
    let ids: Vec<String> = read().await.into_iter().map(|row| row.0).collect();
    assert!(ids.contains(&early.to_string()) && ids.contains(&late.to_string()));
    schema.drop().await;
}

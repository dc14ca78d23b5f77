//! The one migration runner: each database brings its scripts and its table definition, the
//! bookkeeping (which versions ran, in order, recorded in `herald_migrations`) is shared.

use chrono::{DateTime, Utc};

use super::{Columns, Dialect, Statement};
use crate::store::StoreError;

/// One embedded migration script.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) script: &'static str,
}

/// The table a `CREATE TABLE` found already there: SQLite says `table herald_events already
/// exists`, PostgreSQL `relation "herald_events" already exists` (42P07).
fn existing_table(error: &sqlx::Error) -> Option<String> {
    let database = error.as_database_error()?;
    let message = database.message();
    let table = match message.strip_prefix("table ") {
        Some(rest) => rest.strip_suffix(" already exists")?,
        None if database.code().as_deref() == Some("42P07") => message.split('"').nth(1)?,
        None => return None,
    };
    Some(table.to_owned())
}

/// Applies, in order, the migrations this database has not recorded yet. The caller runs it
/// in a transaction that serializes concurrent migrators (a write lock or an advisory lock).
pub(crate) async fn apply<D: Dialect>(
    connection: &mut D::Connection,
    create_table: &'static str,
    migrations: &[Migration],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    D::execute(connection, Statement::new(create_table)).await?;
    // `IF NOT EXISTS` kept a table of that name that may not be ours: its columns tell.
    let applied: Vec<i64> = D::fetch_all(
        connection,
        Statement::new("SELECT version, name, applied_at FROM herald_migrations"),
    )
    .await
    .map_err(|_| StoreError::ForeignTable {
        table: "herald_migrations".to_owned(),
    })?
    .iter()
    .map(|row| row.int("version"))
    .collect::<Result<_, _>>()?;
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(&newest) = applied.iter().max()
        && newest > known
    {
        return Err(StoreError::NewerSchema {
            applied: newest,
            known,
        });
    }
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        D::execute_script(connection, migration.script)
            .await
            .map_err(|source| match existing_table(&source) {
                Some(table) => StoreError::ForeignTable { table },
                None => StoreError::Migration {
                    version: migration.version,
                    name: migration.name,
                    source,
                },
            })?;
        D::execute(
            connection,
            Statement::new(
                "INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .int(migration.version)
            .text(migration.name)
            .time(now),
        )
        .await?;
    }
    Ok(())
}

/// The scripts under `runtime/migrations/<database>/`, in order: one list for both databases.
macro_rules! embedded_migrations {
    ($database:literal) => {
        &[
            $crate::store::sql::migrate::Migration {
                version: 1,
                name: "outbox",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0001_outbox.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 2,
                name: "jobs",
                script: include_str!(concat!("../../../migrations/", $database, "/0002_jobs.sql")),
            },
            $crate::store::sql::migrate::Migration {
                version: 3,
                name: "snapshots",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0003_snapshots.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 4,
                name: "projections",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0004_projections.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 5,
                name: "run tenants and child keys",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0005_run_tenants_and_child_keys.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 6,
                name: "trace context",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0006_trace_context.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 7,
                name: "delivery claims",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0007_delivery_claims.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 8,
                name: "job claim order",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0008_job_claim_order.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 9,
                name: "one index of running runs",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0009_one_index_of_running_runs.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 10,
                name: "one stream index",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0010_one_stream_index.sql"
                )),
            },
            $crate::store::sql::migrate::Migration {
                version: 11,
                name: "notify lanes",
                script: include_str!(concat!(
                    "../../../migrations/",
                    $database,
                    "/0011_notify_lanes.sql"
                )),
            },
        ]
    };
}
pub(crate) use embedded_migrations;

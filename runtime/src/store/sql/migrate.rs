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

/// Applies, in order, the migrations this database has not recorded yet. The caller runs it
/// in a transaction that serializes concurrent migrators (a write lock or an advisory lock).
pub(crate) async fn apply<D: Dialect>(
    connection: &mut D::Connection,
    create_table: &'static str,
    migrations: &[Migration],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    D::execute(connection, Statement::new(create_table)).await?;
    let applied: Vec<i64> = D::fetch_all(
        connection,
        Statement::new("SELECT version FROM herald_migrations"),
    )
    .await?
    .iter()
    .map(|row| row.int("version"))
    .collect::<Result<_, _>>()?;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        D::execute_script(connection, migration.script)
            .await
            .map_err(|source| StoreError::Migration {
                version: migration.version,
                name: migration.name,
                source,
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
        ]
    };
}
pub(crate) use embedded_migrations;

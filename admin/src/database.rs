//! Which database a URL names, opened as the store of its backend.

use std::path::Path;

use herald::{PostgresStore, SqliteStore, StoreError};

/// A store on one of the databases Herald runs on.
pub(crate) enum Database {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Why the database could not be used, said for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatabaseError {
    #[error(
        "`{url}` is not a database URL Herald knows: use sqlite://path/app.db or \
         postgres://user@host/db"
    )]
    UnknownScheme { url: String },
    #[error("no SQLite database at `{path}`: check the path (run `herald migrate` to create one)")]
    NoSuchFile { path: String },
    #[error(
        "`{url}` holds no Herald tables (`{table}` is missing): run `herald migrate`, or start \
         the application once, which migrates"
    )]
    NotMigrated { url: String, table: String },
    #[error("cannot open `{url}`: {source}")]
    Open { url: String, source: StoreError },
    #[error("{0}")]
    Store(StoreError),
}

impl Database {
    /// Opens the database `url` names. A SQLite file must exist unless `creating`: a typo in
    /// the path must not leave an empty database behind that then reports an empty outbox.
    pub(crate) async fn open(url: &str, creating: bool) -> Result<Self, DatabaseError> {
        let open_error = |source| DatabaseError::Open {
            url: url.to_owned(),
            source,
        };
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if !creating && path != ":memory:" && !Path::new(path).exists() {
                return Err(DatabaseError::NoSuchFile {
                    path: path.to_owned(),
                });
            }
            return Ok(Database::Sqlite(
                herald::sqlite(url).await.map_err(open_error)?,
            ));
        }
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Database::Postgres(
                herald::postgres(url).await.map_err(open_error)?,
            ));
        }
        Err(DatabaseError::UnknownScheme {
            url: url.to_owned(),
        })
    }
}

/// Says what a store error means for someone running the CLI (the library's own message
/// speaks to application code).
pub(crate) fn explain(error: StoreError, url: &str) -> DatabaseError {
    match error {
        StoreError::NotMigrated { table } => DatabaseError::NotMigrated {
            url: url.to_owned(),
            table,
        },
        other => DatabaseError::Store(other),
    }
}

/// Runs `$body` with `$store` bound to the store of whichever database `$database` is: the
/// commands are generic over the backend, so each database gets its own instance of them.
macro_rules! with_store {
    ($database:expr, $store:ident => $body:expr) => {
        match $database {
            $crate::database::Database::Sqlite($store) => $body,
            $crate::database::Database::Postgres($store) => $body,
        }
    };
}
pub(crate) use with_store;

//! How SQLite runs the shared statements: times as Unix microseconds, ids as 16-byte blobs,
//! JSON as text.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use crate::store::StoreError;
use crate::store::sql::{Arg, Columns, Dialect, Statement};

pub struct SqliteDialect;

fn bind<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    args: Vec<Arg<'q>>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(value) | Arg::Json(value) => query.bind(value),
            Arg::Int(value) => query.bind(value),
            Arg::Uuid(value) => query.bind(value),
            Arg::Time(value) => query.bind(value.map(|at| at.timestamp_micros())),
        };
    }
    query
}

impl Dialect for SqliteDialect {
    type Connection = SqliteConnection;
    type Row = SqliteRow;

    fn fetch_all<'c>(
        connection: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
        Box::pin(async move {
            bind(sqlx::query(statement.sql), statement.args)
                .fetch_all(&mut *connection)
                .await
        })
    }

    fn execute<'c>(
        connection: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            Ok(bind(sqlx::query(statement.sql), statement.args)
                .execute(&mut *connection)
                .await?
                .rows_affected())
        })
    }

    fn execute_script<'c>(
        connection: &'c mut SqliteConnection,
        script: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::raw_sql(script).execute(&mut *connection).await?;
            Ok(())
        })
    }
}

impl Columns for SqliteRow {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get::<Option<i64>, _>(column)?
            .map(|micros| {
                DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    StoreError::Database(sqlx::Error::ColumnDecode {
                        index: column.to_owned(),
                        source: format!("timestamp {micros} out of range").into(),
                    })
                })
            })
            .transpose()
    }

    fn opt_json(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.opt_text(column)
    }
}

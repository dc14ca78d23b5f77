//! How SQLite runs the shared statements: times as Unix microseconds, ids as 16-byte blobs,
//! JSON as text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use crate::store::StoreError;
use crate::store::sql::{Arg, Columns, Dialect, Statement, undecodable};

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
            Arg::Bool(value) => query.bind(value),
            Arg::Date(value) => query.bind(value.map(|date| date.format("%Y-%m-%d").to_string())),
            Arg::Decimal(value) => query.bind(value),
            Arg::Instant(value) => {
                query.bind(value.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
            }
        };
    }
    query
}

impl Dialect for SqliteDialect {
    type Connection = SqliteConnection;
    type Row = SqliteRow;

    const DECIMAL_PARAMETER: &'static str = "";
    const DECIMAL_COLUMN: &'static str = "";
    const LOCK_ROWS: &'static str = "";
    // ASCII letters only: SQLite's LIKE folds no other case.
    const LIKE: &'static str = "LIKE";

    fn fetch_all<'c>(
        connection: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
        Box::pin(async move {
            bind(
                sqlx::query(sqlx::AssertSqlSafe(statement.sql)),
                statement.args,
            )
            .fetch_all(&mut *connection)
            .await
        })
    }

    fn execute<'c>(
        connection: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            Ok(bind(
                sqlx::query(sqlx::AssertSqlSafe(statement.sql)),
                statement.args,
            )
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

    fn opt_bool(&self, column: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError> {
        self.opt_text(column)?
            .map(|text| {
                NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|_| undecodable(column, format!("`{text}` is not a YYYY-MM-DD date")))
            })
            .transpose()
    }

    fn opt_decimal(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.opt_text(column)
    }

    fn opt_instant(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_text(column)?
            .map(|text| {
                parse_instant(&text)
                    .ok_or_else(|| undecodable(column, format!("`{text}` is not a date and time")))
            })
            .transpose()
    }
}

/// Herald writes RFC 3339; a row written by other SQL may hold SQLite's own
/// `YYYY-MM-DD HH:MM:SS[.fff]`, read as UTC as SQLite's date functions do.
fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .map(|at| at.and_utc())
}

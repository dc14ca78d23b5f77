//! How PostgreSQL runs the shared statements: native `uuid`, `timestamptz` and `jsonb`, with
//! each JSON value bound and read as raw JSON text (no parse into a tree and back).

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::types::JsonRawValue;
use sqlx::{Column, Postgres, Row, TypeInfo};
use uuid::Uuid;

use crate::store::StoreError;
use crate::store::sql::{Arg, Columns, Dialect, Statement};

pub struct PostgresDialect;

fn bind<'q>(
    mut query: sqlx::query::Query<'q, Postgres, PgArguments>,
    args: Vec<Arg<'q>>,
) -> Result<sqlx::query::Query<'q, Postgres, PgArguments>, sqlx::Error> {
    for arg in args {
        query = match arg {
            Arg::Text(value) => query.bind(value),
            Arg::Int(value) => query.bind(value),
            Arg::Uuid(value) => query.bind(value),
            Arg::Time(value) | Arg::Instant(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Date(value) => query.bind(value),
            Arg::Decimal(value) => query.bind(value),
            Arg::Json(value) => query.bind(
                value
                    .map(|json| JsonRawValue::from_string(json.to_owned()))
                    .transpose()
                    .map_err(|error| sqlx::Error::Encode(Box::new(error)))?,
            ),
        };
    }
    Ok(query)
}

impl Dialect for PostgresDialect {
    type Connection = PgConnection;
    type Row = PgRow;

    const DECIMAL_PARAMETER: &'static str = "::numeric";
    const DECIMAL_COLUMN: &'static str = "::text";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const LIKE: &'static str = "ILIKE";

    fn fetch_all<'c>(
        connection: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
        Box::pin(async move {
            bind(
                sqlx::query(sqlx::AssertSqlSafe(statement.sql)),
                statement.args,
            )?
            .fetch_all(&mut *connection)
            .await
        })
    }

    fn execute<'c>(
        connection: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            Ok(bind(
                sqlx::query(sqlx::AssertSqlSafe(statement.sql)),
                statement.args,
            )?
            .execute(&mut *connection)
            .await?
            .rows_affected())
        })
    }

    fn execute_script<'c>(
        connection: &'c mut PgConnection,
        script: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::raw_sql(script).execute(&mut *connection).await?;
            Ok(())
        })
    }
}

impl Columns for PgRow {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        // Counts and positions are `bigint`; attempts and versions `integer`.
        let is_int4 = self
            .try_column(column)
            .is_ok_and(|column| column.type_info().name() == "INT4");
        Ok(if is_int4 {
            self.try_get::<Option<i32>, _>(column)?.map(i64::from)
        } else {
            self.try_get(column)?
        })
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_json(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .try_get::<Option<Box<JsonRawValue>>, _>(column)?
            .map(|raw| raw.get().to_owned()))
    }

    fn opt_bool(&self, column: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_decimal(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.opt_text(column)
    }

    fn opt_instant(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_time(column)
    }
}

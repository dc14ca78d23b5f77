//! How PostgreSQL runs the shared statements: native `uuid`, `timestamptz` and `jsonb`, with
//! each JSON value bound and read as raw JSON text (no parse into a tree and back).

use chrono::{DateTime, Utc};
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
            Arg::Time(value) => query.bind(value),
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

    fn fetch_all<'c>(
        connection: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
        Box::pin(async move {
            bind(sqlx::query(statement.sql), statement.args)?
                .fetch_all(&mut *connection)
                .await
        })
    }

    fn execute<'c>(
        connection: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            Ok(bind(sqlx::query(statement.sql), statement.args)?
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
}

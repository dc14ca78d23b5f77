//! The statements both SQL databases share, written once: `$n` placeholders (sqlx maps them on
//! SQLite too), values bound as [`Arg`]s that each [`Dialect`] encodes its own way (a time is a
//! `timestamptz` on PostgreSQL and Unix microseconds on SQLite, a JSON document `jsonb` or
//! text), rows read through [`Columns`] into the runtime's types by one decoder per row type.
//! What differs between the databases for a reason (claims: `SKIP LOCKED` against one writer's
//! lock; bulk inserts: `UNNEST` against multi-row `VALUES`) stays in each backend's folder.
//!
//! This layer is sealed yet `pub` on purpose: the blanket `impl Backend for S: SqlJobStore`
//! names `SqlBackend`'s associated types in a public interface (E0446 if it were
//! `pub(crate)`), and [`Dialect`], [`Columns`], [`Statement`], `Migration` and the two dialect
//! structs are reachable from there. `unreachable_pub` sees that and needs no `allow`; what
//! that impl does not reach (such as [`Arg`]) is `pub(crate)`.

pub(crate) mod backend;
pub(crate) mod jobs;
pub(crate) mod migrate;
pub(crate) mod ops;
pub(crate) mod outbox;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::StoreError;

/// A value bound to a shared statement. `None` binds SQL `NULL` of the variant's type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Uuid(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    /// A JSON document, as text.
    Json(Option<&'a str>),
    Bool(Option<bool>),
    /// A calendar date: `date` on PostgreSQL, `YYYY-MM-DD` text on SQLite.
    Date(Option<NaiveDate>),
    /// An exact decimal as its text; the statement casts the placeholder where the database
    /// has a numeric type ([`Dialect::DECIMAL_PARAMETER`]).
    Decimal(Option<&'a str>),
    /// An entity's `datetime` column: `timestamptz` on PostgreSQL, RFC 3339 text on SQLite
    /// (readable, and ordered as text in the order of time), unlike the outbox's own times.
    Instant(Option<DateTime<Utc>>),
}

/// A statement and its arguments, in placeholder order.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    pub(crate) fn new(sql: &'static str) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            args: Vec::new(),
        }
    }

    /// A statement built at run time (an entity's, from its metadata): only from identifiers
    /// that are quoted, never from values, which are bound.
    pub(crate) fn built(sql: String, args: Vec<Arg<'a>>) -> Self {
        Self {
            sql: Cow::Owned(sql),
            args,
        }
    }

    pub(crate) fn text(mut self, value: impl Into<Option<&'a str>>) -> Self {
        self.args.push(Arg::Text(value.into()));
        self
    }

    pub(crate) fn int(mut self, value: impl Into<Option<i64>>) -> Self {
        self.args.push(Arg::Int(value.into()));
        self
    }

    pub(crate) fn uuid(mut self, value: impl Into<Option<Uuid>>) -> Self {
        self.args.push(Arg::Uuid(value.into()));
        self
    }

    pub(crate) fn time(mut self, value: impl Into<Option<DateTime<Utc>>>) -> Self {
        self.args.push(Arg::Time(value.into()));
        self
    }

    pub(crate) fn json(mut self, value: impl Into<Option<&'a str>>) -> Self {
        self.args.push(Arg::Json(value.into()));
        self
    }
}

/// The columns of a result row, read as the runtime's own types whatever the database stores.
/// A backend reads the nullable forms; the required ones refuse `NULL`.
pub trait Columns {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A JSON column as its text.
    fn opt_json(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_bool(&self, column: &str) -> Result<Option<bool>, StoreError>;
    fn opt_date(&self, column: &str) -> Result<Option<NaiveDate>, StoreError>;
    /// A decimal column as its exact text (selected with [`Dialect::DECIMAL_COLUMN`]).
    fn opt_decimal(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// An entity's `datetime` column (see [`Arg::Instant`]).
    fn opt_instant(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?.ok_or_else(|| null_in(column))
    }

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?.ok_or_else(|| null_in(column))
    }

    fn uuid(&self, column: &str) -> Result<Uuid, StoreError> {
        self.opt_uuid(column)?.ok_or_else(|| null_in(column))
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(column)?.ok_or_else(|| null_in(column))
    }

    fn json(&self, column: &str) -> Result<String, StoreError> {
        self.opt_json(column)?.ok_or_else(|| null_in(column))
    }
    /// The `traceparent` and `tracestate` columns of an event or a run.
    fn trace(&self) -> Result<Option<crate::trace::TraceContext>, StoreError> {
        Ok(crate::trace::TraceContext::from_columns(
            self.opt_text("traceparent")?,
            self.opt_text("tracestate")?,
        ))
    }
}

fn null_in(column: &str) -> StoreError {
    undecodable(column, "unexpected NULL")
}

/// A column whose stored value is not of the column's type.
pub(crate) fn undecodable(column: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: reason.into().into(),
    })
}

/// What one SQL database does with a shared statement.
pub trait Dialect: Send + Sync + 'static {
    /// The connection statements run on (a transaction derefs to one).
    type Connection: Send;
    type Row: Columns + Send + Sync;

    /// What follows a decimal's placeholder, so that its text binds to a numeric column.
    const DECIMAL_PARAMETER: &'static str;
    /// What follows a decimal column in a select list, so that it reads as exact text.
    const DECIMAL_COLUMN: &'static str;
    /// What ends a `SELECT` that locks its rows until the transaction ends (SQLite's write
    /// transaction already excludes every other writer).
    const LOCK_ROWS: &'static str;
    /// The case-insensitive `LIKE`.
    const LIKE: &'static str;

    fn fetch_all<'c>(
        connection: &'c mut Self::Connection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    fn execute<'c>(
        connection: &'c mut Self::Connection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;

    /// Runs a script of several statements (a migration).
    fn execute_script<'c>(
        connection: &'c mut Self::Connection,
        script: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

/// The first row, if any.
pub(crate) async fn fetch_optional<'c, D: Dialect>(
    connection: &'c mut D::Connection,
    statement: Statement<'c>,
) -> Result<Option<D::Row>, StoreError> {
    Ok(D::fetch_all(connection, statement)
        .await?
        .into_iter()
        .next())
}

/// Runs a `DELETE … LIMIT`-sliced statement until it deletes nothing, so that pruning a large
/// backlog never holds a lock for long; returns how many rows went.
pub(crate) async fn delete_in_slices<'a, D: Dialect>(
    connection: &mut D::Connection,
    statement: impl Fn() -> Statement<'a>,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        match D::execute(connection, statement()).await? {
            0 => return Ok(deleted),
            slice => deleted += slice,
        }
    }
}

/// Saturating conversion for counts and attempts stored as integers.
pub(crate) fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

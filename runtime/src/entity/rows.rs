//! The rows of an entity's table, read and written from its [`EntityMeta`]: what generated
//! repositories call, written once for every entity and both SQL databases.
//!
//! A row crosses as the entity's serde form: the struct serializes to one JSON value per
//! field, each bound as its column's SQL type, and a fetched row becomes that JSON again and
//! deserializes into the struct. Generated entities already derive serde with exactly the YAML
//! keys and types, so no second mapping per entity has to be generated and kept in step; the
//! cost (one small JSON value per column) is nothing beside a database round trip.

use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqlx::Database;
use uuid::Uuid;

use super::{Entity, EntityMeta, FieldMeta};
use crate::outbox::PublishError;
use crate::store::sql::backend::{SqlBackend, Tx};
use crate::store::sql::{Arg, Columns, Dialect, Statement};
use crate::store::{Backend, Store, StoreError, missing_table};

/// A backend whose database holds entity tables: SQLite and PostgreSQL.
#[diagnostic::on_unimplemented(
    message = "entity repositories need a SQL backend, not `{Self}`",
    note = "use `herald::sqlite(..)` or `herald::postgres(..)`: the in-memory store has no tables"
)]
pub trait RepositoryBackend: Backend {
    /// The sqlx database.
    type Database: Database<Connection = Self::Connection>;
    /// What reads run on: a transaction (`&mut tx`) or a connection of the pool
    /// ([`Store::acquire`]).
    type Connection: sqlx::Connection<Database = Self::Database>;
    #[doc(hidden)]
    type RowDialect: Dialect<Connection = Self::Connection>;

    /// The connection under a transaction, for reads inside it in code generic over the
    /// backend (where the backend is named, `&mut tx` is enough).
    fn connection<'t>(tx: &'t mut Self::Transaction<'_>) -> &'t mut Self::Connection;
    #[doc(hidden)]
    fn row_pool(&self) -> &sqlx::Pool<Self::Database>;
}

// One impl per database rather than a blanket one over the SQL seam: a backend that is not
// SQL (the in-memory store) then fails on `RepositoryBackend` itself, whose message says why.
macro_rules! repository_backend {
    ($backend:ty) => {
        impl RepositoryBackend for $backend {
            type Database = <$backend as SqlBackend>::Db;
            type Connection = <Self::Database as Database>::Connection;
            type RowDialect = <$backend as SqlBackend>::Dialect;

            fn connection<'t>(tx: &'t mut Tx<'_, Self::Database>) -> &'t mut Self::Connection {
                &mut *tx
            }

            fn row_pool(&self) -> &sqlx::Pool<Self::Database> {
                SqlBackend::pool(self)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
repository_backend!(crate::store::SqliteBackend);
#[cfg(feature = "postgres")]
repository_backend!(crate::store::PostgresBackend);

impl<B: RepositoryBackend> Store<B> {
    /// A connection of the application's pool, for reads outside a transaction
    /// (`repository.get(&mut conn, id)`).
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<B::Database>, StoreError> {
        Ok(self.backend().row_pool().acquire().await?)
    }
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// No row has that id (or it is soft-deleted and deleted rows were not asked for).
    #[error("no {entity} with id {id}")]
    NotFound {
        /// The entity.
        entity: &'static str,
        /// The id asked for.
        id: Uuid,
    },
    /// The entity's table is not in the database.
    #[error(
        "the table `{table}` of entity `{entity}` does not exist: apply the entity migrations \
         the generator wrote (e.g. `sqlx migrate run --source migrations/sqlite`) before \
         using its repository"
    )]
    TableMissing {
        /// The entity.
        entity: &'static str,
        /// Its table.
        table: String,
    },
    /// A value does not fit its column: a stored row the entity cannot hold, or a filter on
    /// a column the entity does not have.
    #[error("`{entity}.{column}`: {reason}")]
    Column {
        /// The entity.
        entity: &'static str,
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database refused the statement: a constraint (see
    /// [`RepositoryError::is_unique_violation`]), a lost connection.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The event the write publishes was refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The store failed otherwise.
    #[error(transparent)]
    Store(StoreError),
}

impl RepositoryError {
    /// A unique index refused the row (e.g. a `unique: true` query's column).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, RepositoryError::Database(error)
            if error.as_database_error().is_some_and(|e| e.is_unique_violation()))
    }

    /// No `E` has `id`.
    pub fn not_found<E: Entity>(id: Uuid) -> Self {
        RepositoryError::NotFound {
            entity: E::META.name,
            id,
        }
    }

    /// [`RepositoryError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RepositoryError::NotFound { .. })
    }

    fn database(meta: &EntityMeta, error: sqlx::Error) -> Self {
        match missing_table(&error) {
            Some(table) if table == meta.table => RepositoryError::TableMissing {
                entity: meta.name,
                table,
            },
            _ => RepositoryError::Database(error),
        }
    }

    fn store(meta: &EntityMeta, error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => Self::database(meta, error),
            other => RepositoryError::Store(other),
        }
    }

    fn column(meta: &EntityMeta, column: &str, reason: impl Into<String>) -> Self {
        RepositoryError::Column {
            entity: meta.name,
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Which rows of a list: `limit` rows after skipping `offset`, in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The most rows returned.
    pub limit: u32,
    /// The rows skipped.
    pub offset: u64,
}

impl Page {
    /// The first `limit` rows.
    pub const fn first(limit: u32) -> Self {
        Self { limit, offset: 0 }
    }

    /// The page after this one.
    pub const fn next(self) -> Self {
        Self {
            limit: self.limit,
            offset: self.offset + self.limit as u64,
        }
    }
}

impl Default for Page {
    /// The first 50 rows.
    fn default() -> Self {
        Self::first(50)
    }
}

/// Which rows to read, in which order: built by generated finders.
#[derive(Debug, Default)]
pub struct Select {
    equal: Vec<(&'static str, Result<Value, String>)>,
    live_only: bool,
    search: Option<(&'static str, String)>,
    order: Vec<(&'static str, bool)>,
    page: Option<Page>,
    lock: bool,
}

impl Select {
    /// Every row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows whose `column` equals `value`.
    pub fn eq(mut self, column: &'static str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).map_err(|error| error.to_string());
        self.equal.push((column, value));
        self
    }

    /// Only rows that are not soft-deleted (`deleted_at` is null).
    pub fn live(mut self) -> Self {
        self.live_only = true;
        self
    }

    /// Rows whose `column` contains `text`, ignoring case.
    pub fn search(mut self, column: &'static str, text: &str) -> Self {
        self.search = Some((column, text.to_owned()));
        self
    }

    /// Sorted by these columns (`true`: descending), then by id.
    pub fn order_by(mut self, columns: &[(&'static str, bool)]) -> Self {
        self.order.extend_from_slice(columns);
        self
    }

    /// Only this page of the rows.
    pub fn page(mut self, page: Page) -> Self {
        self.page = Some(page);
        self
    }

    /// Locks the rows until the transaction ends, for a read-modify-write.
    pub fn lock(mut self) -> Self {
        self.lock = true;
        self
    }
}

/// The table of the entity `E`.
#[derive(Debug)]
pub struct Rows<E>(PhantomData<fn() -> E>);

impl<E: Entity + Serialize + DeserializeOwned> Rows<E> {
    const META: &'static EntityMeta = &E::META;

    /// Inserts `row`.
    pub async fn insert<B: RepositoryBackend>(
        tx: &mut B::Transaction<'_>,
        row: &E,
    ) -> Result<(), RepositoryError> {
        let meta = Self::META;
        let cells = encode_row(meta, row)?;
        let columns: Vec<String> = meta.fields.iter().map(|f| quoted(f.name)).collect();
        let params: Vec<String> = meta
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| placeholder::<B::RowDialect>(i + 1, field))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quoted(meta.table),
            columns.join(", "),
            params.join(", ")
        );
        let args = cells.iter().map(Cell::arg).collect();
        B::RowDialect::execute(B::connection(tx), Statement::built(sql, args))
            .await
            .map_err(|error| RepositoryError::database(meta, error))?;
        Ok(())
    }

    /// Writes every column of `row` but its id over the row with its id.
    pub async fn update<B: RepositoryBackend>(
        tx: &mut B::Transaction<'_>,
        row: &E,
    ) -> Result<(), RepositoryError> {
        let meta = Self::META;
        let mut cells = encode_row(meta, row)?;
        let id = id_position(meta)?;
        let id_cell = cells.remove(id);
        let fields: Vec<&FieldMeta> = meta.fields.iter().filter(|f| f.name != "id").collect();
        let assignments: Vec<String> = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                format!(
                    "{} = {}",
                    quoted(field.name),
                    placeholder::<B::RowDialect>(i + 2, field)
                )
            })
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE \"id\" = $1",
            quoted(meta.table),
            assignments.join(", ")
        );
        let args = std::iter::once(&id_cell)
            .chain(&cells)
            .map(Cell::arg)
            .collect();
        let updated = B::RowDialect::execute(B::connection(tx), Statement::built(sql, args))
            .await
            .map_err(|error| RepositoryError::database(meta, error))?;
        match (updated, id_cell) {
            (0, Cell::Uuid(Some(id))) => Err(RepositoryError::not_found::<E>(id)),
            _ => Ok(()),
        }
    }

    /// Deletes the row with `id` for good; whether there was one.
    pub async fn delete<B: RepositoryBackend>(
        tx: &mut B::Transaction<'_>,
        id: Uuid,
    ) -> Result<bool, RepositoryError> {
        let meta = Self::META;
        let sql = format!("DELETE FROM {} WHERE \"id\" = $1", quoted(meta.table));
        let deleted = B::RowDialect::execute(
            B::connection(tx),
            Statement::built(sql, vec![Arg::Uuid(Some(id))]),
        )
        .await
        .map_err(|error| RepositoryError::database(meta, error))?;
        Ok(deleted > 0)
    }

    /// The rows `select` asks for.
    pub async fn fetch<B: RepositoryBackend>(
        connection: &mut B::Connection,
        select: Select,
    ) -> Result<Vec<E>, RepositoryError> {
        let meta = Self::META;
        let (sql, cells) = select_sql::<B::RowDialect>(meta, select)?;
        let args = cells.iter().map(Cell::arg).collect();
        let rows = B::RowDialect::fetch_all(connection, Statement::built(sql, args))
            .await
            .map_err(|error| RepositoryError::database(meta, error))?;
        rows.iter().map(|row| decode_row(meta, row)).collect()
    }

    /// The row with `id`, locked until the transaction ends (for a read-modify-write); with
    /// `live_only`, a soft-deleted row counts as missing.
    pub async fn get_for_update<B: RepositoryBackend>(
        tx: &mut B::Transaction<'_>,
        id: Uuid,
        live_only: bool,
    ) -> Result<E, RepositoryError> {
        let select = Select::new().eq("id", id).lock();
        let select = if live_only { select.live() } else { select };
        Self::fetch_one::<B>(B::connection(tx), select)
            .await?
            .ok_or_else(|| RepositoryError::not_found::<E>(id))
    }

    /// The first row `select` asks for.
    pub async fn fetch_one<B: RepositoryBackend>(
        connection: &mut B::Connection,
        select: Select,
    ) -> Result<Option<E>, RepositoryError> {
        let select = select.page(Page::first(1));
        Ok(Self::fetch::<B>(connection, select)
            .await?
            .into_iter()
            .next())
    }
}

/// An identifier in double quotes (`plan`, `order` and such are keywords).
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn placeholder<D: Dialect>(position: usize, field: &FieldMeta) -> String {
    match field.field_type {
        "decimal" => format!("${position}{}", D::DECIMAL_PARAMETER),
        _ => format!("${position}"),
    }
}

fn id_position(meta: &EntityMeta) -> Result<usize, RepositoryError> {
    meta.fields
        .iter()
        .position(|f| f.name == "id")
        .ok_or_else(|| RepositoryError::column(meta, "id", "the entity has no `id` field"))
}

fn field<'m>(meta: &'m EntityMeta, column: &str) -> Result<&'m FieldMeta, RepositoryError> {
    meta.fields
        .iter()
        .find(|f| f.name == column)
        .ok_or_else(|| RepositoryError::column(meta, column, "the entity has no such column"))
}

fn select_sql<D: Dialect>(
    meta: &EntityMeta,
    select: Select,
) -> Result<(String, Vec<Cell>), RepositoryError> {
    let list: Vec<String> = meta
        .fields
        .iter()
        .map(|field| match field.field_type {
            "decimal" if !D::DECIMAL_COLUMN.is_empty() => {
                format!("{0}{1} AS {0}", quoted(field.name), D::DECIMAL_COLUMN)
            }
            _ => quoted(field.name),
        })
        .collect();
    let mut conditions = Vec::new();
    let mut cells = Vec::new();
    for (column, value) in select.equal {
        let field = field(meta, column)?;
        let value = value.map_err(|reason| RepositoryError::column(meta, column, reason))?;
        cells.push(encode(meta, field, value)?);
        conditions.push(format!(
            "{} = {}",
            quoted(column),
            placeholder::<D>(cells.len(), field)
        ));
    }
    if select.live_only {
        field(meta, "deleted_at")?;
        conditions.push("\"deleted_at\" IS NULL".to_owned());
    }
    if let Some((column, text)) = select.search {
        field(meta, column)?;
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        cells.push(Cell::Text(Some(format!("%{escaped}%"))));
        conditions.push(format!(
            "{} {} ${} ESCAPE '\\'",
            quoted(column),
            D::LIKE,
            cells.len()
        ));
    }
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), quoted(meta.table));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let mut order = Vec::new();
    for (column, descending) in &select.order {
        field(meta, column)?;
        order.push(format!(
            "{} {}",
            quoted(column),
            if *descending { "DESC" } else { "ASC" }
        ));
    }
    // Ties in the declared order (and lists with none) keep one order from page to page.
    order.push("\"id\" ASC".to_owned());
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    if let Some(page) = select.page {
        cells.push(Cell::Int(Some(i64::from(page.limit))));
        cells.push(Cell::Int(Some(
            i64::try_from(page.offset).unwrap_or(i64::MAX),
        )));
        sql.push_str(&format!(
            " LIMIT ${} OFFSET ${}",
            cells.len() - 1,
            cells.len()
        ));
    }
    if select.lock {
        sql.push_str(D::LOCK_ROWS);
    }
    Ok((sql, cells))
}

/// A value bound to a statement, owned until the statement runs.
#[derive(Debug)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Uuid(Option<Uuid>),
    Decimal(Option<String>),
    Date(Option<NaiveDate>),
    Instant(Option<DateTime<Utc>>),
    Json(Option<String>),
}

impl Cell {
    fn arg(&self) -> Arg<'_> {
        match self {
            Cell::Text(value) => Arg::Text(value.as_deref()),
            Cell::Int(value) => Arg::Int(*value),
            Cell::Bool(value) => Arg::Bool(*value),
            Cell::Uuid(value) => Arg::Uuid(*value),
            Cell::Decimal(value) => Arg::Decimal(value.as_deref()),
            Cell::Date(value) => Arg::Date(*value),
            Cell::Instant(value) => Arg::Instant(*value),
            Cell::Json(value) => Arg::Json(value.as_deref()),
        }
    }
}

fn encode_row<E: Serialize>(meta: &EntityMeta, row: &E) -> Result<Vec<Cell>, RepositoryError> {
    let value = serde_json::to_value(row)
        .map_err(|error| RepositoryError::column(meta, "*", error.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(RepositoryError::column(
            meta,
            "*",
            "the entity does not serialize to an object",
        ));
    };
    meta.fields
        .iter()
        .map(|field| {
            encode(
                meta,
                field,
                object.remove(field.name).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The column value of a field's serde form.
fn encode(meta: &EntityMeta, field: &FieldMeta, value: Value) -> Result<Cell, RepositoryError> {
    let wrong = |expected: &str, value: &Value| {
        RepositoryError::column(
            meta,
            field.name,
            format!(
                "expected {expected} for a `{}` column, got {value}",
                field.field_type
            ),
        )
    };
    if value.is_null() && field.field_type != "json" {
        return Ok(match field.field_type {
            "integer" => Cell::Int(None),
            "boolean" => Cell::Bool(None),
            "uuid" => Cell::Uuid(None),
            "decimal" => Cell::Decimal(None),
            "date" => Cell::Date(None),
            "datetime" => Cell::Instant(None),
            _ => Cell::Text(None),
        });
    }
    Ok(match field.field_type {
        "integer" => Cell::Int(Some(
            value.as_i64().ok_or_else(|| wrong("an integer", &value))?,
        )),
        "boolean" => Cell::Bool(Some(
            value.as_bool().ok_or_else(|| wrong("a boolean", &value))?,
        )),
        "uuid" => Cell::Uuid(Some(
            value
                .as_str()
                .and_then(|text| Uuid::parse_str(text).ok())
                .ok_or_else(|| wrong("a uuid", &value))?,
        )),
        // `rust_decimal`'s `serde-str` writes the exact text; a number is taken as written.
        "decimal" => Cell::Decimal(Some(match &value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(wrong("a decimal", &value)),
        })),
        "date" => Cell::Date(Some(
            value
                .as_str()
                .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
                .ok_or_else(|| wrong("a date", &value))?,
        )),
        "datetime" => Cell::Instant(Some(
            value
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|at| at.with_timezone(&Utc))
                .ok_or_else(|| wrong("a date and time", &value))?,
        )),
        // An optional JSON column holds SQL NULL for "no value"; a required one stores JSON's
        // own `null` if that is the value.
        "json" if value.is_null() && (!field.required || field.nullable) => Cell::Json(None),
        "json" => Cell::Json(Some(value.to_string())),
        _ => match value {
            Value::String(text) => Cell::Text(Some(text)),
            other => return Err(wrong("text", &other)),
        },
    })
}

fn decode_row<E: DeserializeOwned>(
    meta: &EntityMeta,
    row: &impl Columns,
) -> Result<E, RepositoryError> {
    let mut object = Map::new();
    for field in meta.fields {
        object.insert(field.name.to_owned(), decode(meta, field, row)?);
    }
    serde_json::from_value(Value::Object(object))
        .map_err(|error| RepositoryError::column(meta, "*", format!("a stored row: {error}")))
}

/// A column as the serde form of its field.
fn decode(
    meta: &EntityMeta,
    field: &FieldMeta,
    row: &impl Columns,
) -> Result<Value, RepositoryError> {
    let column = field.name;
    let store = |error| RepositoryError::store(meta, error);
    Ok(match field.field_type {
        "integer" => row.opt_int(column).map_err(store)?.map(Value::from),
        "boolean" => row.opt_bool(column).map_err(store)?.map(Value::from),
        "uuid" => row
            .opt_uuid(column)
            .map_err(store)?
            .map(|id| Value::from(id.to_string())),
        "decimal" => row.opt_decimal(column).map_err(store)?.map(Value::from),
        "date" => row
            .opt_date(column)
            .map_err(store)?
            .map(|date| Value::from(date.format("%Y-%m-%d").to_string())),
        "datetime" => row
            .opt_instant(column)
            .map_err(store)?
            .map(|at| Value::from(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        "json" => row
            .opt_json(column)
            .map_err(store)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|error| {
                    RepositoryError::column(meta, column, format!("stored JSON: {error}"))
                })
            })
            .transpose()?,
        _ => row.opt_text(column).map_err(store)?.map(Value::from),
    }
    .unwrap_or(Value::Null))
}

//! SQL for entities: a table model that both databases share, built from the [`Model`], and
//! its DDL for SQLite and for PostgreSQL.
//!
//! The table model is also what the migration snapshot records (see `migrate`), so that the
//! next run can tell what changed in SQL terms: a new column, a changed CHECK, a dropped index.

use serde::{Deserialize, Serialize};

use crate::model::{DefaultValue, Entity, EntityField, EntityType, Model, QueryKind, RelationKind};

/// A database Herald writes SQL for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub const ALL: [Database; 2] = [Database::Sqlite, Database::Postgres];

    /// As written in `codegen.yaml` and used as the directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|db| db.as_str() == word)
    }

    /// For messages.
    pub fn title(self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite",
            Database::Postgres => "PostgreSQL",
        }
    }
}

/// Every entity table, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    /// The entity it holds: a table whose entity keeps its name but not its table was renamed.
    pub entity: String,
    /// The YAML file, for messages.
    #[serde(skip)]
    pub origin: String,
    /// In the order of the entity's fields: `id` first.
    pub columns: Vec<Column>,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    /// Sorted by column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn foreign_key(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys.iter().find(|f| f.column == column)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    pub not_null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
    /// A CHECK on the length of a text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// A CHECK that the text is one of these (an `enum` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Column {
    /// Whether a change of these attributes changes the column's CHECK.
    pub fn same_check(&self, other: &Column) -> bool {
        self.max_length == other.max_length && self.choices == other.choices
    }
}

/// The SQL type of a column, before it is spelled for one database. `enum` fields are `text`
/// with a CHECK of their choices: changing the choices changes a CHECK, not the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Uuid,
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    Datetime,
    Json,
}

impl ColumnType {
    /// As the YAML calls it, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Uuid => "uuid",
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
            ColumnType::Json => "json",
        }
    }

    fn sql(self, db: Database) -> &'static str {
        match (db, self) {
            // SQLite's STRICT tables know INTEGER, REAL, TEXT, BLOB and ANY. Every value is
            // stored the way sqlx encodes it: a UUID as 16 bytes, an instant as RFC 3339 text,
            // a decimal as its canonical text (which keeps it exact, as REAL would not).
            (Database::Sqlite, ColumnType::Uuid) => "BLOB",
            (Database::Sqlite, ColumnType::Integer | ColumnType::Boolean) => "INTEGER",
            (Database::Sqlite, _) => "TEXT",
            (Database::Postgres, ColumnType::Uuid) => "uuid",
            (Database::Postgres, ColumnType::Text) => "text",
            (Database::Postgres, ColumnType::Integer) => "bigint",
            (Database::Postgres, ColumnType::Decimal) => "numeric",
            (Database::Postgres, ColumnType::Boolean) => "boolean",
            (Database::Postgres, ColumnType::Date) => "date",
            (Database::Postgres, ColumnType::Datetime) => "timestamptz",
            (Database::Postgres, ColumnType::Json) => "jsonb",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub column: String,
    /// The referenced table (its `id`).
    pub references: String,
}

/// The tables of every entity.
pub fn schema(model: &Model) -> Schema {
    let mut tables: Vec<Table> = model
        .entities
        .iter()
        .map(|entity| table(model, entity))
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Schema { tables }
}

fn table(model: &Model, entity: &Entity) -> Table {
    let columns = entity.fields.iter().map(column).collect();
    // An index per indexed field and per finder; a unique finder makes the index on its
    // columns unique, and one index per set of columns is enough.
    let mut wanted: Vec<(Vec<String>, bool)> = Vec::new();
    let mut want =
        |columns: Vec<String>, unique: bool| match wanted.iter_mut().find(|(c, _)| *c == columns) {
            Some(existing) => existing.1 |= unique,
            None => wanted.push((columns, unique)),
        };
    for field in entity.fields.iter().filter(|f| f.index && f.key != "id") {
        want(vec![field.key.clone()], false);
    }
    for query in &entity.queries {
        if let QueryKind::By { columns, unique } = &query.kind
            && columns.as_slice() != ["id"]
        {
            want(columns.clone(), *unique);
        }
    }
    let mut indexes: Vec<Index> = wanted
        .into_iter()
        .map(|(columns, unique)| Index {
            name: object_name(
                &entity.table,
                &columns.join("_"),
                if unique { "key" } else { "idx" },
            ),
            columns,
            unique,
        })
        .collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut foreign_keys: Vec<ForeignKey> = entity
        .relationships
        .iter()
        .filter(|r| r.kind == RelationKind::BelongsTo)
        .filter_map(|r| {
            let target = model.entities.iter().find(|e| e.name == r.target)?;
            Some(ForeignKey {
                name: object_name(&entity.table, &r.foreign_key, "fkey"),
                column: r.foreign_key.clone(),
                references: target.table.clone(),
            })
        })
        .collect();
    foreign_keys.sort_by(|a, b| a.column.cmp(&b.column));
    Table {
        name: entity.table.clone(),
        entity: entity.name.clone(),
        origin: entity.origin.clone(),
        columns,
        indexes,
        foreign_keys,
    }
}

fn column(field: &EntityField) -> Column {
    let (ty, max_length, choices) = match &field.ty {
        EntityType::String { max_length } => (ColumnType::Text, *max_length, None),
        EntityType::Enum { choices, .. } => (
            ColumnType::Text,
            None,
            Some(choices.iter().map(|c| c.value.clone()).collect()),
        ),
        EntityType::Integer => (ColumnType::Integer, None, None),
        EntityType::Decimal => (ColumnType::Decimal, None, None),
        EntityType::Boolean => (ColumnType::Boolean, None, None),
        EntityType::Uuid => (ColumnType::Uuid, None, None),
        EntityType::Date => (ColumnType::Date, None, None),
        EntityType::DateTime => (ColumnType::Datetime, None, None),
        EntityType::Json => (ColumnType::Json, None, None),
    };
    Column {
        name: field.key.clone(),
        ty,
        primary_key: field.key == "id",
        not_null: !field.optional(),
        default: field.default.clone(),
        max_length,
        choices,
    }
}

/// `<table>_<what>_<suffix>`, PostgreSQL's own naming (`contacts_email_key`), kept within its
/// 63-byte limit: a longer name would be cut by the server, and the next migration would no
/// longer find it. Cut names end in a hash of the whole, so that they stay distinct.
pub fn object_name(table: &str, what: &str, suffix: &str) -> String {
    const MAX: usize = 63;
    let name = format!("{table}_{what}_{suffix}");
    if name.len() <= MAX {
        return name;
    }
    let hash = format!("{:08x}", fnv1a(&name) as u32);
    let keep = MAX - hash.len() - suffix.len() - 2;
    format!("{}_{hash}_{suffix}", &name[..keep])
}

/// FNV-1a: a hash that is the same on every machine and every Rust version.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An identifier as SQL text: quoted when it is a keyword of either database.
pub fn ident(name: &str) -> String {
    if KEYWORDS.binary_search(&name).is_ok() {
        format!("\"{name}\"")
    } else {
        name.to_owned()
    }
}

/// A string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The keywords of SQLite and the reserved words of PostgreSQL, lowercase and sorted. Names are
/// snake_case, so only these need quotes.
const KEYWORDS: &[&str] = &[
    "abort",
    "action",
    "add",
    "after",
    "all",
    "alter",
    "always",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "attach",
    "authorization",
    "autoincrement",
    "before",
    "begin",
    "between",
    "binary",
    "both",
    "by",
    "cascade",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "conflict",
    "constraint",
    "create",
    "cross",
    "current",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "database",
    "default",
    "deferrable",
    "deferred",
    "delete",
    "desc",
    "detach",
    "distinct",
    "do",
    "drop",
    "each",
    "else",
    "end",
    "escape",
    "except",
    "exclude",
    "exclusive",
    "exists",
    "explain",
    "fail",
    "false",
    "fetch",
    "filter",
    "first",
    "following",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "generated",
    "glob",
    "grant",
    "group",
    "groups",
    "having",
    "if",
    "ignore",
    "ilike",
    "immediate",
    "in",
    "index",
    "indexed",
    "initially",
    "inner",
    "insert",
    "instead",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "key",
    "last",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "match",
    "materialized",
    "natural",
    "no",
    "not",
    "nothing",
    "notnull",
    "null",
    "nulls",
    "of",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "others",
    "outer",
    "over",
    "overlaps",
    "partition",
    "placing",
    "plan",
    "pragma",
    "preceding",
    "primary",
    "query",
    "raise",
    "range",
    "recursive",
    "references",
    "regexp",
    "reindex",
    "release",
    "rename",
    "replace",
    "restrict",
    "returning",
    "right",
    "rollback",
    "row",
    "rows",
    "savepoint",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "temp",
    "temporary",
    "then",
    "ties",
    "to",
    "trailing",
    "transaction",
    "trigger",
    "true",
    "unbounded",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "vacuum",
    "values",
    "variadic",
    "verbose",
    "view",
    "virtual",
    "when",
    "where",
    "window",
    "with",
    "without",
];

impl Database {
    /// The CHECK of a column, if it has one: what the SQL type alone does not hold.
    pub fn check(self, column: &Column) -> Option<String> {
        let c = ident(&column.name);
        let mut conditions = Vec::new();
        if let Some(max) = column.max_length {
            conditions.push(match self {
                Database::Sqlite => format!("length({c}) <= {max}"),
                Database::Postgres => format!("char_length({c}) <= {max}"),
            });
        }
        if let Some(choices) = &column.choices {
            let values: Vec<String> = choices.iter().map(|v| literal(v)).collect();
            conditions.push(format!("{c} IN ({})", values.join(", ")));
        }
        if self == Database::Sqlite {
            // A NULL condition passes a CHECK; `IS` and the `IS NULL OR` keep garbage out
            // where a function returns NULL for it.
            match column.ty {
                ColumnType::Uuid => conditions.push(format!("length({c}) = 16")),
                ColumnType::Boolean => conditions.push(format!("{c} IN (0, 1)")),
                ColumnType::Json => conditions.push(format!("json_valid({c})")),
                ColumnType::Date => conditions.push(format!("date({c}) IS {c}")),
                // julianday() reads any instant, but rolls 2024-02-30 over to March: the date
                // part is checked on its own.
                ColumnType::Datetime => conditions.push(format!(
                    "{c} IS NULL OR (julianday({c}) IS NOT NULL AND date(substr({c}, 1, 10)) IS substr({c}, 1, 10))"
                )),
                // The canonical text of a decimal: an optional minus, digits, and at most one
                // point with digits after it.
                ColumnType::Decimal => conditions.push(format!(
                    "({c} GLOB '[0-9]*' OR {c} GLOB '-[0-9]*') AND substr({c}, 2) NOT GLOB '*[^0-9.]*' AND {c} NOT GLOB '*.*.*' AND {c} NOT GLOB '*.'"
                )),
                ColumnType::Text | ColumnType::Integer => {}
            }
        }
        match conditions.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(
                many.iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        }
    }

    pub fn default_literal(self, default: &DefaultValue) -> String {
        match (self, default) {
            (_, DefaultValue::String(s)) => literal(s),
            (_, DefaultValue::Integer(i)) => i.to_string(),
            (Database::Sqlite, DefaultValue::Decimal(d)) => literal(d),
            (Database::Postgres, DefaultValue::Decimal(d)) => d.clone(),
            (Database::Sqlite, DefaultValue::Boolean(b)) => u8::from(*b).to_string(),
            (Database::Postgres, DefaultValue::Boolean(true)) => "TRUE".into(),
            (Database::Postgres, DefaultValue::Boolean(false)) => "FALSE".into(),
        }
    }

    /// The whole definition of a column in `CREATE TABLE` or `ADD COLUMN`. On SQLite its
    /// foreign key is part of it; PostgreSQL's are added as constraints of their own, after
    /// every table exists, so that the order of the tables does not matter.
    pub fn column_definition(self, table: &Table, column: &Column) -> String {
        let mut def = format!("{} {}", ident(&column.name), column.ty.sql(self));
        if column.primary_key {
            def.push_str(" PRIMARY KEY");
        }
        if column.not_null {
            def.push_str(" NOT NULL");
        }
        if let Some(default) = &column.default {
            def.push_str(" DEFAULT ");
            def.push_str(&self.default_literal(default));
        }
        if let Some(check) = self.check(column) {
            let name = object_name(&table.name, &column.name, "check");
            def.push_str(&format!(" CONSTRAINT {} CHECK ({check})", ident(&name)));
        }
        if self == Database::Sqlite
            && let Some(fk) = table.foreign_key(&column.name)
        {
            def.push_str(&format!(
                " CONSTRAINT {} REFERENCES {} (id)",
                ident(&fk.name),
                ident(&fk.references)
            ));
        }
        def
    }

    pub fn create_table(self, table: &Table) -> String {
        self.create_table_named(table, &table.name)
    }

    /// `CREATE TABLE` with the definition of `table` under another name (SQLite rebuilds).
    pub fn create_table_named(self, table: &Table, name: &str) -> String {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("    {}", self.column_definition(table, c)))
            .collect();
        let strict = match self {
            Database::Sqlite => " STRICT",
            Database::Postgres => "",
        };
        format!(
            "CREATE TABLE {} (\n{}\n){strict};\n",
            ident(name),
            columns.join(",\n")
        )
    }

    pub fn create_index(self, table: &Table, index: &Index) -> String {
        let columns: Vec<String> = index.columns.iter().map(|c| ident(c)).collect();
        format!(
            "CREATE {}INDEX {} ON {} ({});\n",
            if index.unique { "UNIQUE " } else { "" },
            ident(&index.name),
            ident(&table.name),
            columns.join(", ")
        )
    }

    /// PostgreSQL only: SQLite declares foreign keys in the column.
    pub fn add_foreign_key(self, table: &Table, fk: &ForeignKey) -> String {
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} (id);\n",
            ident(&table.name),
            ident(&fk.name),
            ident(&fk.column),
            ident(&fk.references)
        )
    }

    /// The tables, their indexes and (PostgreSQL) their foreign keys, in an order that applies.
    pub fn create_tables(self, tables: &[&Table]) -> String {
        let mut out = String::new();
        for table in tables {
            out.push('\n');
            out.push_str(&self.create_table(table));
            for index in &table.indexes {
                out.push_str(&self.create_index(table, index));
            }
        }
        if self == Database::Postgres {
            let fks: Vec<String> = tables
                .iter()
                .flat_map(|t| t.foreign_keys.iter().map(|fk| self.add_foreign_key(t, fk)))
                .collect();
            if !fks.is_empty() {
                out.push('\n');
                out.push_str(&fks.concat());
            }
        }
        out
    }
}

/// `schema.sql`: the schema as it is now, for reading and review.
pub fn schema_sql(schema: &Schema, db: Database, regenerate: &str) -> String {
    let tables: Vec<&Table> = schema.tables.iter().collect();
    format!(
        "-- {marker} by `{regenerate}` from entities/.\n\
         -- Do not edit: change the YAML and generate again.\n\
         --\n\
         -- The {title} schema of the entities as they are now, for reading and review. A\n\
         -- database is built by the numbered migrations beside this file, e.g.\n\
         -- `sqlx migrate run --source <this directory>`.\n{body}",
        marker = crate::emit::GENERATED_MARKER,
        title = db.title(),
        body = db.create_tables(&tables),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        let mut sorted = KEYWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, KEYWORDS);
    }

    #[test]
    fn identifiers_are_quoted_only_when_they_are_keywords() {
        assert_eq!(ident("contacts"), "contacts");
        assert_eq!(ident("order"), "\"order\"");
        assert_eq!(ident("user"), "\"user\"");
    }

    #[test]
    fn long_names_stay_within_postgres_limit_and_distinct() {
        let a = object_name(&"t".repeat(40), &"a".repeat(30), "idx");
        let b = object_name(&"t".repeat(40), &"b".repeat(30), "idx");
        assert_eq!(a.len(), 63);
        assert!(a.ends_with("_idx"));
        assert_ne!(a, b);
        assert_eq!(
            object_name("contacts", "email", "key"),
            "contacts_email_key"
        );
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}

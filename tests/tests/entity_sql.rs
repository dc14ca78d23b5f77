//! The generated entity migrations on real databases, applied by sqlx's migrator (what
//! `sqlx migrate run` runs): the checked-in migrations of the example domain, and a sequence
//! of YAML edits migrated step by step over rows that must survive. After each, the tables are
//! checked against the model: a row with every field goes in, and every CHECK, NOT NULL,
//! foreign key and unique index refuses what it must.
//!
//! PostgreSQL runs when `HERALD_TEST_POSTGRES_URL` is set, in a schema of its own per test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_codegen::migrate::ExistingMigration;
use herald_codegen::sql::{self, Column, ColumnType, Schema, Table};
use herald_codegen::{
    Database, FileKind, MigrationOptions, MigrationsDir, Model, SourceMap, generate_sql,
    load_sources,
};
use integration_tests::support::PostgresSchema;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::types::Uuid;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_model() -> Model {
    let sources =
        load_sources(&repo().join("events"), &repo().join("entities")).expect("example domain");
    herald_codegen::check(&sources).unwrap_or_else(|d| panic!("{}", d.render(&sources)))
}

fn model_of(entities: &[(&str, &str)]) -> Model {
    let mut sources = SourceMap::new();
    for (name, yaml) in entities {
        sources.add(FileKind::Entity, format!("entities/{name}.yaml"), *yaml);
    }
    herald_codegen::check(&sources).unwrap_or_else(|d| panic!("{}", d.render(&sources)))
}

/// A value to bind, as both databases take it.
#[derive(Debug, Clone)]
enum Value {
    Null,
    Uuid(Uuid),
    Bytes(Vec<u8>),
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A value every constraint of `column` accepts; texts differ from call to call, so that rows
/// never collide on a unique index by accident.
fn valid(column: &Column, parents: &[(String, Uuid)], table: &Table) -> Value {
    static TEXTS: AtomicUsize = AtomicUsize::new(0);
    if let Some(fk) = table.foreign_key(&column.name) {
        let parent = parents
            .iter()
            .find(|(t, _)| *t == fk.references)
            .unwrap_or_else(|| panic!("no {} row for {}", fk.references, column.name));
        return Value::Uuid(parent.1);
    }
    if let Some(choices) = &column.choices {
        return Value::Text(choices[choices.len() - 1].clone());
    }
    match column.ty {
        ColumnType::Uuid => Value::Uuid(Uuid::new_v4()),
        // As many characters as allowed, two bytes each: a length is counted in characters.
        ColumnType::Text => {
            let unique = format!("v{}", TEXTS.fetch_add(1, Ordering::Relaxed));
            let len = column.max_length.map_or(12, |max| max as usize);
            Value::Text(format!("{unique}{}", "é".repeat(len - unique.len())))
        }
        ColumnType::Integer => Value::Int(-42),
        ColumnType::Decimal => Value::Text("-1234.0050".into()),
        ColumnType::Boolean => Value::Bool(true),
        ColumnType::Date => Value::Text("2024-02-29".into()),
        ColumnType::Datetime => Value::Text("2026-11-01T10:30:00.25+00:00".into()),
        ColumnType::Json => Value::Text(r#"{"tags": ["a"], "n": 1}"#.into()),
    }
}

/// Values that `column`'s constraints refuse on `db`, each with why.
fn invalid(db: Database, column: &Column, table: &Table) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    if column.not_null {
        out.push((Value::Null, "NULL in a NOT NULL column".into()));
    }
    if table.foreign_key(&column.name).is_some() {
        out.push((Value::Uuid(Uuid::new_v4()), "an id no row has".into()));
    }
    if let Some(max) = column.max_length {
        out.push((
            Value::Text("x".repeat(max as usize + 1)),
            format!("{} characters, over max_length", max + 1),
        ));
    }
    if column.choices.is_some() {
        out.push((Value::Text("not_a_choice".into()), "not a choice".into()));
    }
    let text = |values: &[&str]| -> Vec<(Value, String)> {
        values
            .iter()
            .map(|v| (Value::Text((*v).into()), format!("`{v}`")))
            .collect()
    };
    match (db, column.ty) {
        (Database::Sqlite, ColumnType::Uuid) => {
            out.push((Value::Bytes(vec![1, 2, 3]), "a 3-byte uuid".into()));
        }
        // PostgreSQL's numeric reads `5.` and `1e5` as exact numbers; SQLite keeps the text,
        // so only the canonical form goes in.
        (Database::Sqlite, ColumnType::Decimal) => {
            out.extend(text(&["1.2.3", "abc", "5.", "1e5", "", " 1"]));
        }
        (Database::Postgres, ColumnType::Decimal) => out.extend(text(&["1.2.3", "abc", ""])),
        (_, ColumnType::Json) => out.extend(text(&["{", "not json"])),
        // (`yesterday` is a date and a time to PostgreSQL.)
        (_, ColumnType::Date) => out.extend(text(&["2024-13-01", "someday"])),
        (_, ColumnType::Datetime) => out.extend(text(&["2024-02-30T10:00:00Z", "someday"])),
        (Database::Sqlite, ColumnType::Boolean) => {
            out.push((Value::Int(2), "2 in a boolean".into()));
        }
        (Database::Sqlite, ColumnType::Integer) => out.extend(text(&["abc"])),
        _ => {}
    }
    out
}

/// Tables in an order in which each row's parents exist.
fn parents_first(schema: &Schema) -> Vec<&Table> {
    let mut ordered: Vec<&Table> = Vec::new();
    while ordered.len() < schema.tables.len() {
        let before = ordered.len();
        for table in &schema.tables {
            let ready = table.foreign_keys.iter().all(|fk| {
                fk.references == table.name || ordered.iter().any(|t| t.name == fk.references)
            });
            if ready && !ordered.iter().any(|t| t.name == table.name) {
                ordered.push(table);
            }
        }
        assert!(ordered.len() > before, "foreign keys in a cycle");
    }
    ordered
}

/// The two databases behind one small seam: insert a row, count rows.
trait Db {
    const DATABASE: Database;
    async fn insert(&self, table: &Table, row: &[(&Column, Value)]) -> Result<(), sqlx::Error>;
    async fn count(&self, table: &str) -> i64;
    async fn migrate(&self, dir: &Path);
}

impl Db for SqlitePool {
    const DATABASE: Database = Database::Sqlite;

    async fn insert(&self, table: &Table, row: &[(&Column, Value)]) -> Result<(), sqlx::Error> {
        let columns: Vec<String> = row.iter().map(|(c, _)| sql::ident(&c.name)).collect();
        let marks = vec!["?"; row.len()].join(", ");
        let text = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            sql::ident(&table.name),
            columns.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (_, value) in row {
            query = match value.clone() {
                Value::Null => query.bind(None::<String>),
                Value::Uuid(u) => query.bind(u),
                Value::Bytes(b) => query.bind(b),
                Value::Text(t) => query.bind(t),
                Value::Int(i) => query.bind(i),
                Value::Bool(b) => query.bind(b),
            };
        }
        query.execute(self).await.map(drop)
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(self)
            .await
            .expect("count")
    }

    async fn migrate(&self, dir: &Path) {
        let migrator = Migrator::new(dir).await.expect("migrations resolve");
        migrator
            .run(self)
            .await
            .unwrap_or_else(|e| panic!("SQLite migrations of {} apply: {e}", dir.display()));
    }
}

impl Db for PgPool {
    const DATABASE: Database = Database::Postgres;

    async fn insert(&self, table: &Table, row: &[(&Column, Value)]) -> Result<(), sqlx::Error> {
        let columns: Vec<String> = row.iter().map(|(c, _)| sql::ident(&c.name)).collect();
        // Text goes in through a cast to the column's type, as an application's string would.
        let marks: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, (column, _))| {
                let cast = match column.ty {
                    ColumnType::Decimal => "::numeric",
                    ColumnType::Date => "::date",
                    ColumnType::Datetime => "::timestamptz",
                    ColumnType::Json => "::jsonb",
                    _ => "",
                };
                format!("${}{cast}", i + 1)
            })
            .collect();
        let text = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            sql::ident(&table.name),
            columns.join(", "),
            marks.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (column, value) in row {
            query = match (value.clone(), column.ty) {
                (Value::Null, ColumnType::Uuid) => query.bind(None::<Uuid>),
                (Value::Null, ColumnType::Integer) => query.bind(None::<i64>),
                (Value::Null, ColumnType::Boolean) => query.bind(None::<bool>),
                (Value::Null, _) => query.bind(None::<String>),
                (Value::Uuid(u), _) => query.bind(u),
                (Value::Bytes(b), _) => query.bind(b),
                (Value::Text(t), _) => query.bind(t),
                (Value::Int(i), _) => query.bind(i),
                (Value::Bool(b), _) => query.bind(b),
            };
        }
        query.execute(self).await.map(drop)
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(self)
            .await
            .expect("count")
    }

    async fn migrate(&self, dir: &Path) {
        let migrator = Migrator::new(dir).await.expect("migrations resolve");
        migrator
            .run(self)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL migrations of {} apply: {e}", dir.display()));
    }
}

/// Every table of `schema` takes a row with every field, and refuses every value its
/// constraints forbid; unique indexes refuse a second row with the same values. Returns the
/// rows inserted per table.
async fn check_against_model<D: Db>(db: &D, schema: &Schema) {
    let mut parents: Vec<(String, Uuid)> = Vec::new();
    for table in parents_first(schema) {
        let row: Vec<(&Column, Value)> = table
            .columns
            .iter()
            .map(|c| (c, valid(c, &parents, table)))
            .collect();
        let before = db.count(&table.name).await;
        db.insert(table, &row).await.unwrap_or_else(|e| {
            panic!(
                "{}: a row with every field of `{}` is refused: {e}",
                D::DATABASE.title(),
                table.name
            )
        });
        assert_eq!(db.count(&table.name).await, before + 1);
        let Value::Uuid(id) = row[0].1 else {
            panic!("id first")
        };
        parents.push((table.name.clone(), id));

        for (i, column) in table.columns.iter().enumerate() {
            for (bad, why) in invalid(D::DATABASE, column, table) {
                let mut fresh: Vec<(&Column, Value)> = table
                    .columns
                    .iter()
                    .map(|c| (c, valid(c, &parents, table)))
                    .collect();
                fresh[i].1 = bad;
                assert!(
                    db.insert(table, &fresh).await.is_err(),
                    "{}: `{}.{}` accepts {why}",
                    D::DATABASE.title(),
                    table.name,
                    column.name
                );
            }
        }
        for index in table.indexes.iter().filter(|i| i.unique) {
            let mut twin: Vec<(&Column, Value)> = table
                .columns
                .iter()
                .map(|c| (c, valid(c, &parents, table)))
                .collect();
            for (column, value) in twin.iter_mut() {
                if index.columns.contains(&column.name) {
                    *value = row
                        .iter()
                        .find(|(c, _)| c.name == column.name)
                        .map(|(_, v)| v.clone())
                        .expect("the column");
                }
            }
            assert!(
                db.insert(table, &twin).await.is_err(),
                "{}: unique index `{}` accepts a duplicate",
                D::DATABASE.title(),
                index.name
            );
        }
        assert_eq!(
            db.count(&table.name).await,
            before + 1,
            "every refused row left nothing"
        );
    }
}

async fn sqlite_pool(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("entities.db"))
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open SQLite")
}

async fn postgres_pool(schema: &PostgresSchema) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(schema.options())
        .await
        .expect("connect to PostgreSQL")
}

async fn example_migrations_apply<D: Db>(db: &D) {
    let dir = repo()
        .join("examples/crm/migrations")
        .join(D::DATABASE.as_str());
    db.migrate(&dir).await;
    // Applying again does nothing: sqlx records what it ran.
    db.migrate(&dir).await;
    check_against_model(db, &sql::schema(&example_model())).await;
}

#[tokio::test]
async fn sqlite_example_migrations_apply_and_match_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    example_migrations_apply(&sqlite_pool(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_example_migrations_apply_and_match_the_model() {
    let Some(schema) =
        PostgresSchema::create("postgres_example_migrations_apply_and_match_the_model").await
    else {
        return;
    };
    example_migrations_apply(&postgres_pool(&schema).await).await;
    schema.drop().await;
}

const ACCOUNT: &str = "entity: account\nfields:\n  name: { type: string, max_length: 20 }\nrelationships:\n  contacts: { has_many: contact }\n";

const CONTACT: &str = "\
entity: { name: contact }
fields:
  email: { type: string, max_length: 40 }
  phone: { type: string, required: false }
  status: { type: enum, choices: [active, archived], default: active }
  balance: { type: decimal, nullable: true }
  vip: { type: boolean, default: false }
relationships:
  account: { type: belongs_to, target: account, nullable: true }
behaviors: [timestamps]
queries:
  - by: [email]
    unique: true
";

/// Generates the next migration of `entities` into `dir` (as `codegen-cli generate` does),
/// and returns the schema.
fn next_migration(db: Database, dir: &Path, entities: &[(&str, &str)]) -> Schema {
    let model = model_of(entities);
    let mut read = MigrationsDir {
        snapshot: std::fs::read_to_string(dir.join("snapshot.json")).ok(),
        migrations: Vec::new(),
    };
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let contents = std::fs::read_to_string(&path).expect("readable");
        read.migrations
            .extend(ExistingMigration::from_file(name, &contents));
    }
    let options = MigrationOptions {
        regenerate: "test",
        hand_written: false,
    };
    let files = generate_sql(&model, &[(db, read)], options).expect("additive");
    for file in &files[0].files {
        std::fs::write(dir.join(&file.path), &file.contents).expect("write");
    }
    assert!(files[0].new_migration.is_some(), "a migration per step");
    sql::schema(&model)
}

/// Row of `contacts` as the first migration knows it, inserted before any later one runs.
async fn insert_early_contact<D: Db>(db: &D, schema: &Schema, email: &str) {
    let table = schema
        .tables
        .iter()
        .find(|t| t.name == "contacts")
        .expect("contacts");
    let row: Vec<(&Column, Value)> = table
        .columns
        .iter()
        .filter(|c| c.not_null || c.name == "phone")
        .map(|c| {
            let value = match c.name.as_str() {
                "email" => Value::Text(email.into()),
                "phone" => Value::Null,
                _ => valid(c, &[], table),
            };
            (c, value)
        })
        .collect();
    db.insert(table, &row).await.expect("an early contact");
}

async fn a_sequence_of_edits_migrates_over_existing_rows<D: Db>(db: &D) {
    let dir = tempfile::tempdir().expect("temp dir");
    let step = |entities: &[(&str, &str)]| next_migration(D::DATABASE, dir.path(), entities);

    // 1. The tables, and a contact in them.
    let schema = step(&[("account", ACCOUNT), ("contact", CONTACT)]);
    db.migrate(dir.path()).await;
    insert_early_contact(db, &schema, "early@example.com").await;

    // 2. A nullable field and a required one with a default: the early row gets the default.
    let contact = CONTACT.replace(
        "  vip:",
        "  note: { type: string, nullable: true }\n  visits: { type: integer, default: 7 }\n  vip:",
    );
    step(&[("account", ACCOUNT), ("contact", &contact)]);
    db.migrate(dir.path()).await;

    // 3. Indexes: on a field and for a finder.
    let contact = contact
        .replace(
            "  phone: { type: string, required: false }",
            "  phone: { type: string, required: false, index: true }",
        )
        .replace("queries:\n", "queries:\n  - by: [account_id, status]\n");
    step(&[("account", ACCOUNT), ("contact", &contact)]);
    db.migrate(dir.path()).await;

    // 4. A new entity referring to both tables.
    let deal = "entity: deal\nfields:\n  amount: { type: decimal }\nrelationships:\n  contact: { belongs_to: contact }\n";
    step(&[("account", ACCOUNT), ("contact", &contact), ("deal", deal)]);
    db.migrate(dir.path()).await;

    // 5. Changed CHECKs and a default, a relaxed NOT NULL: the table is rebuilt on SQLite,
    //    its constraints replaced on PostgreSQL; the rows stay, `deals` still refers to them.
    let contact = contact
        .replace(
            "choices: [active, archived]",
            "choices: [active, archived, blocked]",
        )
        .replace(
            "  email: { type: string, max_length: 40 }",
            "  email: { type: string, max_length: 80, nullable: true }",
        )
        .replace("default: false", "default: true");
    let schema = step(&[("account", ACCOUNT), ("contact", &contact), ("deal", deal)]);
    db.migrate(dir.path()).await;

    assert_eq!(db.count("contacts").await, 1, "the early contact survived");
    check_against_model(db, &schema).await;
    let early = schema
        .tables
        .iter()
        .find(|t| t.name == "contacts")
        .expect("contacts");
    // The early row took `visits`' default, and the new CHECK holds for it: inserting its
    // twin under the unique email fails, so it is there with that email.
    let mut twin: Vec<(&Column, Value)> = early
        .columns
        .iter()
        .filter(|c| c.name != "account_id")
        .map(|c| (c, valid(c, &[], early)))
        .collect();
    for (column, value) in twin.iter_mut() {
        if column.name == "email" {
            *value = Value::Text("early@example.com".into());
        }
    }
    assert!(
        db.insert(early, &twin).await.is_err(),
        "the unique email kept"
    );
}

#[tokio::test]
async fn sqlite_a_sequence_of_edits_migrates_over_existing_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    a_sequence_of_edits_migrates_over_existing_rows(&sqlite_pool(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_a_sequence_of_edits_migrates_over_existing_rows() {
    let Some(schema) =
        PostgresSchema::create("postgres_a_sequence_of_edits_migrates_over_existing_rows").await
    else {
        return;
    };
    a_sequence_of_edits_migrates_over_existing_rows(&postgres_pool(&schema).await).await;
    schema.drop().await;
}

/// A migration of a SQLite table that others refer to keeps their foreign keys working.
#[tokio::test]
async fn sqlite_rebuilding_a_referenced_table_keeps_foreign_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_pool(dir.path()).await;
    let migrations = tempfile::tempdir().expect("temp dir");
    let step =
        |entities: &[(&str, &str)]| next_migration(Database::Sqlite, migrations.path(), entities);
    let schema = step(&[("account", ACCOUNT), ("contact", CONTACT)]);
    db.migrate(migrations.path()).await;
    check_against_model(&db, &schema).await;
    let account = ACCOUNT.replace("max_length: 20", "max_length: 30");
    let schema = step(&[("account", &account), ("contact", CONTACT)]);
    db.migrate(migrations.path()).await;
    check_against_model(&db, &schema).await;
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&db)
            .await
            .expect("foreign key check");
    assert!(violations.is_empty(), "{violations:?}");
    let contacts = schema
        .tables
        .iter()
        .find(|t| t.name == "contacts")
        .expect("contacts");
    let mut orphan: Vec<(&Column, Value)> = contacts
        .columns
        .iter()
        .map(|c| {
            (
                c,
                valid(c, &[("accounts".into(), Uuid::new_v4())], contacts),
            )
        })
        .collect();
    for (column, value) in orphan.iter_mut() {
        if column.name == "email" {
            *value = Value::Text("orphan@example.com".into());
        }
    }
    assert!(
        db.insert(contacts, &orphan).await.is_err(),
        "foreign keys are on again after the rebuild"
    );
}

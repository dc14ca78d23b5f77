//! Migrations for the entity tables, the way drizzle-kit and Prisma make them: each database's
//! migrations directory keeps a snapshot of the tables its migrations add up to, and a run whose
//! YAML gives other tables writes the next numbered migration, from the snapshot to them.
//!
//! Only changes that keep every row are written: new tables, new columns that are nullable or
//! have a default, new and dropped indexes and foreign keys, changed CHECKs, defaults and
//! nullability. A change that could lose or invent data (dropping or renaming a table or a
//! column, changing a type, making a column required when rows may have no value for it) is
//! refused with a [`MigrationError`] naming it; that migration is written by hand.
//!
//! Pure like the rest of the engine: the caller reads the directory into [`MigrationsDir`] and
//! writes the returned files.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::emit::{GENERATED_MARKER, GeneratedFile};
use crate::sql::{self, Column, Database, ForeignKey, Index, Schema, Table, ident};

/// The snapshot of the tables the migrations of a directory add up to.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// The current schema, for reading.
pub const SCHEMA_FILE: &str = "schema.sql";
const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    #[serde(rename = "@generated")]
    generated: String,
    format: u32,
    /// The migration after which the database has these tables.
    migration: i64,
    tables: Vec<Table>,
}

/// What one database's migrations directory holds, as the caller read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationsDir {
    /// The contents of `snapshot.json`, if there is one.
    pub snapshot: Option<String>,
    /// Every migration file, whoever wrote it.
    pub migrations: Vec<ExistingMigration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingMigration {
    pub version: i64,
    pub file_name: String,
    /// Written by Herald: its first lines carry the generated marker.
    pub generated: bool,
}

impl ExistingMigration {
    /// A migration file as sqlx reads it, `<version>_<description>.sql`; `None` for any other
    /// file (`schema.sql`, `snapshot.json`, a README), which sqlx skips too.
    pub fn from_file(file_name: &str, contents: &str) -> Option<Self> {
        let (version, rest) = file_name.split_once('_')?;
        if !rest.ends_with(".sql") {
            return None;
        }
        Some(Self {
            version: version.parse().ok()?,
            file_name: file_name.to_owned(),
            generated: contents
                .lines()
                .take(3)
                .any(|line| line.starts_with("--") && line.contains(GENERATED_MARKER)),
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MigrationOptions<'a> {
    /// Named in the header of every file.
    pub regenerate: &'a str,
    /// The changes since the snapshot are made by hand-written migrations newer than it:
    /// record the tables as migrated instead of writing a migration.
    pub hand_written: bool,
}

/// The files of one database's migrations directory, paths relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFiles {
    pub database: Database,
    /// `schema.sql`, `snapshot.json` and the new migration, if there is one.
    pub files: Vec<GeneratedFile>,
    /// The file name of the migration this run writes.
    pub new_migration: Option<String>,
    /// What changed since the snapshot, one line each, for the report.
    pub changes: Vec<String>,
}

/// A change Herald does not migrate by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub entity: String,
    pub table: String,
    /// The YAML file of the entity (empty for one that was deleted).
    pub origin: String,
    /// What the change does, e.g. "drops column `phone`".
    pub what: String,
    /// The SQL to write by hand, or what to do instead.
    pub instead: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = if self.origin.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.origin)
        };
        write!(
            f,
            "{origin}entity `{}` (table `{}`) {}; {}",
            self.entity, self.table, self.what, self.instead
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigrationError {
    #[error(
        "{}: {} change{} of the entities cannot be migrated without losing or inventing data",
        database.title(),
        refusals.len(),
        if refusals.len() == 1 { "" } else { "s" }
    )]
    Refused {
        database: Database,
        refusals: Vec<Refusal>,
        /// The changes since the snapshot that Herald would have written: the hand-written
        /// migration makes them too.
        also: Vec<String>,
        /// The file name the hand-written migration takes, e.g. `0003_<describe>.sql`.
        next: String,
    },
    #[error("{}: `{SNAPSHOT_FILE}` cannot be read: {message}", database.title())]
    BadSnapshot { database: Database, message: String },
    #[error(
        "{}: `{SNAPSHOT_FILE}` is missing, but Herald wrote {} of the migrations beside it",
        database.title(),
        generated.join(", ")
    )]
    SnapshotMissing {
        database: Database,
        generated: Vec<String>,
    },
    #[error(
        "{}: no hand-written migration is newer than migration {after}, which the snapshot records",
        database.title()
    )]
    NoHandWrittenMigration {
        database: Database,
        after: i64,
        next: String,
    },
}

/// `schema.sql`, `snapshot.json` and, when the tables changed, the next migration of one
/// database.
pub fn database_files(
    schema: &Schema,
    database: Database,
    dir: &MigrationsDir,
    options: MigrationOptions<'_>,
) -> Result<DatabaseFiles, MigrationError> {
    let previous = match &dir.snapshot {
        Some(text) => {
            let snapshot: Snapshot =
                serde_json::from_str(text).map_err(|err| MigrationError::BadSnapshot {
                    database,
                    message: err.to_string(),
                })?;
            if snapshot.format != SNAPSHOT_FORMAT {
                return Err(MigrationError::BadSnapshot {
                    database,
                    message: format!(
                        "it is in format {}, this generator reads format {SNAPSHOT_FORMAT}",
                        snapshot.format
                    ),
                });
            }
            snapshot
        }
        None => {
            // Without a snapshot the tables are new, unless Herald's own migrations are here:
            // then the snapshot was lost, and migrating from nothing would create tables that
            // exist.
            let generated: Vec<String> = dir
                .migrations
                .iter()
                .filter(|m| m.generated)
                .map(|m| m.file_name.clone())
                .collect();
            if !generated.is_empty() {
                return Err(MigrationError::SnapshotMissing {
                    database,
                    generated,
                });
            }
            Snapshot {
                generated: String::new(),
                format: SNAPSHOT_FORMAT,
                migration: 0,
                tables: Vec::new(),
            }
        }
    };
    let old = Schema {
        tables: previous.tables,
    };
    let diff = diff(&old, schema);
    let additive = diff.describe();
    let mut changes = additive.clone();
    changes.extend(
        diff.refused
            .iter()
            .map(|r| format!("`{}`: {}", r.table, r.what)),
    );
    let last = dir
        .migrations
        .iter()
        .map(|m| m.version)
        .chain([previous.migration])
        .max()
        .unwrap_or(0);
    let next_version = last + 1;

    let mut files = vec![GeneratedFile {
        path: PathBuf::from(SCHEMA_FILE),
        contents: sql::schema_sql(schema, database, options.regenerate),
    }];
    let snapshot = |migration: i64| GeneratedFile {
        path: PathBuf::from(SNAPSHOT_FILE),
        contents: snapshot_text(schema, migration, options.regenerate),
    };

    if changes.is_empty() {
        files.push(snapshot(previous.migration));
        return Ok(DatabaseFiles {
            database,
            files,
            new_migration: None,
            changes,
        });
    }
    if options.hand_written {
        let newest = dir
            .migrations
            .iter()
            .filter(|m| !m.generated && m.version > previous.migration)
            .map(|m| m.version)
            .max();
        let Some(newest) = newest else {
            return Err(MigrationError::NoHandWrittenMigration {
                database,
                after: previous.migration,
                next: format!("{next_version:04}_<describe>.sql"),
            });
        };
        files.push(snapshot(newest));
        return Ok(DatabaseFiles {
            database,
            files,
            new_migration: None,
            changes,
        });
    }
    if !diff.refused.is_empty() {
        return Err(MigrationError::Refused {
            database,
            refusals: diff.refused,
            also: additive,
            next: format!("{next_version:04}_<describe>.sql"),
        });
    }
    let name = format!("{next_version:04}_{}.sql", diff.slug());
    files.push(GeneratedFile {
        path: PathBuf::from(&name),
        contents: migration_sql(&diff, database, next_version, &changes, options.regenerate),
    });
    files.push(snapshot(next_version));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DatabaseFiles {
        database,
        files,
        new_migration: Some(name),
        changes,
    })
}

fn snapshot_text(schema: &Schema, migration: i64, regenerate: &str) -> String {
    let snapshot = Snapshot {
        generated: format!(
            "by `{regenerate}`: the entity tables after migration {migration}. Do not edit; the next migration is computed from it."
        ),
        format: SNAPSHOT_FORMAT,
        migration,
        tables: schema.tables.clone(),
    };
    let mut text = serde_json::to_string_pretty(&snapshot)
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// What changed from one schema to the next, table by table, in name order.
struct Diff<'a> {
    created: Vec<&'a Table>,
    altered: Vec<TableDiff<'a>>,
    refused: Vec<Refusal>,
}

struct TableDiff<'a> {
    old: &'a Table,
    new: &'a Table,
    added_columns: Vec<&'a Column>,
    /// Same name and type; nullability, default or CHECK changed.
    altered_columns: Vec<(&'a Column, &'a Column)>,
    dropped_indexes: Vec<&'a Index>,
    added_indexes: Vec<&'a Index>,
    /// On columns that existed before (a new column brings its own).
    dropped_foreign_keys: Vec<&'a ForeignKey>,
    added_foreign_keys: Vec<&'a ForeignKey>,
}

impl TableDiff<'_> {
    fn is_empty(&self) -> bool {
        self.added_columns.is_empty()
            && self.altered_columns.is_empty()
            && self.dropped_indexes.is_empty()
            && self.added_indexes.is_empty()
            && self.dropped_foreign_keys.is_empty()
            && self.added_foreign_keys.is_empty()
    }

    /// SQLite alters little in place: a changed column or foreign key means a new table.
    fn sqlite_rebuild(&self) -> bool {
        !self.altered_columns.is_empty()
            || !self.dropped_foreign_keys.is_empty()
            || !self.added_foreign_keys.is_empty()
    }
}

fn diff<'a>(old: &'a Schema, new: &'a Schema) -> Diff<'a> {
    let mut out = Diff {
        created: Vec::new(),
        altered: Vec::new(),
        refused: Vec::new(),
    };
    for table in &old.tables {
        if new.tables.iter().any(|t| t.name == table.name) {
            continue;
        }
        let renamed = new
            .tables
            .iter()
            .find(|t| t.entity == table.entity && !old.tables.iter().any(|o| o.name == t.name));
        out.refused.push(match renamed {
            Some(to) => Refusal {
                entity: table.entity.clone(),
                table: table.name.clone(),
                origin: to.origin.clone(),
                what: format!("moves to table `{}`", to.name),
                instead: format!(
                    "write `ALTER TABLE {} RENAME TO {};` by hand (and rename its indexes and constraints), or keep `table: {}`",
                    ident(&table.name),
                    ident(&to.name),
                    table.name
                ),
            },
            None => Refusal {
                entity: table.entity.clone(),
                table: table.name.clone(),
                origin: String::new(),
                what: "was removed, which drops its table".into(),
                instead: format!(
                    "write `DROP TABLE {};` by hand once its rows may go",
                    ident(&table.name)
                ),
            },
        });
    }
    for table in &new.tables {
        let Some(before) = old.tables.iter().find(|t| t.name == table.name) else {
            if !out.refused.iter().any(|r| r.entity == table.entity) {
                out.created.push(table);
            }
            continue;
        };
        let table_diff = diff_table(before, table, &mut out.refused);
        if !table_diff.is_empty() {
            out.altered.push(table_diff);
        }
    }
    out
}

fn diff_table<'a>(old: &'a Table, new: &'a Table, refused: &mut Vec<Refusal>) -> TableDiff<'a> {
    let refuse = |refused: &mut Vec<Refusal>, what: String, instead: String| {
        refused.push(Refusal {
            entity: new.entity.clone(),
            table: new.name.clone(),
            origin: new.origin.clone(),
            what,
            instead,
        });
    };
    let t = ident(&new.name);
    let mut out = TableDiff {
        old,
        new,
        added_columns: Vec::new(),
        altered_columns: Vec::new(),
        dropped_indexes: Vec::new(),
        added_indexes: Vec::new(),
        dropped_foreign_keys: Vec::new(),
        added_foreign_keys: Vec::new(),
    };
    for column in &old.columns {
        if new.column(&column.name).is_none() {
            let c = ident(&column.name);
            refuse(
                refused,
                format!(
                    "no longer has field `{}`, which drops its column",
                    column.name
                ),
                format!(
                    "write `ALTER TABLE {t} DROP COLUMN {c};` by hand, or `ALTER TABLE {t} RENAME COLUMN {c} TO <new name>;` if it was renamed"
                ),
            );
        }
    }
    for column in &new.columns {
        let Some(before) = old.column(&column.name) else {
            if column.not_null && column.default.is_none() {
                refuse(
                    refused,
                    format!(
                        "gains the required field `{}`, which the rows it has have no value for",
                        column.name
                    ),
                    "give the field a `default:` or make it `nullable: true`, or add the column by hand with a value for every row".into(),
                );
            } else {
                out.added_columns.push(column);
            }
            continue;
        };
        if before.ty != column.ty || before.primary_key != column.primary_key {
            refuse(
                refused,
                format!(
                    "changes the type of field `{}` from `{}` to `{}`",
                    column.name,
                    before.ty.as_str(),
                    column.ty.as_str()
                ),
                "write the conversion by hand (PostgreSQL: `ALTER COLUMN … TYPE … USING …`; SQLite: a new table and a copy), or add a field with a new name".into(),
            );
            continue;
        }
        if !before.not_null && column.not_null && column.default.is_none() {
            refuse(
                refused,
                format!(
                    "makes field `{}` required, and rows may hold NULL in it",
                    column.name
                ),
                "give the field a `default:` (rows holding NULL get it), or set the rows and NOT NULL by hand".into(),
            );
            continue;
        }
        if before != column {
            out.altered_columns.push((before, column));
        }
    }
    for index in &old.indexes {
        if !new.indexes.contains(index) {
            out.dropped_indexes.push(index);
        }
    }
    for index in &new.indexes {
        if !old.indexes.contains(index) {
            out.added_indexes.push(index);
        }
    }
    for fk in &old.foreign_keys {
        if new.column(&fk.column).is_some() && !new.foreign_keys.contains(fk) {
            out.dropped_foreign_keys.push(fk);
        }
    }
    for fk in &new.foreign_keys {
        if old.column(&fk.column).is_some() && !old.foreign_keys.contains(fk) {
            out.added_foreign_keys.push(fk);
        }
    }
    out
}

impl Diff<'_> {
    /// One line per change, for the migration's header and the report.
    fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for table in &self.created {
            lines.push(format!("create table `{}`", table.name));
        }
        for d in &self.altered {
            let t = &d.new.name;
            for c in &d.added_columns {
                lines.push(format!("`{t}`: add column `{}`", c.name));
            }
            for (old, new) in &d.altered_columns {
                let mut what = Vec::new();
                if old.not_null != new.not_null {
                    what.push(if new.not_null {
                        "NOT NULL (NULLs get the default)"
                    } else {
                        "drop NOT NULL"
                    });
                }
                if old.default != new.default {
                    what.push("default");
                }
                if !old.same_check(new) {
                    what.push("CHECK");
                }
                lines.push(format!(
                    "`{t}`: change column `{}`: {}",
                    new.name,
                    what.join(", ")
                ));
            }
            for fk in &d.dropped_foreign_keys {
                lines.push(format!("`{t}`: drop foreign key `{}`", fk.name));
            }
            for index in &d.dropped_indexes {
                lines.push(format!("`{t}`: drop index `{}`", index.name));
            }
            for index in &d.added_indexes {
                lines.push(format!("`{t}`: add index `{}`", index.name));
            }
            for fk in &d.added_foreign_keys {
                lines.push(format!("`{t}`: add foreign key `{}`", fk.name));
            }
        }
        lines
    }

    /// The description part of the file name: `create_accounts_contacts`, `alter_contacts`.
    fn slug(&self) -> String {
        let created: Vec<&str> = self.created.iter().map(|t| t.name.as_str()).collect();
        let altered: Vec<&str> = self.altered.iter().map(|d| d.new.name.as_str()).collect();
        if created.len() + altered.len() > 3 {
            return "update_entities".into();
        }
        let mut parts = Vec::new();
        if !created.is_empty() {
            parts.push(format!("create_{}", created.join("_")));
        }
        if !altered.is_empty() {
            parts.push(format!("alter_{}", altered.join("_")));
        }
        parts.join("_and_")
    }
}

fn migration_sql(
    diff: &Diff<'_>,
    database: Database,
    version: i64,
    changes: &[String],
    regenerate: &str,
) -> String {
    let rebuilds =
        database == Database::Sqlite && diff.altered.iter().any(TableDiff::sqlite_rebuild);
    let mut out = String::new();
    if rebuilds {
        // sqlx runs a migration in a transaction unless its first line says otherwise, and
        // SQLite ignores `PRAGMA foreign_keys` inside one: turning them off is what lets a
        // table referenced by others be replaced. The migration makes its own transaction.
        out.push_str("-- no-transaction\n");
    }
    out.push_str(&format!(
        "-- {GENERATED_MARKER} by `{regenerate}` from entities/: migration {version} of the entity tables, {}.\n\
         -- Written once: later runs never change it, the next change of the YAML gets the next number.\n--\n",
        database.title()
    ));
    for change in changes {
        out.push_str(&format!("-- {change}\n"));
    }
    let narrowing = diff.altered.iter().any(|d| {
        d.altered_columns
            .iter()
            .any(|(old, new)| !old.same_check(new))
            || d.added_indexes.iter().any(|i| i.unique)
            || !d.added_foreign_keys.is_empty()
    });
    if narrowing {
        out.push_str("--\n-- A new CHECK, unique index or foreign key applies to the rows already there: if one of\n-- them breaks it, the migration fails and changes nothing.\n");
    }
    if rebuilds {
        out.push_str("\nPRAGMA foreign_keys = OFF;\nBEGIN;\n");
    }
    let mut foreign_keys: Vec<String> = Vec::new();
    if !diff.created.is_empty() {
        out.push_str(&database.create_tables(&diff.created));
    }
    for d in &diff.altered {
        out.push('\n');
        if database == Database::Sqlite && d.sqlite_rebuild() {
            out.push_str(&sqlite_rebuild(d));
            continue;
        }
        let t = ident(&d.new.name);
        for column in &d.added_columns {
            out.push_str(&format!(
                "ALTER TABLE {t} ADD COLUMN {};\n",
                database.column_definition(d.new, column)
            ));
            if database == Database::Postgres
                && let Some(fk) = d.new.foreign_key(&column.name)
            {
                foreign_keys.push(database.add_foreign_key(d.new, fk));
            }
        }
        // Only PostgreSQL gets here with altered columns or foreign keys.
        for (old, new) in &d.altered_columns {
            out.push_str(&postgres_alter_column(d.new, old, new));
        }
        for fk in &d.dropped_foreign_keys {
            out.push_str(&format!(
                "ALTER TABLE {t} DROP CONSTRAINT {};\n",
                ident(&fk.name)
            ));
        }
        for index in &d.dropped_indexes {
            out.push_str(&format!("DROP INDEX {};\n", ident(&index.name)));
        }
        for index in &d.added_indexes {
            out.push_str(&database.create_index(d.new, index));
        }
        for fk in &d.added_foreign_keys {
            foreign_keys.push(database.add_foreign_key(d.new, fk));
        }
    }
    if !foreign_keys.is_empty() {
        out.push('\n');
        out.push_str(&foreign_keys.concat());
    }
    if rebuilds {
        out.push_str("\nCOMMIT;\nPRAGMA foreign_keys = ON;\n");
    }
    out
}

/// SQLite's way to change a column's constraints: a new table with the new definition, the
/// rows copied over (NULLs of a column that became NOT NULL take its default), the old table
/// dropped and the new one renamed, its indexes made again.
fn sqlite_rebuild(d: &TableDiff<'_>) -> String {
    let db = Database::Sqlite;
    let temporary = format!("herald_rebuild_{}", d.new.name);
    let mut out = db.create_table_named(d.new, &temporary);
    let mut targets = Vec::new();
    let mut sources = Vec::new();
    for column in &d.new.columns {
        let Some(old) = d.old.column(&column.name) else {
            continue;
        };
        let c = ident(&column.name);
        targets.push(c.clone());
        sources.push(match (&column.default, old.not_null, column.not_null) {
            (Some(default), false, true) => {
                format!("COALESCE({c}, {})", db.default_literal(default))
            }
            _ => c,
        });
    }
    out.push_str(&format!(
        "INSERT INTO {} ({}) SELECT {} FROM {};\n",
        ident(&temporary),
        targets.join(", "),
        sources.join(", "),
        ident(&d.old.name)
    ));
    out.push_str(&format!("DROP TABLE {};\n", ident(&d.old.name)));
    out.push_str(&format!(
        "ALTER TABLE {} RENAME TO {};\n",
        ident(&temporary),
        ident(&d.new.name)
    ));
    for index in &d.new.indexes {
        out.push_str(&db.create_index(d.new, index));
    }
    out
}

fn postgres_alter_column(table: &Table, old: &Column, new: &Column) -> String {
    let db = Database::Postgres;
    let t = ident(&table.name);
    let c = ident(&new.name);
    let mut out = String::new();
    if old.default != new.default {
        out.push_str(&match &new.default {
            Some(default) => format!(
                "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {};\n",
                db.default_literal(default)
            ),
            None => format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;\n"),
        });
    }
    if old.not_null != new.not_null {
        if new.not_null {
            if let Some(default) = &new.default {
                out.push_str(&format!(
                    "UPDATE {t} SET {c} = {} WHERE {c} IS NULL;\n",
                    db.default_literal(default)
                ));
            }
            out.push_str(&format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\n"));
        } else {
            out.push_str(&format!(
                "ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;\n"
            ));
        }
    }
    if !old.same_check(new) {
        let name = ident(&sql::object_name(&table.name, &new.name, "check"));
        out.push_str(&format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {name};\n"
        ));
        if let Some(check) = db.check(new) {
            out.push_str(&format!(
                "ALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({check});\n"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_are_read_as_sqlx_reads_them() {
        let generated = ExistingMigration::from_file(
            "0002_alter_contacts.sql",
            "-- @generated by `x` from entities/\nALTER TABLE …",
        );
        assert_eq!(
            generated,
            Some(ExistingMigration {
                version: 2,
                file_name: "0002_alter_contacts.sql".into(),
                generated: true
            })
        );
        let by_hand =
            ExistingMigration::from_file("3_drop_phone.sql", "ALTER TABLE …").expect("a migration");
        assert_eq!((by_hand.version, by_hand.generated), (3, false));
        let no_tx = ExistingMigration::from_file(
            "0004_alter_contacts.sql",
            "-- no-transaction\n-- @generated by `x`\n",
        )
        .expect("a migration");
        assert!(no_tx.generated);
        assert_eq!(ExistingMigration::from_file("schema.sql", ""), None);
        assert_eq!(ExistingMigration::from_file("snapshot.json", ""), None);
        assert_eq!(ExistingMigration::from_file("x_y.sql", ""), None);
    }
}

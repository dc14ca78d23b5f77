//! Migrations on a sequence of YAML edits, each migration pinned as written for both
//! databases: the first tables, a new field, a new index, a new entity, changed CHECKs, a
//! refused destructive change and the hand-written migration that resolves it.

use std::collections::BTreeMap;

use herald_codegen::migrate::ExistingMigration;
use herald_codegen::{
    Database, FileKind, MigrationError, MigrationOptions, MigrationsDir, SourceMap, generate_sql,
};

const OPTIONS: MigrationOptions<'static> = MigrationOptions {
    regenerate: "codegen-cli generate",
    hand_written: false,
};

/// One database's migrations directory, in memory.
#[derive(Default, Clone)]
struct Dir {
    files: BTreeMap<String, String>,
}

impl Dir {
    fn read(&self) -> MigrationsDir {
        MigrationsDir {
            snapshot: self.files.get("snapshot.json").cloned(),
            migrations: self
                .files
                .iter()
                .filter_map(|(name, contents)| ExistingMigration::from_file(name, contents))
                .collect(),
        }
    }
}

/// Both databases' directories, and the run that updates them.
#[derive(Default)]
struct Project {
    dirs: BTreeMap<Database, Dir>,
}

impl Project {
    /// Generates for `entities` (file stem → YAML) and applies the files; returns the new
    /// migration of each database.
    fn generate(
        &mut self,
        entities: &[(&str, &str)],
        options: MigrationOptions<'_>,
    ) -> Result<Vec<(Database, Option<String>)>, Vec<MigrationError>> {
        let mut sources = SourceMap::new();
        for (name, yaml) in entities {
            sources.add(
                FileKind::Entity,
                format!("entities/{name}.yaml"),
                (*yaml).to_owned(),
            );
        }
        let model = herald_codegen::check(&sources)
            .unwrap_or_else(|d| panic!("valid YAML expected:\n{}", d.render(&sources)));
        let dirs: Vec<(Database, MigrationsDir)> = Database::ALL
            .into_iter()
            .map(|db| (db, self.dirs.entry(db).or_default().read()))
            .collect();
        let outputs = generate_sql(&model, &dirs, options)?;
        let mut new = Vec::new();
        for output in outputs {
            let dir = self.dirs.entry(output.database).or_default();
            for file in &output.files {
                dir.files
                    .insert(file.path.display().to_string(), file.contents.clone());
            }
            new.push((
                output.database,
                output
                    .new_migration
                    .map(|name| format!("{name}\n{}", dir.files[&name])),
            ));
        }
        Ok(new)
    }

    fn file(&self, db: Database, name: &str) -> &str {
        &self.dirs[&db].files[name]
    }
}

const ACCOUNT: &str = "\
entity: account
fields:
  name: { type: string, max_length: 200 }
relationships:
  contacts: { has_many: contact }
";

const CONTACT: &str = "\
entity:
  name: contact
fields:
  email: { type: string, required: true, max_length: 255 }
  phone: { type: string, required: false }
  status: { type: enum, choices: [active, archived], default: active }
  lifetime_value: { type: decimal, nullable: true }
  vip: { type: boolean, default: false }
  settings: { type: json, nullable: true }
  birthday: { type: date, nullable: true }
relationships:
  account: { type: belongs_to, target: account, nullable: true }
behaviors: [timestamps, soft_delete]
queries:
  - by: [email]
    unique: true
";

fn pin(name: &str, migrations: &[(Database, Option<String>)]) {
    for (db, migration) in migrations {
        let migration = migration
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no {} migration", db.title()));
        insta::assert_snapshot!(format!("{name}__{}", db.as_str()), migration);
    }
}

#[test]
fn a_sequence_of_edits_gets_one_migration_each() {
    let mut project = Project::default();

    // 1. The first tables.
    let first = project
        .generate(&[("account", ACCOUNT), ("contact", CONTACT)], OPTIONS)
        .expect("new tables");
    pin("1_create_tables", &first);
    for db in Database::ALL {
        insta::assert_snapshot!(
            format!("1_schema__{}", db.as_str()),
            project.file(db, "schema.sql")
        );
    }
    insta::assert_snapshot!(
        "1_snapshot",
        project.file(Database::Sqlite, "snapshot.json")
    );
    assert_eq!(
        project.file(Database::Sqlite, "snapshot.json"),
        project.file(Database::Postgres, "snapshot.json")
    );

    // Nothing changed: no migration.
    let again = project
        .generate(&[("account", ACCOUNT), ("contact", CONTACT)], OPTIONS)
        .expect("no change");
    assert!(again.iter().all(|(_, m)| m.is_none()), "{again:?}");

    // 2. Fields: one nullable, one required with a default.
    let contact = CONTACT.replace(
        "  birthday:",
        "  score: { type: decimal, nullable: true }\n  visits: { type: integer, default: 0 }\n  birthday:",
    );
    let added = project
        .generate(&[("account", ACCOUNT), ("contact", &contact)], OPTIONS)
        .expect("additive");
    pin("2_add_fields", &added);

    // 3. An index on a field and a finder's index.
    let contact = contact
        .replace(
            "  phone: { type: string, required: false }",
            "  phone: { type: string, required: false, index: true }",
        )
        .replace(
            "queries:\n",
            "queries:\n  - by: [account_id, status]\n    order: email\n",
        );
    let indexed = project
        .generate(&[("account", ACCOUNT), ("contact", &contact)], OPTIONS)
        .expect("additive");
    pin("3_add_indexes", &indexed);

    // 4. A new entity, with a foreign key to an existing table.
    let deal = "entity: deal\nfields:\n  amount: { type: decimal }\nrelationships:\n  contact: { belongs_to: contact }\n";
    let account = format!("{ACCOUNT}  deals: {{ has_many: deal, foreign_key: account_id }}\n");
    let deal = format!("{deal}  account: {{ belongs_to: account, nullable: true }}\n");
    let entities = [
        ("account", account.as_str()),
        ("contact", &contact),
        ("deal", &deal),
    ];
    let created = project.generate(&entities, OPTIONS).expect("additive");
    pin("4_add_entity", &created);

    // 5. Changed CHECKs (a new choice, a longer text), a default and a relaxed NOT NULL:
    //    constraints swapped on PostgreSQL, the table rebuilt on SQLite.
    let contact = contact
        .replace(
            "choices: [active, archived]",
            "choices: [active, archived, blocked]",
        )
        .replace("max_length: 255", "max_length: 320")
        .replace(
            "vip: { type: boolean, default: false }",
            "vip: { type: boolean, default: true }",
        )
        .replace(
            "  email: { type: string, required: true, max_length: 320 }",
            "  email: { type: string, nullable: true, max_length: 320 }",
        );
    let entities = [
        ("account", account.as_str()),
        ("contact", &contact),
        ("deal", &deal),
    ];
    let changed = project.generate(&entities, OPTIONS).expect("in place");
    pin("5_change_checks", &changed);

    // 6. Destructive: a dropped field, a changed type, a new required field without a
    //    default, a renamed table. Refused for both databases, nothing written.
    let before: Vec<BTreeMap<String, String>> =
        project.dirs.values().map(|d| d.files.clone()).collect();
    let destructive = contact
        .replace(
            "  phone: { type: string, required: false, index: true }\n",
            "",
        )
        .replace(
            "  visits: { type: integer, default: 0 }",
            "  visits: { type: decimal, default: 0 }",
        )
        .replace("  birthday:", "  nickname: { type: string }\n  birthday:");
    let renamed_deal = deal.replace(
        "entity: deal",
        "entity: { name: deal, table: opportunities }",
    );
    let entities = [
        ("account", account.as_str()),
        ("contact", &destructive),
        ("deal", &renamed_deal),
    ];
    let errors = project
        .generate(&entities, OPTIONS)
        .expect_err("destructive changes are refused");
    let after: Vec<BTreeMap<String, String>> =
        project.dirs.values().map(|d| d.files.clone()).collect();
    assert_eq!(before, after, "a refused run writes nothing");
    let report: Vec<String> = errors
        .iter()
        .map(|error| match error {
            MigrationError::Refused { refusals, next, .. } => format!(
                "{error}\n{}\nnext: {next}",
                refusals
                    .iter()
                    .map(|r| format!("  - {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            other => panic!("expected a refusal, got {other}"),
        })
        .collect();
    insta::assert_snapshot!("6_refused", report.join("\n\n"));

    // 7. The user writes that migration by hand and records it: the snapshot moves on,
    //    Herald writes no migration.
    for db in Database::ALL {
        project.dirs.get_mut(&db).expect("dir").files.insert(
            "0006_by_hand.sql".into(),
            "-- the changes of step 6\n".into(),
        );
    }
    let recorded = project
        .generate(
            &entities,
            MigrationOptions {
                hand_written: true,
                ..OPTIONS
            },
        )
        .expect("recorded");
    assert!(recorded.iter().all(|(_, m)| m.is_none()), "{recorded:?}");
    assert!(
        project
            .file(Database::Postgres, "snapshot.json")
            .contains("\"migration\": 6")
    );
    let settled = project.generate(&entities, OPTIONS).expect("no change");
    assert!(settled.iter().all(|(_, m)| m.is_none()), "{settled:?}");

    // 8. The next additive change continues after the hand-written migration.
    let more = destructive.replace(
        "  birthday:",
        "  note: { type: string, nullable: true }\n  birthday:",
    );
    let entities = [
        ("account", account.as_str()),
        ("contact", &more),
        ("deal", &renamed_deal),
    ];
    let next = project.generate(&entities, OPTIONS).expect("additive");
    assert!(
        next.iter().all(|(_, m)| m
            .as_deref()
            .is_some_and(|m| m.starts_with("0007_alter_contacts.sql"))),
        "{next:?}"
    );
}

#[test]
fn recording_hand_written_migrations_needs_one() {
    let mut project = Project::default();
    project
        .generate(&[("account", ACCOUNT), ("contact", CONTACT)], OPTIONS)
        .expect("new tables");
    let without_phone = CONTACT.replace("  phone: { type: string, required: false }\n", "");
    let errors = project
        .generate(
            &[("account", ACCOUNT), ("contact", &without_phone)],
            MigrationOptions {
                hand_written: true,
                ..OPTIONS
            },
        )
        .expect_err("no hand-written migration yet");
    assert!(
        errors.iter().all(|e| matches!(
            e,
            MigrationError::NoHandWrittenMigration { after: 1, next, .. } if next == "0002_<describe>.sql"
        )),
        "{errors:?}"
    );
}

#[test]
fn a_lost_snapshot_is_an_error_not_a_second_create() {
    let mut project = Project::default();
    project
        .generate(&[("account", ACCOUNT), ("contact", CONTACT)], OPTIONS)
        .expect("new tables");
    for dir in project.dirs.values_mut() {
        dir.files.remove("snapshot.json");
    }
    let errors = project
        .generate(&[("account", ACCOUNT), ("contact", CONTACT)], OPTIONS)
        .expect_err("snapshot lost");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, MigrationError::SnapshotMissing { .. })),
        "{errors:?}"
    );
}

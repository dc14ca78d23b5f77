//! The generated entity repositories on real databases: the example domain's migrations
//! applied with sqlx's migrator, then every read and write of `contact` (the ancestor's form,
//! soft delete, user tracking, `emits:` bound to the row), `account` (the short form, JSON)
//! and the read-only `opportunity`. Each scenario runs on SQLite and on PostgreSQL.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use herald::chrono::NaiveDate;
use herald::ops::RunFilter;
use herald::rust_decimal::Decimal;
use herald::uuid::Uuid;
use herald::{Envelope, Jobs, Page, RepositoryBackend, RepositoryError, Rows, Store};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::entities::{
    Account, AccountPlan, AccountRepository, ContactPatch, ContactRepository, ContactSearchFilter,
    ContactStatus, NewAccount, NewContact, Opportunity, OpportunityPipelineFilter,
    OpportunityRepository, OpportunityStage,
};
use integration_tests::domain::events::{AccountCreated, ContactCreated, ContactUpdated};
use integration_tests::jobs::SyncContact;

const ACTOR: Uuid = Uuid::from_u128(0xac7);

fn migrations(database: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/crm/migrations")
        .join(database)
}

/// Records what a subscriber saw.
#[derive(Clone)]
struct Seen<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone + Send + 'static> Seen<T> {
    fn new() -> Self {
        Self(Arc::default())
    }
    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

/// What the subscriber `name` of payloads `E` receives.
fn record<B: RepositoryBackend, E>(bus: &TypedEventBus<B>, name: &str) -> Seen<E>
where
    E: herald::InCatalog<integration_tests::domain::AppEvent>
        + herald::serde::de::DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    let seen = Seen::new();
    let sink = seen.clone();
    bus.subscribe(name, move |e: Envelope<E>| {
        let sink = sink.clone();
        async move {
            sink.0.lock().unwrap().push(e.payload);
            Ok::<_, herald::HandlerError>(())
        }
    });
    seen
}

async fn drain<B: RepositoryBackend>(bus: &TypedEventBus<B>) {
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        bus.drain().run_until_idle(),
    )
    .await
    .expect("the drain goes idle")
    .expect("the drain runs");
}

fn new_contact(email: &str, name: &str) -> NewContact {
    NewContact {
        email: email.to_owned(),
        name: name.to_owned(),
        phone: None,
        status: None,
        lifetime_value: None,
        birthday: None,
        account_id: None,
    }
}

async fn an_account<B: RepositoryBackend>(bus: &TypedEventBus<B>, name: &str) -> Account {
    let mut tx = bus.store().begin().await.unwrap();
    let account = AccountRepository::new(bus)
        .insert(
            &mut tx,
            NewAccount {
                name: name.to_owned(),
                plan: AccountPlan::Team,
                seats: 5,
                metadata: Some(herald::serde_json::json!({"region": "eu", "tags": [1, 2]})),
            },
        )
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();
    account
}

async fn insert_publishes_its_event_and_jobs_in_the_same_transaction<B: RepositoryBackend>(
    store: Store<B>,
) {
    let bus = TypedEventBus::new(store).with_jobs(Jobs::new().register::<SyncContact>());
    let created: Seen<ContactCreated> = record(&bus, "created");
    let account = an_account(&bus, "Initech").await;
    let contacts = ContactRepository::new(&bus);

    let mut tx = bus.store().begin().await.unwrap();
    let mut new = new_contact("ada@example.com", "Ada");
    new.account_id = Some(account.id);
    let contact = contacts.insert(&mut tx, new, ACTOR).await.unwrap();
    bus.store().commit(tx).await.unwrap();

    assert_eq!(contact.status, ContactStatus::Active, "the YAML default");
    assert_eq!(
        (contact.created_by, contact.updated_by),
        (Some(ACTOR), Some(ACTOR))
    );
    assert_eq!(contact.created_at, contact.updated_at);
    assert_eq!(contact.deleted_at, None);
    let mut conn = bus.store().acquire().await.unwrap();
    assert_eq!(
        contacts.get(&mut conn, contact.id).await.unwrap(),
        Some(contact.clone()),
        "the row reads back exactly as inserted"
    );
    drop(conn);
    drain(&bus).await;
    assert_eq!(
        created.all(),
        vec![ContactCreated {
            contact_id: contact.id,
            account_id: Some(account.id),
            created_by: ACTOR,
        }],
        "payload fields bound to the row by name, created_by to the actor"
    );
    let runs = bus
        .store()
        .jobs()
        .list(&RunFilter::default())
        .await
        .unwrap();
    assert_eq!(
        runs.len(),
        1,
        "contact_created's job was enqueued: {runs:?}"
    );
}

async fn a_rolled_back_insert_leaves_no_row_no_event_no_job<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store).with_jobs(Jobs::new().register::<SyncContact>());
    let contacts = ContactRepository::new(&bus);
    let mut tx = bus.store().begin().await.unwrap();
    let contact = contacts
        .insert(&mut tx, new_contact("gone@example.com", "Gone"), ACTOR)
        .await
        .unwrap();
    drop(tx);

    let mut conn = bus.store().acquire().await.unwrap();
    assert_eq!(contacts.get(&mut conn, contact.id).await.unwrap(), None);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!((stats.pending_events, stats.processed_events), (0, 0));
    let runs = bus
        .store()
        .jobs()
        .list(&RunFilter::default())
        .await
        .unwrap();
    assert!(runs.is_empty(), "{runs:?}");
}

async fn a_refused_row_takes_its_event_with_it<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let contacts = ContactRepository::new(&bus);
    let mut tx = bus.store().begin().await.unwrap();
    contacts
        .insert(&mut tx, new_contact("twice@example.com", "First"), ACTOR)
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();

    let mut tx = bus.store().begin().await.unwrap();
    let error = contacts
        .insert(&mut tx, new_contact("twice@example.com", "Second"), ACTOR)
        .await
        .expect_err("the unique index of `find_by_email` refuses a second row");
    assert!(error.is_unique_violation(), "{error}");
    drop(tx);
    let stats = bus.store().stats().await.unwrap();
    assert_eq!(stats.pending_events, 1, "only the first contact's event");
}

async fn update_writes_the_patch_and_publishes_what_changed<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let updated: Seen<ContactUpdated> = record(&bus, "updated");
    let contacts = ContactRepository::new(&bus);
    let mut tx = bus.store().begin().await.unwrap();
    let before = contacts
        .insert(&mut tx, new_contact("grace@example.com", "Grace"), ACTOR)
        .await
        .unwrap();
    let editor = Uuid::from_u128(0xed);
    let after = contacts
        .update(
            &mut tx,
            before.id,
            ContactPatch {
                name: Some("Grace Hopper".into()),
                // Written, but not a change: the event says nothing of it.
                email: Some("grace@example.com".into()),
                phone: Some(Some("+1 555".into())),
                ..ContactPatch::default()
            },
            editor,
            vec!["navy".into()],
        )
        .await
        .unwrap();
    bus.store().commit(tx).await.unwrap();

    assert_eq!(after.name, "Grace Hopper");
    assert_eq!(after.phone.as_deref(), Some("+1 555"));
    assert_eq!(after.email, before.email);
    assert_eq!(
        (after.created_by, after.updated_by),
        (Some(ACTOR), Some(editor))
    );
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(after.created_at, before.created_at);
    drain(&bus).await;
    assert_eq!(
        updated.all(),
        vec![ContactUpdated {
            contact_id: before.id,
            email: None,
            name: Some("Grace Hopper".into()),
            tags: vec!["navy".into()],
            updated_by: editor,
        }]
    );

    let mut tx = bus.store().begin().await.unwrap();
    let missing = Uuid::from_u128(404);
    let error = contacts
        .update(&mut tx, missing, ContactPatch::default(), editor, vec![])
        .await
        .expect_err("no such contact");
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.to_string(), format!("no contact with id {missing}"));
}

async fn soft_delete_hides_the_row_from_every_read<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let contacts = ContactRepository::new(&bus);
    let mut tx = bus.store().begin().await.unwrap();
    let kept = contacts
        .insert(&mut tx, new_contact("kept@example.com", "Kept"), ACTOR)
        .await
        .unwrap();
    let deleted = contacts
        .insert(
            &mut tx,
            new_contact("deleted@example.com", "Deleted"),
            ACTOR,
        )
        .await
        .unwrap();
    contacts.delete(&mut tx, deleted.id, ACTOR).await.unwrap();
    bus.store().commit(tx).await.unwrap();

    let mut conn = bus.store().acquire().await.unwrap();
    assert_eq!(contacts.get(&mut conn, deleted.id).await.unwrap(), None);
    assert_eq!(
        contacts
            .find_by_email(&mut conn, "deleted@example.com")
            .await
            .unwrap(),
        None
    );
    let listed: Vec<Uuid> = contacts
        .list(&mut conn, Page::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![kept.id]);
    let searched = contacts
        .search(&mut conn, ContactSearchFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(searched.len(), 1);

    let with_deleted = contacts.including_deleted();
    let row = with_deleted
        .get(&mut conn, deleted.id)
        .await
        .unwrap()
        .expect("asked for deleted rows");
    assert!(row.deleted_at.is_some());
    assert_eq!(
        with_deleted
            .list(&mut conn, Page::default())
            .await
            .unwrap()
            .len(),
        2
    );
    drop(conn);

    let mut tx = bus.store().begin().await.unwrap();
    let again = contacts.delete(&mut tx, deleted.id, ACTOR).await;
    assert!(
        again.is_err_and(|e| e.is_not_found()),
        "deleted once already"
    );
    let update = contacts
        .update(&mut tx, deleted.id, ContactPatch::default(), ACTOR, vec![])
        .await;
    assert!(
        update.is_err_and(|e| e.is_not_found()),
        "a deleted row is not updated"
    );
}

async fn finders_filter_order_and_page<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let contacts = ContactRepository::new(&bus);
    let (initech, globex) = (
        an_account(&bus, "Initech").await,
        an_account(&bus, "Globex").await,
    );
    let mut tx = bus.store().begin().await.unwrap();
    let mut ids = Vec::new();
    for (n, (name, account, status)) in [
        ("Peter Gibbons", initech.id, ContactStatus::Active),
        ("Milton Waddams", initech.id, ContactStatus::Archived),
        ("Samir Nagheenanajar", initech.id, ContactStatus::Active),
        ("Hank Scorpio", globex.id, ContactStatus::Active),
        ("100% _literal_ Pete", globex.id, ContactStatus::Active),
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = new_contact(&format!("c{n}@example.com"), name);
        new.account_id = Some(account);
        new.status = Some(status);
        ids.push(contacts.insert(&mut tx, new, ACTOR).await.unwrap().id);
    }
    bus.store().commit(tx).await.unwrap();
    let mut conn = bus.store().acquire().await.unwrap();

    let found = contacts
        .find_by_email(&mut conn, "c3@example.com")
        .await
        .unwrap()
        .expect("unique finder");
    assert_eq!(found.name, "Hank Scorpio");
    assert_eq!(
        contacts
            .find_by_email(&mut conn, "nobody@example.com")
            .await
            .unwrap(),
        None
    );

    // `order: created_at desc`, ties broken by id: the newest first.
    let created: Vec<_> = contacts
        .find_by_account_id(&mut conn, initech.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.created_at, c.id))
        .collect();
    assert_eq!(created.len(), 3);
    let expected = {
        let mut sorted = created.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        sorted
    };
    assert_eq!(created, expected);

    let names = |rows: Vec<integration_tests::domain::entities::Contact>| -> Vec<String> {
        rows.into_iter().map(|c| c.name).collect()
    };
    let active_at_initech = contacts
        .search(
            &mut conn,
            ContactSearchFilter {
                account_id: Some(initech.id),
                status: Some(ContactStatus::Active),
                search: None,
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        names(active_at_initech),
        vec!["Peter Gibbons", "Samir Nagheenanajar"],
        "both filters, `order: name`"
    );
    let pete = ContactSearchFilter {
        search: Some("PETE".into()),
        ..ContactSearchFilter::default()
    };
    assert_eq!(
        names(
            contacts
                .search(&mut conn, pete, Page::default())
                .await
                .unwrap()
        ),
        vec!["100% _literal_ Pete", "Peter Gibbons"],
        "case-insensitive containment"
    );
    let literal = ContactSearchFilter {
        search: Some("% _l".into()),
        ..ContactSearchFilter::default()
    };
    assert_eq!(
        names(
            contacts
                .search(&mut conn, literal, Page::default())
                .await
                .unwrap()
        ),
        vec!["100% _literal_ Pete"],
        "`%` and `_` in the text are literal"
    );
    let everyone = ContactSearchFilter::default();
    let first = contacts
        .search(&mut conn, everyone.clone(), Page::first(2))
        .await
        .unwrap();
    let second = contacts
        .search(&mut conn, everyone.clone(), Page::first(2).next())
        .await
        .unwrap();
    let third = contacts
        .search(&mut conn, everyone, Page::first(2).next().next())
        .await
        .unwrap();
    assert_eq!(
        [names(first), names(second), names(third)].concat(),
        vec![
            "100% _literal_ Pete",
            "Hank Scorpio",
            "Milton Waddams",
            "Peter Gibbons",
            "Samir Nagheenanajar"
        ],
        "pages in order, none repeated or skipped"
    );
    let listed: Vec<Uuid> = contacts
        .list(&mut conn, Page::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ids, "list is in id (creation) order");
}

async fn decimals_dates_enums_and_json_round_trip<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let contacts = ContactRepository::new(&bus);
    let account = an_account(&bus, "Umbrella").await;
    let value = Decimal::from_str("12345678901234567.125000").unwrap();
    let mut tx = bus.store().begin().await.unwrap();
    let mut new = new_contact("exact@example.com", "Exact");
    new.lifetime_value = Some(value);
    new.birthday = NaiveDate::from_ymd_opt(1815, 12, 10);
    new.status = Some(ContactStatus::Archived);
    new.phone = Some("+44 20".into());
    let contact = contacts.insert(&mut tx, new, ACTOR).await.unwrap();
    bus.store().commit(tx).await.unwrap();

    let mut conn = bus.store().acquire().await.unwrap();
    let read = contacts.get(&mut conn, contact.id).await.unwrap().unwrap();
    assert_eq!(read, contact);
    let stored = read.lifetime_value.unwrap();
    assert_eq!(
        (stored.to_string(), stored.scale()),
        ("12345678901234567.125000".to_owned(), 6),
        "exact, scale kept"
    );
    assert_eq!(read.status, ContactStatus::Archived);
    let account_read = AccountRepository::new(&bus)
        .get(&mut conn, account.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account_read, account);
    assert_eq!(
        account_read.metadata,
        Some(herald::serde_json::json!({"region": "eu", "tags": [1, 2]}))
    );

    // The short-form entity publishes its `account_created` with its columns.
    let seen: Seen<AccountCreated> = record(&bus, "accounts");
    drain(&bus).await;
    let created: Vec<AccountCreated> = seen.all();
    assert!(created.contains(&AccountCreated {
        account_id: account.id,
        name: "Umbrella".into(),
        plan: "team".into(),
    }));
}

/// `opportunity` is `generate: { writes: false }`: its rows come from elsewhere (here the
/// runtime's `Rows`, as a CRM sync would write them) and its repository only reads.
async fn a_read_only_entity_reads_with_its_finders<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let account = an_account(&bus, "Acme").await;
    let now = bus.store().now();
    let mut tx = bus.store().begin().await.unwrap();
    for (n, (stage, closes)) in [
        (OpportunityStage::Won, 3),
        (OpportunityStage::Prospect, 1),
        (OpportunityStage::Won, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let row = Opportunity {
            id: Uuid::now_v7(),
            name: format!("deal {n}"),
            amount: Decimal::new(1999, 2),
            stage,
            probability: 50,
            closes_on: NaiveDate::from_ymd_opt(2027, 1, closes),
            account_id: account.id,
            created_at: now,
            updated_at: now,
        };
        Rows::<Opportunity>::insert::<B>(&mut tx, &row)
            .await
            .unwrap();
    }
    bus.store().commit(tx).await.unwrap();

    let opportunities = OpportunityRepository::new(&bus);
    let mut conn = bus.store().acquire().await.unwrap();
    let won: Vec<String> = opportunities
        .pipeline(
            &mut conn,
            OpportunityPipelineFilter {
                stage: Some(OpportunityStage::Won),
            },
            Page::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(won, vec!["deal 2", "deal 0"], "`order: closes_on`");
    let of_account = opportunities
        .find_by_account_id(&mut conn, account.id)
        .await
        .unwrap();
    assert_eq!(
        of_account
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        vec!["deal 0", "deal 2", "deal 1"],
        "`order: closes_on desc`"
    );
    assert_eq!(of_account[0].amount, Decimal::new(1999, 2));
}

async fn a_missing_table_says_to_apply_the_migrations<B: RepositoryBackend>(store: Store<B>) {
    let bus = TypedEventBus::new(store);
    let mut conn = bus.store().acquire().await.unwrap();
    let error: RepositoryError = ContactRepository::new(&bus)
        .get(&mut conn, Uuid::from_u128(1))
        .await
        .expect_err("no contacts table");
    assert!(
        matches!(&error, RepositoryError::TableMissing { entity: "contact", table } if table == "contacts"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("apply the entity migrations"),
        "{error}"
    );
}

/// A filter on a column the entity does not have is refused in Herald's words, before any SQL.
async fn a_select_of_an_unknown_column_names_it<B: RepositoryBackend>(store: Store<B>) {
    let mut conn = store.acquire().await.unwrap();
    for select in [
        herald::Select::new().eq("emial", "ada@example.com"),
        herald::Select::new().search("nmae", "ada"),
        herald::Select::new().order_by(&[("craeted_at", true)]),
    ] {
        let error =
            Rows::<integration_tests::domain::entities::Contact>::fetch::<B>(&mut conn, select)
                .await
                .expect_err("no such column");
        assert!(
            matches!(&error, RepositoryError::Column { entity: "contact", reason, .. }
                if reason == "the entity has no such column"),
            "{error:?}"
        );
    }
}

/// Each scenario on SQLite and on PostgreSQL, with the example's migrations applied by sqlx's
/// migrator (what `sqlx migrate run` does), unless `bare` says to leave the database without
/// them.
macro_rules! on_sql_backends {
    ($($scenario:ident $(($bare:ident))?),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (_dir, store) = integration_tests::support::sqlite().await;
                    if !stringify!($($bare)?).contains("bare") {
                        let migrator = sqlx::migrate::Migrator::new(super::migrations("sqlite"))
                            .await
                            .unwrap();
                        migrator.run(store.backend().pool()).await.unwrap();
                    }
                    super::$scenario(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(schema) =
                        integration_tests::support::PostgresSchema::create(stringify!($scenario))
                            .await
                    else {
                        return;
                    };
                    let store = schema.store(5).await;
                    if !stringify!($($bare)?).contains("bare") {
                        let migrator =
                            sqlx::migrate::Migrator::new(super::migrations("postgres"))
                                .await
                                .unwrap();
                        migrator.run(store.backend().pool()).await.unwrap();
                    }
                    super::$scenario(store).await;
                    schema.drop().await;
                }
            )*
        }
    };
}

on_sql_backends!(
    insert_publishes_its_event_and_jobs_in_the_same_transaction,
    a_rolled_back_insert_leaves_no_row_no_event_no_job,
    a_refused_row_takes_its_event_with_it,
    update_writes_the_patch_and_publishes_what_changed,
    soft_delete_hides_the_row_from_every_read,
    finders_filter_order_and_page,
    decimals_dates_enums_and_json_round_trip,
    a_read_only_entity_reads_with_its_finders,
    a_missing_table_says_to_apply_the_migrations(bare),
    a_select_of_an_unknown_column_names_it,
);

//! The contact aggregate against real databases (SQLite, PostgreSQL when
//! `HERALD_TEST_POSTGRES_URL` names a server, memory): execute, atomic append with jobs,
//! optimistic concurrency, snapshots, upcasting, unknown event types.

use crm::contact::{Contact, ContactCommand, ContactError};
use crm::generated::TypedEventBus;
use crm::generated::events::{ContactCreated, ContactUpdated};
use crm::jobs::ArchivedContact;
use herald::chrono::{DateTime, Utc};
use herald::ops::RunFilter;
use herald::testing::RawEvent;
use herald::uuid::Uuid;
use herald::{
    Backend, Catalog, CommandContext, Decide, Envelope, EventBus, EventDescriptor, ExecuteError,
    HandlerError, InCatalog, JobQueue, ProjectedEvent, Projection, ProjectionError, Projector,
    Publish, PublishError, Registry, Store, StoreError,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

const USER: Uuid = Uuid::from_u128(9);

fn noon() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

fn create(id: Uuid) -> ContactCommand {
    ContactCommand::Create {
        contact_id: id,
        account_id: None,
        created_by: USER,
    }
}

fn rename(name: &str) -> ContactCommand {
    ContactCommand::Update {
        email: None,
        name: Some(name.to_owned()),
        tags: vec![name.to_lowercase()],
        updated_by: USER,
    }
}

/// A version-1 `contact_updated` (no `tags`), as an older release wrote it.
fn contact_updated_v1(id: Uuid) -> herald::serde_json::Value {
    herald::serde_json::json!({
        "contact_id": id, "email": null, "name": "Old", "updated_by": USER
    })
}

/// Commits a row written the way another release would have.
async fn store_raw<B: Backend>(store: &Store<B>, event: RawEvent) {
    let mut tx = store.begin().await.unwrap();
    event.insert(store, &mut tx).await.unwrap();
    store.commit(tx).await.unwrap();
}

/// The registry of an application that keeps no earlier version of `contact_updated` (no
/// `events/contact_updated.v1.yaml`): what upcasts its version-1 events is registered as JSON
/// on the bus, or nothing does. The crm's own registry keeps version 1, so that every one of
/// its buses upcasts it with the typed `UpcastFrom<ContactUpdatedV1>` of `crm::contact`.
struct JsonOnly;

static JSON_ONLY: Registry = Registry::new(&[
    EventDescriptor::of::<ContactCreated>(),
    EventDescriptor::of::<ContactUpdated>(),
]);

impl Catalog for JsonOnly {
    fn registry() -> &'static Registry {
        &JSON_ONLY
    }
}

impl InCatalog<JsonOnly> for ContactCreated {}
impl InCatalog<JsonOnly> for ContactUpdated {}

fn json_only_bus<B: Backend>(store: &Store<B>) -> EventBus<JsonOnly, B> {
    EventBus::new(store.clone())
}

/// `contact_updated` version 1 had no `tags`: the JSON form of `UpcastFrom<ContactUpdatedV1>`.
fn tags_were_added_in_v2(
    mut payload: herald::serde_json::Value,
) -> Result<herald::serde_json::Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("a contact_updated payload is an object")?;
    object.insert("tags".into(), herald::serde_json::json!([]));
    Ok(payload)
}

async fn execute_appends_in_sequence_with_jobs<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<Contact>();
    let id = Uuid::now_v7();
    let created = contacts.execute(id, create(id)).await.unwrap();
    assert_eq!(created.sequence, 1);
    contacts.execute(id, rename("Ada")).await.unwrap();
    let archived = contacts
        .execute(
            id,
            ContactCommand::Archive {
                at: noon(),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.sequence, 3);
    assert!(archived.state.archived);
    let loaded = contacts.load(id).await.unwrap();
    assert_eq!(loaded.sequence, 3);
    assert_eq!(loaded.state, archived.state);
    assert_eq!(loaded.state.name.as_deref(), Some("Ada"));

    // The events are outbox rows, and the archive's job was enqueued with its event.
    assert_eq!(store.stats().await.unwrap().pending_events, 3);
    let runs = store
        .jobs()
        .list(&RunFilter::default().scope("contact", id))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].job, "notify_contact_archived");
    assert_eq!(runs[0].event_id, Some(archived.event_ids[0]));
    assert_eq!(
        runs[0].input,
        herald::serde_json::to_value(ArchivedContact { contact_id: id }).unwrap()
    );

    // A refused command appends and enqueues nothing.
    let refused = contacts.execute(id, rename("Bob")).await.unwrap_err();
    assert!(matches!(
        refused,
        ExecuteError::Rejected(ContactError::Archived(_))
    ));
    assert_eq!(contacts.load(id).await.unwrap().sequence, 3);
    assert_eq!(
        store
            .jobs()
            .list(&RunFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_stale_append_loses_and_execute_decides_again<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<Contact>();
    let id = Uuid::now_v7();
    contacts.execute(id, create(id)).await.unwrap();
    // A writer decides on sequence 1 ...
    let stale = contacts.load(id).await.unwrap();
    let mut jobs = JobQueue::new();
    let events = stale.state.decide(rename("Late"), &mut jobs).unwrap();
    // ... while another appends sequence 2 first.
    contacts.execute(id, rename("First")).await.unwrap();
    let lost = contacts
        .append(&id.to_string(), stale, events, jobs)
        .await
        .unwrap_err();
    assert!(
        matches!(
            lost,
            ExecuteError::Store(StoreError::Conflict)
                | ExecuteError::Publish(herald::PublishError::Store(StoreError::Conflict))
        ),
        "{lost:?}"
    );
    let loaded = contacts.load(id).await.unwrap();
    assert_eq!(loaded.sequence, 2);
    assert_eq!(loaded.state.name.as_deref(), Some("First"));
}

async fn racing_writers_never_gap_or_duplicate<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let id = Uuid::now_v7();
    bus.aggregates::<Contact>()
        .execute(id, create(id))
        .await
        .unwrap();
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let contacts = bus.aggregates::<Contact>().max_attempts(50);
            tokio::spawn(async move {
                for n in 0..15 {
                    contacts
                        .execute(id, rename(&format!("w{writer}-{n}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stream = store
        .backend()
        .load_stream("contact", &id.to_string(), 0)
        .await
        .unwrap();
    let sequences: Vec<i64> = stream.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, (1..=31).collect::<Vec<_>>());
    assert_eq!(
        bus.aggregates::<Contact>()
            .load(id)
            .await
            .unwrap()
            .state
            .updates,
        30
    );
}

async fn snapshots_equal_a_full_replay<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<Contact>().snapshot_every(3);
    let id = Uuid::now_v7();
    contacts.execute(id, create(id)).await.unwrap();
    for n in 0..10 {
        contacts
            .execute(id, rename(&format!("n{n}")))
            .await
            .unwrap();
    }
    let snapshot = store
        .backend()
        .load_snapshot("contact", &id.to_string())
        .await
        .unwrap()
        .expect("a snapshot was taken");
    assert_eq!(snapshot.0, 9, "every 3 events: the last at sequence 9");
    let from_snapshot = contacts.load(id).await.unwrap();
    let replayed = contacts.replay(id).await.unwrap();
    assert_eq!(from_snapshot, replayed);
    assert_eq!(from_snapshot.sequence, 11);
    assert_eq!(from_snapshot.state.updates, 10);
}

async fn old_versions_are_upcast_and_unknown_types_named<B: Backend>(store: Store<B>) {
    // The typed upcaster comes with the registry: nothing to register.
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<Contact>();
    let id = Uuid::now_v7();
    contacts.execute(id, create(id)).await.unwrap();
    store_raw(
        &store,
        RawEvent::change("contact_updated", 1, contact_updated_v1(id)).aggregate("contact", id, 2),
    )
    .await;
    let loaded = contacts.load(id).await.unwrap();
    assert_eq!(loaded.state.name.as_deref(), Some("Old"));
    assert_eq!(loaded.state.updates, 1);

    // Without any upcaster (a registry that keeps no version 1, and no JSON upcaster), the old
    // version is an error that says what is missing.
    let error = json_only_bus(&store)
        .aggregates::<Contact>()
        .load(id)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no upcaster from version 1"),
        "{error}"
    );

    // An event type the code no longer knows is named.
    store_raw(
        &store,
        RawEvent::change("contact_merged", 1, herald::serde_json::json!({}))
            .aggregate("contact", id, 3),
    )
    .await;
    let error = contacts.load(id).await.unwrap_err();
    assert!(matches!(
        &error,
        ExecuteError::UnknownEventType { event_type, .. } if event_type == "contact_merged"
    ));
    assert!(error.to_string().contains("`contact_merged`"), "{error}");
}

/// Records what a projection folded, whatever the backend.
#[derive(Clone, Default)]
struct Folded(Arc<Mutex<Vec<(u32, herald::serde_json::Value)>>>);

impl<B: Backend> Projection<B> for Folded {
    fn name(&self) -> &str {
        "folded"
    }

    fn apply<'a>(
        &'a self,
        _tx: &'a mut B::Transaction<'static>,
        event: &'a ProjectedEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        if event.event_type == "contact_updated" {
            self.0
                .lock()
                .unwrap()
                .push((event.version, event.payload.clone()));
        }
        Box::pin(async { Ok(()) })
    }

    fn reset<'a>(
        &'a self,
        _tx: &'a mut B::Transaction<'static>,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        self.0.lock().unwrap().clear();
        Box::pin(async { Ok(()) })
    }
}

/// PostgreSQL projections read only below every open transaction of the database (tests of
/// other schemas included), so a committed event may take a moment to become readable.
async fn catch_up_one<B: Backend>(projector: &Projector<Folded, B>) -> u64 {
    for _ in 0..100 {
        match projector.catch_up().await.unwrap() {
            0 => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            folded => return folded,
        }
    }
    panic!("the event never became readable to the projection");
}

async fn catch_up_error<B: Backend>(projector: &Projector<Folded, B>) -> ProjectionError {
    for _ in 0..100 {
        match projector.catch_up().await {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Err(error) => return error,
        }
    }
    panic!("the event never became readable to the projection");
}

/// A deploy bumped `contact_updated` to version 2 while a version-1 event was still pending:
/// the typed upcaster of the kept version 1 (`impl UpcastFrom<ContactUpdatedV1> for
/// ContactUpdated` in `crm::contact`), which the registry carries, brings it to version 2 for
/// a subscriber, a projection and an aggregate load, with nothing registered on the bus.
async fn a_pending_old_version_reaches_every_consumer_upcast<B: Backend>(store: Store<B>) {
    let id = Uuid::now_v7();
    store_raw(
        &store,
        RawEvent::change("contact_updated", 1, contact_updated_v1(id)).aggregate("contact", id, 1),
    )
    .await;

    let bus = TypedEventBus::new(store.clone());
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let sink = delivered.clone();
    bus.subscribe("record", move |e: Envelope<ContactUpdated>| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((e.version, e.payload));
            Ok::<_, HandlerError>(())
        }
    });
    let summary = bus.drain().run_until_idle().await.unwrap();
    assert_eq!((summary.delivered, summary.retries_scheduled), (1, 0));
    let delivered = delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].0, 2,
        "the envelope carries the version of its payload"
    );
    assert_eq!(delivered[0].1.name.as_deref(), Some("Old"));
    assert!(delivered[0].1.tags.is_empty());

    let projector = bus.projector(Folded::default());
    assert_eq!(catch_up_one(&projector).await, 1);
    let folded = projector.projection().0.lock().unwrap().clone();
    assert_eq!(folded.len(), 1);
    assert_eq!(folded[0].0, 2);
    assert_eq!(folded[0].1["tags"], herald::serde_json::json!([]));

    let loaded = bus.aggregates::<Contact>().load(id).await.unwrap();
    assert_eq!(loaded.state.name.as_deref(), Some("Old"));
    assert!(loaded.state.tags.is_empty());
    assert_eq!(loaded.state.updates, 1);
}

/// Without the upcaster, a pending old version is a failed delivery whose error names the
/// upcaster to add, and a projection stops on it without moving its checkpoint.
async fn a_missing_upcaster_is_named_on_every_read_path<B: Backend>(store: Store<B>) {
    let id = Uuid::now_v7();
    store_raw(
        &store,
        RawEvent::change("contact_updated", 1, contact_updated_v1(id)),
    )
    .await;
    let bus = json_only_bus(&store);
    bus.subscribe("record", |_: Envelope<ContactUpdated>| async {
        Ok::<_, HandlerError>(())
    });
    let summary = bus.drain().run_until_idle().await.unwrap();
    assert_eq!((summary.delivered, summary.retries_scheduled), (0, 1));
    let projector = bus.projector(Folded::default());
    let error = catch_up_error(&projector).await;
    assert!(
        error
            .to_string()
            .contains("add `bus.upcast(\"contact_updated\", 1, ..)`"),
        "{error}"
    );
    assert!(projector.projection().0.lock().unwrap().is_empty());
}

/// On a multi-tenant store a command names its tenant, like a publish: without one it appends
/// nothing; with one, its events and its decision's jobs belong to the tenant.
async fn commands_on_a_multi_tenant_store_carry_their_tenant<B: Backend>(store: Store<B>) {
    let store = store.multi_tenant(true);
    let bus = TypedEventBus::new(store.clone());
    let contacts = bus.aggregates::<Contact>();
    let id = Uuid::now_v7();
    let refused = contacts.execute(id, create(id)).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ExecuteError::Publish(PublishError::TenantRequired {
                event_type: "contact_created"
            })
        ),
        "{refused}"
    );
    assert_eq!(store.stats().await.unwrap().pending_events, 0);

    let correlation = Uuid::now_v7();
    let acme = CommandContext::new()
        .tenant("acme")
        .correlation_id(correlation);
    contacts.execute_with(id, create(id), &acme).await.unwrap();
    contacts
        .execute_with(
            id,
            ContactCommand::Archive {
                at: noon(),
                reason: None,
            },
            &acme,
        )
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((e.tenant_id, e.correlation_id));
            Ok::<_, HandlerError>(())
        }
    });
    bus.drain().run_until_idle().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(Some("acme".to_owned()), Some(correlation))]
    );
    let runs = store
        .jobs()
        .list(&RunFilter::default().tenant("acme"))
        .await
        .unwrap();
    assert!(
        !runs.is_empty(),
        "the archive decision's job is the tenant's"
    );
    assert!(
        store
            .jobs()
            .list(&RunFilter::default())
            .await
            .unwrap()
            .iter()
            .all(|run| run.tenant_id.as_deref() == Some("acme"))
    );
}

/// A forwarder publishing an older version's payload by type name (a sender on the previous
/// release): it is upcast before it is checked, and stored at the current version. The JSON
/// form of the upcaster, for an application that keeps no earlier shape.
async fn an_old_untyped_payload_is_upcast_before_it_is_stored<B: Backend>(store: Store<B>) {
    let id = Uuid::now_v7();
    let v1 = contact_updated_v1(id);
    let without = json_only_bus(&store);
    let mut tx = store.begin().await.unwrap();
    let missing = without
        .publish_json(
            &mut tx,
            "contact_updated",
            Publish::new(v1.clone()).aggregate_id(id).payload_version(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, PublishError::Upcast { .. }), "{missing}");
    assert!(
        missing
            .to_string()
            .contains("bus.upcast(\"contact_updated\", 1, ..)"),
        "{missing}"
    );
    let newer = without
        .publish_json(
            &mut tx,
            "contact_updated",
            Publish::new(v1.clone()).aggregate_id(id).payload_version(3),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            newer,
            PublishError::NewerVersion {
                given: 3,
                current: 2,
                ..
            }
        ),
        "{newer}"
    );

    let bus = json_only_bus(&store);
    bus.upcast("contact_updated", 1, tags_were_added_in_v2);
    bus.publish_json(
        &mut tx,
        "contact_updated",
        Publish::new(v1).aggregate_id(id).payload_version(1),
    )
    .await
    .unwrap();
    store.commit(tx).await.unwrap();
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let sink = delivered.clone();
    bus.subscribe("record", move |e: Envelope<ContactUpdated>| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((e.version, e.payload.tags));
            Ok::<_, HandlerError>(())
        }
    });
    bus.drain().run_until_idle().await.unwrap();
    assert_eq!(*delivered.lock().unwrap(), vec![(2, Vec::<String>::new())]);
}

integration_tests::on_every_backend!(
    an_old_untyped_payload_is_upcast_before_it_is_stored,
    commands_on_a_multi_tenant_store_carry_their_tenant,
    a_pending_old_version_reaches_every_consumer_upcast,
    a_missing_upcaster_is_named_on_every_read_path,
    execute_appends_in_sequence_with_jobs,
    a_stale_append_loses_and_execute_decides_again,
    racing_writers_never_gap_or_duplicate,
    snapshots_equal_a_full_replay,
    old_versions_are_upcast_and_unknown_types_named,
);

/// A job input that cannot be serialized: enqueueing it fails after the events were inserted,
/// inside the append's transaction.
#[derive(Debug, Clone, serde::Deserialize)]
struct Unstorable;

impl serde::Serialize for Unstorable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this input cannot be stored"))
    }
}

#[herald::job_handler]
async fn never_stored(
    _ctx: herald::JobContext,
    _input: Unstorable,
) -> Result<(), herald::JobError> {
    Ok(())
}

/// Decides like a contact, then asks for a job whose input cannot be stored.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, herald::Aggregate)]
#[aggregate(entity = "contact", id = contact_id, events = crm::generated::ContactEvent)]
struct FragileContact {
    contact_id: Uuid,
    inner: Contact,
}

impl Decide for FragileContact {
    type Command = ContactCommand;
    type Error = ContactError;

    fn decide(
        &self,
        command: ContactCommand,
        jobs: &mut JobQueue,
    ) -> Result<Vec<crm::generated::ContactEvent>, ContactError> {
        let events = self.inner.decide(command, jobs)?;
        jobs.start::<NeverStored>(Unstorable);
        Ok(events)
    }

    fn apply(&mut self, event: &crm::generated::ContactEvent) {
        self.inner.apply(event);
        self.contact_id = self.inner.contact_id;
    }
}

async fn a_failure_after_the_insert_leaves_neither_events_nor_jobs<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone());
    let id = Uuid::now_v7();
    let error = bus
        .aggregates::<FragileContact>()
        .execute(id, create(id))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("this input cannot be stored"),
        "{error}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.pending_events + stats.processed_events,
        0,
        "{stats:?}"
    );
    assert!(
        store
            .jobs()
            .list(&RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        bus.aggregates::<Contact>().load(id).await.unwrap().sequence,
        0
    );
}

mod atomicity {
    integration_tests::on_every_backend!(a_failure_after_the_insert_leaves_neither_events_nor_jobs);
    use super::a_failure_after_the_insert_leaves_neither_events_nor_jobs;
}

#[test]
#[should_panic(
    expected = "cannot register an upcaster of `contact_renamed`: the registry has no such event"
)]
fn an_upcaster_of_an_unknown_event_is_a_wiring_mistake() {
    TypedEventBus::new(herald::memory()).upcast("contact_renamed", 1, tags_were_added_in_v2);
}

#[test]
#[should_panic(
    expected = "an upcaster of `contact_updated` from version 2 is never used: its current version is 2"
)]
fn an_upcaster_from_the_current_version_is_a_wiring_mistake() {
    TypedEventBus::new(herald::memory()).upcast("contact_updated", 2, tags_were_added_in_v2);
}

#[test]
#[should_panic(
    expected = "cannot register a JSON upcaster of `contact_updated` from version 1: that version is kept in `events/contact_updated.v1.yaml`"
)]
fn a_json_upcaster_of_a_kept_version_is_refused() {
    TypedEventBus::new(herald::memory()).upcast("contact_updated", 1, tags_were_added_in_v2);
}

#[test]
#[should_panic(expected = "that version is kept in `events/contact_updated.v1.yaml`")]
fn an_aggregate_store_refuses_a_json_upcaster_of_a_kept_version_too() {
    let _ = TypedEventBus::new(herald::memory())
        .aggregates::<Contact>()
        .upcast("contact_updated", 1, tags_were_added_in_v2);
}

#[test]
fn the_registry_carries_the_typed_upcaster_of_the_kept_version() {
    let descriptor = crm::generated::REGISTRY
        .get("contact_updated")
        .expect("a registered event");
    let kept: Vec<(u32, &str)> = descriptor.kept().iter().map(|k| (k.from, k.file)).collect();
    assert_eq!(kept, vec![(1, "events/contact_updated.v1.yaml")]);
    assert!(
        crm::generated::REGISTRY
            .iter()
            .all(|d| d.meta.event_type != "contact_updated_v1"),
        "a kept version is no event type of its own"
    );
}

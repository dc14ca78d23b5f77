//! Multi-tenancy of jobs: a run belongs to the tenant of the event that triggered it or of the
//! run that spawned it, a run started by hand on a multi-tenant store names its tenant, and
//! runs are queried by tenant. On SQLite, PostgreSQL (when `HERALD_TEST_POSTGRES_URL` names a
//! server) and memory. Children are spawned once, however often their parent is retried.

use std::time::Duration;

use herald::ops::{RunFilter, RunStatus};
use herald::uuid::Uuid;
use herald::{Backend, EnqueueError, Jobs, Publish, RetryTiming, Start, Store};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::jobs::{Nothing, Probe, RecordsItsTenant, SpawnsThenFailsOnce, SyncContact};

fn contact_created(contact: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::nil(),
    }
}

async fn triggered_runs_belong_to_their_events_tenant<B: Backend>(store: Store<B>) {
    let store = store.multi_tenant(true);
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let (acme, globex) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut tx = store.begin().await.unwrap();
    for (contact, tenant) in [(acme, "acme"), (globex, "globex")] {
        bus.publish_with(
            &mut tx,
            Publish::new(contact_created(contact))
                .aggregate_id(contact)
                .tenant(tenant),
        )
        .await
        .unwrap();
    }
    store.commit(tx).await.unwrap();

    let of_acme = store
        .jobs()
        .list(&RunFilter::default().tenant("acme"))
        .await
        .unwrap();
    assert_eq!(of_acme.len(), 1);
    assert_eq!(of_acme[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(of_acme[0].scope_id, Some(acme.to_string()));
    let all = store.jobs().list(&RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    let of_nobody = store
        .jobs()
        .list(&RunFilter::default().tenant("initech"))
        .await
        .unwrap();
    assert!(of_nobody.is_empty());
}

async fn a_run_started_on_a_multi_tenant_store_names_its_tenant<B: Backend>(store: Store<B>) {
    let store = store.multi_tenant(true);
    let mut tx = store.begin().await.unwrap();
    let refused = store
        .jobs()
        .start::<RecordsItsTenant>(&mut tx, Nothing {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            EnqueueError::TenantRequired {
                job: "records_its_tenant"
            }
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("Start::tenant(..)"),
        "{refused}"
    );
    let mine = store
        .jobs()
        .start_with::<RecordsItsTenant>(&mut tx, Start::new(Nothing {}).tenant("acme"))
        .await
        .unwrap();
    let nobodys = store
        .jobs()
        .start_with::<RecordsItsTenant>(&mut tx, Start::new(Nothing {}).without_tenant())
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let probe = Probe::default();
    let worker = TypedEventBus::new(store.clone())
        .with_jobs(Jobs::new().register::<RecordsItsTenant>())
        .worker()
        .state(probe.clone());
    assert_eq!(worker.run_until_idle().await.unwrap().completed, 2);
    let mut calls = probe.calls();
    calls.sort();
    assert_eq!(calls, vec!["tenant acme", "tenant none"]);
    let tenant_of = |run: Uuid| {
        let store = store.clone();
        async move { store.jobs().get(run).await.unwrap().unwrap().tenant_id }
    };
    assert_eq!(tenant_of(mine).await.as_deref(), Some("acme"));
    assert_eq!(tenant_of(nobodys).await, None);
}

async fn a_retried_parent_gets_its_child_back_in_its_tenant<B: Backend>(store: Store<B>) {
    let store = store.multi_tenant(true);
    let mut tx = store.begin().await.unwrap();
    let parent = store
        .jobs()
        .start_with::<SpawnsThenFailsOnce>(&mut tx, Start::new(Nothing {}).tenant("acme"))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let probe = Probe::default();
    let worker = TypedEventBus::new(store.clone())
        .with_jobs(
            Jobs::new()
                .register::<SpawnsThenFailsOnce>()
                .register::<RecordsItsTenant>(),
        )
        .worker()
        .state(probe.clone())
        .retry(RetryTiming {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        });
    worker.run_until_idle().await.unwrap();

    let done = store.jobs().get(parent).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempt), (RunStatus::Completed, 2));
    let tree = store
        .jobs()
        .list(&RunFilter::default().root(parent))
        .await
        .unwrap();
    let children: Vec<_> = tree.iter().filter(|run| run.id != parent).collect();
    assert_eq!(
        children.len(),
        1,
        "the retried parent spawned no second child"
    );
    let child = children[0];
    assert_eq!(done.output, Some(herald::serde_json::json!(child.id)));
    assert_eq!(child.parent_id, Some(parent));
    assert_eq!(child.tenant_id.as_deref(), Some("acme"));
    assert_eq!(child.status, RunStatus::Completed);
    assert_eq!(probe.calls(), vec!["tenant acme"]);
}

integration_tests::on_every_backend!(
    triggered_runs_belong_to_their_events_tenant,
    a_run_started_on_a_multi_tenant_store_names_its_tenant,
    a_retried_parent_gets_its_child_back_in_its_tenant,
);

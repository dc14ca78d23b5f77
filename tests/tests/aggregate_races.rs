//! `AggregateStore::execute` against a writer that appends to the same aggregate between each
//! load and append, as a concurrent writer winning the race would: every lost race decides
//! again on the new state, and when every attempt is lost the command fails with
//! `ExecuteError::Concurrency` and appends nothing. The rival is made deterministic by running
//! inside the decision itself, on a store of its own, in a thread of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use herald::uuid::Uuid;
use herald::{Backend, Decide, ExecuteError, JobQueue, Store};
use integration_tests::domain::events::ContactUpdated;
use integration_tests::domain::{ContactEvent, TypedEventBus};
use integration_tests::support::PostgresSchema;
use serde::{Deserialize, Serialize};

/// A contact that counts its updates.
#[derive(Debug, Default, Clone, Serialize, Deserialize, herald::Aggregate)]
#[aggregate(entity = "contact", id = contact_id)]
struct Counted {
    contact_id: Uuid,
    updates: u64,
}

/// Appends one update of `contact` on a store of its own, before returning.
type RivalAppend = Arc<dyn Fn(Uuid) + Send + Sync>;

/// "Update `contact`", with a rival that gets in first as many times as its counter says.
#[derive(Clone)]
struct Update {
    contact: Uuid,
    rival: Option<(RivalAppend, Arc<AtomicU32>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct Never;

impl Decide for Counted {
    type Command = Update;
    type Error = Never;

    fn decide(&self, command: Update, _jobs: &mut JobQueue) -> Result<Vec<ContactEvent>, Never> {
        if let Some((append, wins_left)) = &command.rival {
            let win = wins_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if win {
                append(command.contact);
            }
        }
        Ok(vec![
            ContactUpdated {
                contact_id: command.contact,
                email: None,
                name: Some(format!("update {}", self.updates + 1)),
                tags: Vec::new(),
                updated_by: Uuid::from_u128(7),
            }
            .into(),
        ])
    }

    fn apply(&mut self, event: &ContactEvent) {
        if let ContactEvent::ContactUpdated(updated) = event {
            self.contact_id = updated.contact_id;
            self.updates += 1;
        }
    }
}

/// A rival writing through the stores `open` makes, each in a runtime and thread of its own
/// (a pooled connection belongs to the runtime that opened it).
fn rival<B, F, Fut>(open: F) -> RivalAppend
where
    B: Backend,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Store<B>>,
{
    let open = Arc::new(open);
    Arc::new(move |contact| {
        let open = open.clone();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the rival");
                    runtime.block_on(async move {
                        let store = open().await;
                        TypedEventBus::new(store)
                            .aggregates::<Counted>()
                            .execute(
                                contact,
                                Update {
                                    contact,
                                    rival: None,
                                },
                            )
                            .await
                            .expect("the rival's update");
                    });
                })
                .join()
                .expect("the rival's thread");
        });
    })
}

async fn every_lost_race_is_decided_again_until_the_attempts_run_out<B: Backend>(
    store: Store<B>,
    rival: RivalAppend,
) {
    let bus = TypedEventBus::new(store);
    let aggregates = bus.aggregates::<Counted>().max_attempts(3);

    // Two races lost, the third attempt wins: decided on the state the rival left.
    let contact = Uuid::now_v7();
    let twice = Update {
        contact,
        rival: Some((rival.clone(), Arc::new(AtomicU32::new(2)))),
    };
    aggregates
        .execute(contact, twice)
        .await
        .expect("the third attempt wins");
    let loaded = aggregates.load(contact).await.unwrap();
    assert_eq!((loaded.state.updates, loaded.sequence), (3, 3));

    // Every attempt lost: nothing of ours is appended, and the error says what happened.
    let other = Uuid::now_v7();
    let always = Update {
        contact: other,
        rival: Some((rival, Arc::new(AtomicU32::new(u32::MAX)))),
    };
    let error = aggregates.execute(other, always).await.unwrap_err();
    match &error {
        ExecuteError::Concurrency {
            aggregate,
            id,
            attempts,
        } => assert_eq!(
            (*aggregate, id.as_str(), *attempts),
            ("contact", other.to_string().as_str(), 3)
        ),
        other => panic!("expected a concurrency error, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("3 attempts lost the race against concurrent writers"),
        "{error}"
    );
    let loaded = aggregates.load(other).await.unwrap();
    assert_eq!(
        (loaded.state.updates, loaded.sequence),
        (3, 3),
        "only the rival's three updates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_lost_race_is_decided_again_until_the_attempts_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("races.db").display());
    let store = herald::sqlite(&url).await.unwrap();
    store.migrate().await.unwrap();
    let rival_url = url.clone();
    let rival = rival(move || {
        let url = rival_url.clone();
        async move { herald::sqlite(&url).await.expect("the rival's store") }
    });
    every_lost_race_is_decided_again_until_the_attempts_run_out(store, rival).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_lost_race_is_decided_again_until_the_attempts_run_out() {
    let Some(schema) = PostgresSchema::create("postgres_every_lost_race").await else {
        return;
    };
    let store = schema.store(4).await;
    let options = schema.options();
    let rival = rival(move || {
        let options = options.clone();
        async move {
            herald::postgres_with(options, 1)
                .await
                .expect("the rival's store")
        }
    });
    every_lost_race_is_decided_again_until_the_attempts_run_out(store, rival).await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_every_lost_race_is_decided_again_until_the_attempts_run_out() {
    let store = herald::memory();
    let shared = store.clone();
    let rival = rival(move || {
        let store = shared.clone();
        async move { store }
    });
    every_lost_race_is_decided_again_until_the_attempts_run_out(store, rival).await;
}

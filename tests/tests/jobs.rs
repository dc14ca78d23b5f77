//! Durable jobs against real databases (SQLite, PostgreSQL when `HERALD_TEST_POSTGRES_URL`
//! names a server, and memory): atomic enqueue with the triggering event, retries, timeouts,
//! dedupe, caps, memoized steps, trees, leases and the query API.

use std::sync::atomic::Ordering;
use std::time::Duration;

use herald::ops::{RunFilter, RunInfo, RunStatus};
use herald::testing::{RawRun, SilentRunClaim};
use herald::uuid::Uuid;
use herald::{
    Backend, Jobs, RetryTiming, RunAt, ServiceHandle, Start, Store, Worker, WorkerConfig,
    WorkerSummary,
};
use integration_tests::domain::events::{ContactCreated, CrmSyncCompleted};
use integration_tests::domain::{JobBindings, TypedEventBus};
use integration_tests::jobs::{
    AlwaysFails, Capped, ChargeThenCrash, Deduped, Keyed, LeafOfATree, Nothing, OutlivesItsLease,
    ParentOfATree, Probe, SleepsTooLong, SyncContact, TicksUntilCanceled,
};
use integration_tests::support::{PostgresSchema, eventually};

const DEADLINE: Duration = Duration::from_secs(20);
/// How long a woken worker may take to run a run: far below its poll interval of an hour, so
/// that only a wake-up runs it in time, and generous, so that a loaded machine does not fail it.
const WAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Lets a pool that has just run a run look again, find nothing and go to sleep. Were it too
/// short, the next enqueue would be found by that look and the test would pass without proving
/// the wake-up; it cannot make the test fail.
const SETTLE: Duration = Duration::from_millis(200);

fn test_worker<B: Backend>(store: &Store<B>, probe: &Probe, jobs: JobBindings) -> Worker<B> {
    TypedEventBus::new(store.clone())
        .with_jobs(jobs)
        .worker()
        .state(probe.clone())
        .poll_interval(Duration::from_millis(50))
        .retry(RetryTiming {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        })
}

/// A worker for `run_until_idle` whose retries are due at once, so that one call runs every
/// attempt of a failing run.
fn worker_now<B: Backend>(store: &Store<B>, probe: &Probe, jobs: JobBindings) -> Worker<B> {
    test_worker(store, probe, jobs).retry(RetryTiming {
        base: Duration::ZERO,
        cap: Duration::ZERO,
    })
}

/// Runs the worker until idle, failing (instead of hanging) if it waits for something.
async fn until_idle<B: Backend>(worker: Worker<B>) -> WorkerSummary {
    tokio::time::timeout(DEADLINE, worker.run_until_idle())
        .await
        .expect("run_until_idle returns once nothing is due")
        .expect("run_until_idle")
}

async fn run_of<B: Backend>(store: &Store<B>, id: Uuid) -> RunInfo {
    store.jobs().get(id).await.unwrap().expect("the run exists")
}

async fn wait_until_final<B: Backend>(store: &Store<B>, id: Uuid) -> RunInfo {
    eventually("the run ends", DEADLINE, || async {
        run_of(store, id).await.status.is_final()
    })
    .await;
    run_of(store, id).await
}

async fn start<B: Backend, J: herald::Job>(store: &Store<B>, input: J::Input) -> Uuid {
    let mut tx = store.begin().await.unwrap();
    let id = store.jobs().start::<J>(&mut tx, input).await.unwrap();
    store.commit(tx).await.unwrap();
    id
}

fn contact_created(contact: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::nil(),
    }
}

async fn triggers_enqueue_in_the_publishing_transaction<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let contact = Uuid::now_v7();
    let mut tx = store.begin().await.unwrap();
    bus.publish(&mut tx, contact, contact_created(contact))
        .await
        .unwrap();
    drop(tx);
    let runs = store.jobs().list(&RunFilter::default()).await.unwrap();
    assert!(runs.is_empty(), "a rolled-back publish left runs: {runs:?}");
    assert_eq!(store.stats().await.unwrap().pending_events, 0);

    let mut tx = store.begin().await.unwrap();
    let event = bus
        .publish(&mut tx, contact, contact_created(contact))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let runs = store.jobs().list(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.job, "sync_contact");
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.event_id, Some(event));
    assert_eq!(run.scope_type.as_deref(), Some("contact"));
    assert_eq!(run.scope_id, Some(contact.to_string()));
    assert_eq!(
        run.input,
        herald::serde_json::json!({ "contact_id": contact })
    );
    assert_eq!(run.root_id, run.id);
    assert_eq!(store.stats().await.unwrap().pending_events, 1);

    let probe = Probe::default();
    let worker = test_worker(&store, &probe, JobBindings::new().register::<SyncContact>());
    assert_eq!(until_idle(worker).await.completed, 1);
    let done = run_of(&store, run.id).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.output, Some(herald::serde_json::json!(contact)));
    assert_eq!(probe.calls(), vec![format!("sync {contact}")]);
    let by_scope = store
        .jobs()
        .list(&RunFilter::default().scope("contact", contact))
        .await
        .unwrap();
    assert_eq!(by_scope.len(), 1);
}

async fn republishing_an_event_id_enqueues_nothing_again<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let contact = Uuid::now_v7();
    let id = Uuid::now_v7();
    for _ in 0..2 {
        let mut tx = store.begin().await.unwrap();
        bus.publish_with(
            &mut tx,
            herald::Publish::new(contact_created(contact))
                .id(id)
                .aggregate_id(contact),
        )
        .await
        .unwrap();
        store.commit(tx).await.unwrap();
    }
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

async fn audit_events_never_enqueue_jobs<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let mut tx = store.begin().await.unwrap();
    bus.publish(
        &mut tx,
        Uuid::nil(),
        CrmSyncCompleted {
            integration_id: Uuid::nil(),
            provider: "hubspot".into(),
            counts: Default::default(),
            duration_ms: 1.0,
        },
    )
    .await
    .unwrap();
    store.commit(tx).await.unwrap();
    assert!(
        store
            .jobs()
            .list(&RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let jobs = JobBindings::new().register::<SyncContact>();
    assert_eq!(jobs.triggered_by("contact_created"), ["sync_contact"]);
    assert!(jobs.triggered_by("crm_sync_completed").is_empty());
    assert_eq!(
        jobs.untriggered_domain_events(),
        [
            "account_created",
            "contact_archived",
            "contact_updated",
            "stripe_payment_received",
            "webhook_outbound_contact_sync"
        ],
        "every domain event but contact_created, and no audit event"
    );
}

async fn retries_with_backoff_then_fails<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let id = start::<B, AlwaysFails>(&store, Nothing {}).await;
    let jobs = || JobBindings::new().register::<AlwaysFails>();
    let summary = until_idle(worker_now(&store, &probe, jobs())).await;
    assert_eq!((summary.retried, summary.failed), (2, 1), "{summary:?}");
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.attempt, 3, "retries = 2 means three attempts");
    assert_eq!(
        run.last_error.as_deref(),
        Some("remote said no (attempt 3)")
    );
    assert_eq!(probe.calls(), ["attempt 1", "attempt 2", "attempt 3"]);

    // Retried by hand, it gets a fresh set of attempts.
    assert!(store.jobs().retry(id).await.unwrap());
    let summary = until_idle(worker_now(&store, &probe, jobs())).await;
    assert_eq!((summary.retried, summary.failed), (2, 1), "{summary:?}");
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(probe.calls().len(), 6);
}

async fn a_timeout_ends_the_run_timed_out<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let id = start::<B, SleepsTooLong>(&store, Nothing {}).await;
    let worker = test_worker(
        &store,
        &probe,
        JobBindings::new().register::<SleepsTooLong>(),
    );
    assert_eq!(until_idle(worker).await.timed_out, 1);
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::TimedOut);
    assert_eq!(run.attempt, 1);
    assert_eq!(run.last_error.as_deref(), Some("timed out after 100ms"));
}

async fn dedupe_collapses_onto_the_live_run<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let first = start::<B, Deduped>(
        &store,
        Keyed {
            key: "a".into(),
            n: 1,
        },
    )
    .await;
    let again = start::<B, Deduped>(
        &store,
        Keyed {
            key: "a".into(),
            n: 2,
        },
    )
    .await;
    let other = start::<B, Deduped>(
        &store,
        Keyed {
            key: "b".into(),
            n: 3,
        },
    )
    .await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    // Within one transaction too.
    let mut tx = store.begin().await.unwrap();
    let in_tx = store
        .jobs()
        .start::<Deduped>(
            &mut tx,
            Keyed {
                key: "a".into(),
                n: 4,
            },
        )
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(in_tx, first);
    let jobs = || JobBindings::new().register::<Deduped>();
    assert_eq!(
        until_idle(test_worker(&store, &probe, jobs()))
            .await
            .completed,
        2
    );
    assert!(run_of(&store, first).await.status.is_final());
    assert!(run_of(&store, other).await.status.is_final());
    // Once the run is over, the key is free again.
    let later = start::<B, Deduped>(
        &store,
        Keyed {
            key: "a".into(),
            n: 5,
        },
    )
    .await;
    assert_ne!(later, first);
    assert_eq!(
        until_idle(test_worker(&store, &probe, jobs()))
            .await
            .completed,
        1
    );
    assert!(run_of(&store, later).await.status.is_final());
    let mut calls = probe.calls();
    calls.sort();
    assert_eq!(calls, ["a 1", "a 5", "b 3"]);
}

async fn concurrency_cap_holds_across_four_workers<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let mut ids = Vec::new();
    for n in 0..16 {
        ids.push(
            start::<B, Capped>(
                &store,
                Keyed {
                    key: format!("k{n}"),
                    n,
                },
            )
            .await,
        );
    }
    let workers: Vec<ServiceHandle> = (0..4)
        .map(|n| {
            test_worker(&store, &probe, JobBindings::new().register::<Capped>())
                .worker_id(format!("worker-{n}"))
                .spawn()
        })
        .collect();
    for id in &ids {
        assert_eq!(
            wait_until_final(&store, *id).await.status,
            RunStatus::Completed
        );
    }
    for worker in workers {
        worker.shutdown().await;
    }
    assert_eq!(probe.calls().len(), 16);
    let max = probe.max_running.load(Ordering::SeqCst);
    assert!(max <= 2, "{max} runs of a job capped at 2 ran at once");
    assert!(max >= 1);
}

async fn memoized_steps_do_not_run_again<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let id = start::<B, ChargeThenCrash>(&store, Nothing {}).await;
    let worker = worker_now(
        &store,
        &probe,
        JobBindings::new().register::<ChargeThenCrash>(),
    );
    let summary = until_idle(worker).await;
    assert_eq!((summary.retried, summary.completed), (1, 1), "{summary:?}");
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.attempt, 2);
    assert_eq!(run.output, Some(herald::serde_json::json!(1)));
    assert_eq!(
        probe.side_effects.load(Ordering::SeqCst),
        1,
        "charged twice"
    );
}

async fn canceling_a_run_cancels_its_tree<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let parent = start::<B, ParentOfATree>(&store, Nothing {}).await;
    let jobs = JobBindings::new()
        .register::<ParentOfATree>()
        .register::<LeafOfATree>();
    let worker = test_worker(&store, &probe, jobs)
        .lease(Duration::from_millis(300))
        .spawn();
    eventually("the parent runs", DEADLINE, || async {
        probe.calls().contains(&"parent started".to_owned())
    })
    .await;
    let tree = store
        .jobs()
        .list(&RunFilter::default().root(parent))
        .await
        .unwrap();
    assert_eq!(tree.len(), 2);
    let child = tree.iter().find(|run| run.id != parent).unwrap();
    assert_eq!(child.parent_id, Some(parent));
    assert_eq!(child.status, RunStatus::Pending);
    assert!(child.run_at > herald::chrono::Utc::now());

    assert_eq!(store.jobs().cancel(parent).await.unwrap(), 2);
    // The running attempt is stopped at its next heartbeat and cannot write any more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.shutdown().await;
    for run in store
        .jobs()
        .list(&RunFilter::default().root(parent))
        .await
        .unwrap()
    {
        assert_eq!(run.status, RunStatus::Canceled, "{run:?}");
    }
}

async fn canceling_a_run_aborts_its_running_attempt<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let run = start::<B, TicksUntilCanceled>(&store, Nothing {}).await;
    let worker = test_worker(
        &store,
        &probe,
        JobBindings::new().register::<TicksUntilCanceled>(),
    )
    .lease(Duration::from_millis(300))
    .spawn();
    eventually("the attempt runs", DEADLINE, || async {
        !probe.calls().is_empty()
    })
    .await;
    assert_eq!(store.jobs().cancel(run).await.unwrap(), 1);
    // Stopped at the next heartbeat (every lease/3): the ticks stop well within the lease.
    let ticks = || probe.calls().len();
    eventually("the ticks stop", DEADLINE, || {
        let before = ticks();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ticks() == before
        }
    })
    .await;
    worker.shutdown().await;
    assert_eq!(run_of(&store, run).await.status, RunStatus::Canceled);
}

async fn a_worker_shutting_down_gives_its_running_attempts_back<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let run = start::<B, TicksUntilCanceled>(&store, Nothing {}).await;
    // A lease far longer than the test: only the release can make the run claimable in time.
    let worker = || {
        test_worker(
            &store,
            &probe,
            JobBindings::new().register::<TicksUntilCanceled>(),
        )
        .lease(Duration::from_secs(600))
        .shutdown_timeout(Duration::from_millis(50))
        .spawn()
    };
    let first = worker();
    eventually("the attempt runs", DEADLINE, || async {
        !probe.calls().is_empty()
    })
    .await;
    first.shutdown().await;

    // Given back as it was before the claim: pending, no lease, the attempt not spent.
    let released = run_of(&store, run).await;
    assert_eq!(released.status, RunStatus::Pending, "{released:?}");
    assert_eq!((released.attempt, released.lease_expires_at), (0, None));
    let second = worker();
    eventually("another worker takes it at once", WAKE_DEADLINE, || async {
        run_of(&store, run).await.status == RunStatus::Running
    })
    .await;
    assert_eq!(
        run_of(&store, run).await.attempt,
        1,
        "its first attempt, again"
    );
    store.jobs().cancel(run).await.unwrap();
    second.shutdown().await;
}

/// While its heartbeats fail (the database unreachable from it), a worker claims nothing new —
/// it could not keep what it claimed — and claims again once they succeed. The lease is far
/// longer than the test, so nothing is rescued meanwhile; only the heartbeat fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_worker_whose_heartbeats_fail_claims_nothing_new() {
    let store = herald::memory();
    let probe = Probe::default();
    let long = start::<_, TicksUntilCanceled>(&store, Nothing {}).await;
    let worker = TypedEventBus::new(store.clone())
        .with_jobs(
            JobBindings::new()
                .register::<TicksUntilCanceled>()
                .register::<LeafOfATree>(),
        )
        .worker()
        .state(probe.clone())
        .config(WorkerConfig {
            lease: Duration::from_secs(600),
            heartbeat: Duration::from_millis(50),
            poll_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_millis(50),
            ..WorkerConfig::default()
        })
        .spawn();
    eventually("the long run runs", DEADLINE, || async {
        !probe.calls().is_empty()
    })
    .await;
    store.backend().fail_heartbeats(true);
    eventually("a heartbeat fails", DEADLINE, || async {
        store.backend().failed_heartbeats() > 0
    })
    .await;

    let quick = start::<_, LeafOfATree>(&store, Nothing {}).await;
    // Twenty-five polls and ten heartbeats, every one of them failing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        run_of(&store, quick).await.status,
        RunStatus::Pending,
        "claimed while its heartbeats failed"
    );
    assert!(store.backend().failed_heartbeats() >= 5);

    store.backend().fail_heartbeats(false);
    let done = wait_until_final(&store, quick).await;
    assert_eq!(done.status, RunStatus::Completed);
    store.jobs().cancel(long).await.unwrap();
    worker.shutdown().await;
}

async fn heartbeats_keep_a_long_run_and_expired_leases_are_rescued<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let id = start::<B, OutlivesItsLease>(&store, Nothing {}).await;
    let worker = test_worker(
        &store,
        &probe,
        JobBindings::new().register::<OutlivesItsLease>(),
    )
    .lease(Duration::from_millis(600))
    .spawn();
    let run = wait_until_final(&store, id).await;
    worker.shutdown().await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        run.output,
        Some(herald::serde_json::json!(1)),
        "it ran once"
    );

    // A worker claims a run and goes silent: the run is rescued after the lease and retried.
    let silent = start::<B, Deduped>(
        &store,
        Keyed {
            key: "z".into(),
            n: 9,
        },
    )
    .await;
    let claimed = SilentRunClaim::take(&store, "batch", &["deduped"], Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let worker = test_worker(&store, &probe, JobBindings::new().register::<Deduped>()).spawn();
    let run = wait_until_final(&store, silent).await;
    worker.shutdown().await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.attempt, 2);
    // The silent worker's attempt is fenced: its late result is discarded.
    let late = claimed.fail_late().await.unwrap();
    assert_eq!(late, 0);
    assert_eq!(run_of(&store, silent).await.status, RunStatus::Completed);
}

async fn query_by_status_and_job<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let failing = start::<B, AlwaysFails>(&store, Nothing {}).await;
    let fine = start::<B, Deduped>(
        &store,
        Keyed {
            key: "q".into(),
            n: 1,
        },
    )
    .await;
    let jobs = JobBindings::new()
        .register::<AlwaysFails>()
        .register::<Deduped>();
    let summary = until_idle(worker_now(&store, &probe, jobs)).await;
    assert_eq!(
        (summary.completed, summary.retried, summary.failed),
        (1, 2, 1),
        "{summary:?}"
    );
    assert!(run_of(&store, failing).await.status.is_final());
    assert!(run_of(&store, fine).await.status.is_final());
    let failed = store
        .jobs()
        .list(&RunFilter::default().status(RunStatus::Failed))
        .await
        .unwrap();
    assert_eq!(failed.iter().map(|r| r.id).collect::<Vec<_>>(), [failing]);
    let deduped = store
        .jobs()
        .list(&RunFilter::default().job("deduped"))
        .await
        .unwrap();
    assert_eq!(deduped.iter().map(|r| r.id).collect::<Vec<_>>(), [fine]);
}

async fn run_until_idle_counts_every_outcome_exactly<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let failing = start::<B, AlwaysFails>(&store, Nothing {}).await;
    let keyed = |key: &str| Keyed {
        key: key.into(),
        n: 1,
    };
    let a = start::<B, Deduped>(&store, keyed("a")).await;
    let b = start::<B, Deduped>(&store, keyed("b")).await;
    let slow = start::<B, SleepsTooLong>(&store, Nothing {}).await;
    let charge = start::<B, ChargeThenCrash>(&store, Nothing {}).await;
    let jobs = JobBindings::new()
        .register::<AlwaysFails>()
        .register::<Deduped>()
        .register::<SleepsTooLong>()
        .register::<ChargeThenCrash>();

    let summary = until_idle(worker_now(&store, &probe, jobs.clone())).await;
    // always_fails: three attempts, the last one failed; charge_then_crash: one failure, then
    // completed; the two deduped runs complete; sleeps_too_long times out.
    assert_eq!(
        summary,
        WorkerSummary {
            completed: 3,
            retried: 3,
            failed: 1,
            timed_out: 1,
            retries_scheduled: 0,
            fenced: 0,
        }
    );
    let status = |run: RunInfo| (run.status, run.attempt);
    assert_eq!(
        status(run_of(&store, failing).await),
        (RunStatus::Failed, 3)
    );
    assert_eq!(status(run_of(&store, a).await), (RunStatus::Completed, 1));
    assert_eq!(status(run_of(&store, b).await), (RunStatus::Completed, 1));
    assert_eq!(status(run_of(&store, slow).await), (RunStatus::TimedOut, 1));
    assert_eq!(
        status(run_of(&store, charge).await),
        (RunStatus::Completed, 2)
    );
    // Nothing is left for a second call.
    assert_eq!(
        until_idle(worker_now(&store, &probe, jobs)).await,
        WorkerSummary::default()
    );
}

async fn run_until_idle_does_not_wait_for_later_runs<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let failing = start::<B, AlwaysFails>(&store, Nothing {}).await;
    let mut tx = store.begin().await.unwrap();
    let scheduled = store
        .jobs()
        .start_with::<Deduped>(
            &mut tx,
            Start::new(Keyed {
                key: "later".into(),
                n: 1,
            })
            .at(RunAt::In(Duration::from_secs(3600))),
        )
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let jobs = JobBindings::new()
        .register::<AlwaysFails>()
        .register::<Deduped>();
    let in_an_hour = test_worker(&store, &probe, jobs).retry(RetryTiming {
        base: Duration::from_secs(3600),
        cap: Duration::from_secs(3600),
    });

    assert_eq!(
        until_idle(in_an_hour).await,
        WorkerSummary {
            retried: 1,
            retries_scheduled: 1,
            ..WorkerSummary::default()
        }
    );
    assert_eq!(probe.calls(), ["attempt 1"]);
    let now = herald::chrono::Utc::now();
    let retry = run_of(&store, failing).await;
    assert_eq!((retry.status, retry.attempt), (RunStatus::Pending, 1));
    assert!(retry.run_at > now, "{retry:?}");
    let later = run_of(&store, scheduled).await;
    assert_eq!(later.status, RunStatus::Pending);
    assert!(later.run_at > now, "{later:?}");
}

async fn run_until_idle_keeps_a_long_run_by_heartbeat<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let id = start::<B, OutlivesItsLease>(&store, Nothing {}).await;
    // Another worker, whose rescuer would take the run as soon as its lease lapsed (and its
    // late result would then be fenced off).
    let other = test_worker(&store, &probe, JobBindings::new().register::<Deduped>()).spawn();
    let summary = until_idle(
        worker_now(
            &store,
            &probe,
            JobBindings::new().register::<OutlivesItsLease>(),
        )
        .lease(Duration::from_millis(600)),
    )
    .await;
    other.shutdown().await;
    assert_eq!(
        summary,
        WorkerSummary {
            completed: 1,
            ..WorkerSummary::default()
        }
    );
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        run.output,
        Some(herald::serde_json::json!(1)),
        "it ran once"
    );
}

/// The worker of `worked` never polls (its backstop comes after an hour); runs are enqueued
/// through `writer` (the same store, or another one on the same database) while it is idle.
async fn an_idle_worker_is_woken_by_enqueues_of<B: Backend>(worked: &Store<B>, writer: &Store<B>) {
    let probe = Probe::default();
    let worker = test_worker(worked, &probe, JobBindings::new().register::<Deduped>())
        .poll_interval(Duration::from_secs(3600))
        .spawn();
    let ended = |id| async move { run_of(worked, id).await.status.is_final() };
    // The first run shows the worker running (its first look may find it without a wake-up).
    let first = start::<B, Deduped>(
        writer,
        Keyed {
            key: "first".into(),
            n: 1,
        },
    )
    .await;
    eventually("the first run ends", WAKE_DEADLINE, || ended(first)).await;
    tokio::time::sleep(SETTLE).await;
    let second = start::<B, Deduped>(
        writer,
        Keyed {
            key: "second".into(),
            n: 2,
        },
    )
    .await;
    eventually(
        "the idle worker is woken by the enqueue",
        WAKE_DEADLINE,
        || ended(second),
    )
    .await;
    // With an hour between polls, a pool that missed the stop would hold shutdown up that long.
    tokio::time::timeout(DEADLINE, worker.shutdown())
        .await
        .expect("the worker stops");
    assert_eq!(probe.calls(), ["first 1", "second 2"]);
    assert_eq!(run_of(worked, second).await.status, RunStatus::Completed);
}

async fn an_idle_worker_starts_a_later_run_at_once<B: Backend>(store: Store<B>) {
    an_idle_worker_is_woken_by_enqueues_of(&store, &store).await;
}

/// Another process enqueues through a pool of its own: only `LISTEN/NOTIFY` can wake the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_enqueue_of_another_store_wakes_the_worker() {
    let Some(schema) =
        PostgresSchema::create("postgres_an_enqueue_of_another_store_wakes_the_worker").await
    else {
        return;
    };
    let (worked, writer) = (schema.store(5).await, schema.store(5).await);
    an_idle_worker_is_woken_by_enqueues_of(&worked, &writer).await;
    schema.drop().await;
}

async fn runs_no_worker_knows_stay_pending_and_are_listed<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    // Enqueued by a release that has `deduped`; this worker's release only has `always_fails`.
    let orphan = start::<B, Deduped>(
        &store,
        Keyed {
            key: "orphan".into(),
            n: 1,
        },
    )
    .await;
    let summary = test_worker(&store, &probe, JobBindings::new().register::<AlwaysFails>())
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(summary.completed + summary.failed + summary.retried, 0);
    let run = run_of(&store, orphan).await;
    assert_eq!(
        (run.status, run.attempt),
        (RunStatus::Pending, 0),
        "left for a worker that knows it"
    );
    let due = store.jobs().due(Duration::ZERO).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        (due[0].pool.as_str(), due[0].job.as_str(), due[0].runs),
        ("batch", "deduped", 1)
    );
    assert!(
        store
            .jobs()
            .due(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty(),
        "not waiting for an hour yet"
    );
}

async fn an_input_that_can_never_decode_fails_at_once<B: Backend>(store: Store<B>) {
    let probe = Probe::default();
    let mut tx = store.begin().await.unwrap();
    let garbled = RawRun::new("deduped", "batch", herald::serde_json::json!({ "key": 7 }))
        .insert(&store, &mut tx)
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let summary = test_worker(&store, &probe, JobBindings::new().register::<Deduped>())
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!((summary.failed, summary.retried), (1, 0), "{summary:?}");
    let run = run_of(&store, garbled).await;
    assert_eq!(
        (run.status, run.attempt),
        (RunStatus::Failed, 1),
        "no attempt is wasted"
    );
    let error = run.last_error.unwrap_or_default();
    assert!(
        error.contains("does not decode as the input of `deduped`"),
        "{error}"
    );
}

integration_tests::on_every_backend!(
    canceling_a_run_aborts_its_running_attempt,
    triggers_enqueue_in_the_publishing_transaction,
    republishing_an_event_id_enqueues_nothing_again,
    audit_events_never_enqueue_jobs,
    retries_with_backoff_then_fails,
    a_timeout_ends_the_run_timed_out,
    dedupe_collapses_onto_the_live_run,
    concurrency_cap_holds_across_four_workers,
    memoized_steps_do_not_run_again,
    canceling_a_run_cancels_its_tree,
    heartbeats_keep_a_long_run_and_expired_leases_are_rescued,
    a_worker_shutting_down_gives_its_running_attempts_back,
    query_by_status_and_job,
    run_until_idle_counts_every_outcome_exactly,
    run_until_idle_does_not_wait_for_later_runs,
    run_until_idle_keeps_a_long_run_by_heartbeat,
    an_idle_worker_starts_a_later_run_at_once,
    runs_no_worker_knows_stay_pending_and_are_listed,
    an_input_that_can_never_decode_fails_at_once,
);

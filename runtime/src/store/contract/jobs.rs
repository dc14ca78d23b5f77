//! Durable jobs' promises at the seam.

use uuid::Uuid;

use super::{at, claim, insert_runs, on_every_backend, run, t0};
use crate::jobs::worker::rescuer;
use crate::ops::RunStatus;
use crate::store::{AttemptOutcome, AttemptResult, Backend, Claim, ExpiredRun, Store};

async fn claim_runs<B: Backend>(
    store: &Store<B>,
    job: &'static str,
    claim: Claim<'_>,
) -> Vec<Uuid> {
    store
        .backend()
        .claim_runs("batch", &[job], claim)
        .await
        .expect("claim runs")
        .iter()
        .map(|run| run.id)
        .collect()
}

async fn status<B: Backend>(store: &Store<B>, id: Uuid) -> RunStatus {
    store
        .backend()
        .get_run(id)
        .await
        .expect("get run")
        .expect("the run exists")
        .status
}

fn completed(id: Uuid, attempt: u32) -> AttemptResult {
    AttemptResult {
        id,
        attempt,
        outcome: AttemptOutcome::Completed {
            output: "{}".to_owned(),
        },
    }
}

async fn runs_are_claimed_when_due_in_run_at_order<B: Backend>(store: Store<B>) {
    let (late, first, second) = (run("j", at(5)), run("j", t0()), run("j", at(1)));
    insert_runs(&store, &[late.clone(), first.clone(), second.clone()]).await;
    assert_eq!(
        claim_runs(&store, "j", claim("w1", at(2))).await,
        vec![first.id, second.id]
    );
    assert_eq!(
        claim_runs(&store, "j", claim("w1", at(4))).await,
        Vec::<Uuid>::new()
    );
    assert_eq!(
        claim_runs(&store, "j", claim("w1", at(5))).await,
        vec![late.id]
    );
    assert!(
        claim_runs(&store, "other", claim("w1", at(9)))
            .await
            .is_empty(),
        "a worker claims only the jobs it names"
    );
}

async fn a_dedupe_key_collapses_onto_the_live_run<B: Backend>(store: Store<B>) {
    let keyed = |key: &str| {
        let mut run = run("j", t0());
        run.dedupe_key = Some(key.to_owned());
        run
    };
    let first = insert_runs(&store, &[keyed("k")]).await[0];
    assert_eq!(insert_runs(&store, &[keyed("k")]).await, vec![first]);
    assert_ne!(insert_runs(&store, &[keyed("other")]).await[0], first);
    let claimed = claim_runs(&store, "j", claim("w1", t0())).await;
    assert!(claimed.contains(&first));
    assert_eq!(
        insert_runs(&store, &[keyed("k")]).await,
        vec![first],
        "running is live"
    );
    store
        .backend()
        .finish_runs(&[completed(first, 1)], t0())
        .await
        .expect("finish");
    assert_ne!(
        insert_runs(&store, &[keyed("k")]).await[0],
        first,
        "the key is free again"
    );
}

async fn claim_capped<B: Backend>(store: &Store<B>, owner: &str) -> Vec<crate::store::ClaimedRun> {
    store
        .backend()
        .claim_capped("batch", "capped", 2, claim(owner, t0()))
        .await
        .expect("claim capped")
}

async fn a_cap_holds_across_workers<B: Backend>(store: Store<B>) {
    insert_runs(
        &store,
        &[
            run("capped", t0()),
            run("capped", t0()),
            run("capped", t0()),
        ],
    )
    .await;
    let first = claim_capped(&store, "w1").await;
    assert_eq!(first.len(), 2);
    assert!(
        claim_capped(&store, "w2").await.is_empty(),
        "the cap is reached"
    );
    store
        .backend()
        .finish_runs(&[completed(first[0].id, first[0].attempt)], t0())
        .await
        .expect("finish");
    assert_eq!(claim_capped(&store, "w2").await.len(), 1);
}

async fn an_expired_lease_is_rescued_and_its_late_writes_fenced<B: Backend>(store: Store<B>) {
    let stalled = run("j", t0());
    insert_runs(&store, std::slice::from_ref(&stalled)).await;
    claim_runs(&store, "j", claim("w1", t0())).await;
    let lease_end = at(30);
    assert_eq!(
        store
            .backend()
            .heartbeat(&[(stalled.id, 1)], lease_end)
            .await
            .expect("beat"),
        vec![stalled.id],
        "the holder renews its lease"
    );
    assert!(
        store
            .backend()
            .expired_runs(at(29), 10)
            .await
            .expect("expired")
            .is_empty()
    );
    let expired = store
        .backend()
        .expired_runs(at(31), 10)
        .await
        .expect("expired");
    assert_eq!(
        expired,
        vec![ExpiredRun {
            id: stalled.id,
            attempt: 1,
            max_attempts: 3
        }]
    );
    let rescue = rescuer::decide(&expired[0]);
    assert_eq!(rescue.status, RunStatus::Pending, "attempts are left");
    let rescues = [rescue];
    let written = store
        .backend()
        .write_rescues(&rescues, at(31))
        .await
        .expect("rescue");
    assert_eq!(written, vec![stalled.id]);
    assert!(
        store
            .backend()
            .write_rescues(&rescues, at(31))
            .await
            .expect("rescue")
            .is_empty(),
        "a rescue another worker made first is not made twice"
    );
    assert!(
        store
            .backend()
            .heartbeat(&[(stalled.id, 1)], at(60))
            .await
            .expect("beat")
            .is_empty(),
        "the stalled attempt no longer holds the run"
    );
    assert_eq!(
        store
            .backend()
            .finish_runs(&[completed(stalled.id, 1)], at(31))
            .await
            .expect("finish"),
        0,
        "its late result is discarded"
    );
    let retried = store
        .backend()
        .claim_runs("batch", &["j"], claim("w2", at(31)))
        .await
        .expect("claim");
    assert_eq!((retried[0].id, retried[0].attempt), (stalled.id, 2));
}

async fn the_last_attempt_expiring_fails_the_run<B: Backend>(store: Store<B>) {
    let mut once = run("j", t0());
    once.max_attempts = 1;
    insert_runs(&store, std::slice::from_ref(&once)).await;
    claim_runs(&store, "j", claim("w1", t0())).await;
    let expired = store
        .backend()
        .expired_runs(at(31), 10)
        .await
        .expect("expired");
    let rescue = rescuer::decide(&expired[0]);
    assert_eq!(rescue.status, RunStatus::Failed);
    store
        .backend()
        .write_rescues(&[rescue], at(31))
        .await
        .expect("rescue");
    assert_eq!(status(&store, once.id).await, RunStatus::Failed);
}

async fn released_runs_keep_their_attempt<B: Backend>(store: Store<B>) {
    let job = run("j", t0());
    insert_runs(&store, std::slice::from_ref(&job)).await;
    claim_runs(&store, "j", claim("stopping", t0())).await;
    assert_eq!(
        store
            .backend()
            .release_runs("stopping")
            .await
            .expect("release"),
        1
    );
    let again = store
        .backend()
        .claim_runs("batch", &["j"], claim("w2", t0()))
        .await
        .expect("claim");
    assert_eq!(again[0].attempt, 1, "the released attempt was not spent");
}

async fn steps_are_saved_only_by_the_attempt_that_holds_the_run<B: Backend>(store: Store<B>) {
    let job = run("j", t0());
    insert_runs(&store, std::slice::from_ref(&job)).await;
    claim_runs(&store, "j", claim("w1", t0())).await;
    let backend = store.backend();
    assert!(
        !backend
            .save_step(job.id, 7, "push", "1", t0())
            .await
            .expect("save")
    );
    assert_eq!(
        backend.step_output(job.id, "push").await.expect("read"),
        None
    );
    assert!(
        backend
            .save_step(job.id, 1, "push", r#"{"ok":true}"#, t0())
            .await
            .expect("save")
    );
    let stored = backend
        .step_output(job.id, "push")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).expect("JSON"),
        serde_json::json!({"ok": true})
    );
}

async fn a_canceled_tree_stops_its_live_runs_and_can_be_retried<B: Backend>(store: Store<B>) {
    let parent = run("j", t0());
    let mut child = run("j", at(60));
    child.parent_id = Some(parent.id);
    child.root_id = parent.id;
    insert_runs(&store, &[parent.clone(), child.clone()]).await;
    assert_eq!(
        store
            .backend()
            .cancel_tree(parent.id, t0())
            .await
            .expect("cancel"),
        2
    );
    assert_eq!(status(&store, child.id).await, RunStatus::Canceled);
    assert!(
        store
            .backend()
            .retry_run(child.id, at(1))
            .await
            .expect("retry")
    );
    let again = store
        .backend()
        .claim_runs("batch", &["j"], claim("w1", at(1)))
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|run| run.id).collect::<Vec<_>>(),
        vec![child.id]
    );
}

async fn pruning_runs_keeps_trees_with_a_live_run<B: Backend>(store: Store<B>) {
    let (lone, parent) = (run("j", t0()), run("j", t0()));
    let mut child = run("j", at(600));
    child.parent_id = Some(parent.id);
    child.root_id = parent.id;
    insert_runs(&store, &[lone.clone(), parent.clone(), child.clone()]).await;
    let claimed = store
        .backend()
        .claim_runs("batch", &["j"], claim("w1", t0()))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "the child is not due yet");
    let results: Vec<_> = claimed.iter().map(|run| completed(run.id, 1)).collect();
    store
        .backend()
        .finish_runs(&results, at(1))
        .await
        .expect("finish");
    let pruned = store
        .backend()
        .prune_runs(RunStatus::Completed, at(3600))
        .await
        .expect("prune");
    assert_eq!(
        pruned, 1,
        "only the lone run: the parent's child is still pending"
    );
    assert!(
        store
            .backend()
            .get_run(lone.id)
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(status(&store, parent.id).await, RunStatus::Completed);
    assert_eq!(status(&store, child.id).await, RunStatus::Pending);
}

async fn a_child_key_is_spawned_once_per_parent<B: Backend>(store: Store<B>) {
    let parent = run("j", t0());
    insert_runs(&store, std::slice::from_ref(&parent)).await;
    let held = claim_runs(&store, "j", claim("w1", t0())).await;
    assert_eq!(held, vec![parent.id]);
    let child = |key: &str| {
        let mut child = run("k", t0());
        child.parent_id = Some(parent.id);
        child.root_id = parent.id;
        child.tenant_id = Some("acme".to_owned());
        child.child_key = Some(key.to_owned());
        child
    };
    let spawn = |run: crate::store::NewRun| {
        let store = store.clone();
        async move {
            store
                .backend()
                .insert_run_now(&run, Some(1), t0())
                .await
                .expect("spawn")
                .expect("the parent holds its attempt")
        }
    };
    let first = spawn(child("a")).await;
    assert_eq!(
        spawn(child("a")).await,
        first,
        "the same key gives the same child"
    );
    let other = spawn(child("b")).await;
    assert_ne!(other, first);
    let stored = store.backend().get_run(first).await.expect("get run");
    assert_eq!(
        stored.and_then(|run| run.tenant_id).as_deref(),
        Some("acme")
    );
}

/// Statements that lock several runs lock them in one order (by id), whatever order they are
/// given: two heartbeats of the same runs in opposite orders race 30 times. Locked in the order
/// given, they deadlock on PostgreSQL (`deadlock detected`).
async fn writes_of_many_runs_lock_them_in_one_order<B: Backend>(store: Store<B>) {
    let runs: Vec<_> = (0..60).map(|_| run("j", t0())).collect();
    insert_runs(&store, &runs).await;
    let claimed = store
        .backend()
        .claim_runs("batch", &["j"], claim("w1", t0()))
        .await
        .expect("claim runs");
    let forward: Vec<(Uuid, u32)> = claimed.iter().map(|run| (run.id, run.attempt)).collect();
    let backward: Vec<(Uuid, u32)> = forward.iter().rev().copied().collect();
    for round in 0..30 {
        let until = at(60 + round);
        let (a, b) = tokio::join!(
            store.backend().heartbeat(&forward, until),
            store.backend().heartbeat(&backward, until),
        );
        assert_eq!(a.expect("heartbeat").len(), forward.len());
        assert_eq!(b.expect("heartbeat").len(), forward.len());
    }
    let results: Vec<AttemptResult> = backward
        .iter()
        .map(|&(id, attempt)| completed(id, attempt))
        .collect();
    let (finished, beat) = tokio::join!(
        store.backend().finish_runs(&results, at(100)),
        store.backend().heartbeat(&forward, at(120)),
    );
    assert_eq!(finished.expect("finish runs"), forward.len() as u64);
    beat.expect("heartbeat");
}

on_every_backend!(
    writes_of_many_runs_lock_them_in_one_order,
    a_child_key_is_spawned_once_per_parent,
    pruning_runs_keeps_trees_with_a_live_run,
    runs_are_claimed_when_due_in_run_at_order,
    a_dedupe_key_collapses_onto_the_live_run,
    a_cap_holds_across_workers,
    an_expired_lease_is_rescued_and_its_late_writes_fenced,
    the_last_attempt_expiring_fails_the_run,
    released_runs_keep_their_attempt,
    steps_are_saved_only_by_the_attempt_that_holds_the_run,
    a_canceled_tree_stops_its_live_runs_and_can_be_retried,
);

//! The outbox's promises at the seam.

use super::{at, claim, event, insert_events, on_every_backend, t0};
use crate::ops::Redrive;
use crate::store::{
    Backend, Claim, DeliveryOutcome, DeliveryState, Lane, NewDelivery, Store, StoreError,
    StoredEvent,
};

fn change_lane() -> Lane {
    Lane::Pool("events_change".to_owned())
}

async fn claim_events<B: Backend>(
    store: &Store<B>,
    claim: Claim<'_>,
) -> (Vec<StoredEvent>, String) {
    let events = store
        .backend()
        .claim_events(&change_lane(), None, claim)
        .await
        .expect("claim events");
    (events, claim.owner.to_owned())
}

async fn complete<B: Backend>(
    store: &Store<B>,
    claimed: (Vec<StoredEvent>, String),
    deliveries: &[NewDelivery],
) -> u64 {
    let positions: Vec<i64> = claimed.0.iter().map(|event| event.position).collect();
    store
        .backend()
        .complete_events(&claimed.1, &positions, deliveries, t0())
        .await
        .expect("complete events")
}

fn retry_at(event: &StoredEvent, subscriber: &str, seconds: i64) -> NewDelivery {
    NewDelivery {
        event_id: event.id,
        event_position: event.position,
        subscriber: subscriber.to_owned(),
        pool: event.pool.clone(),
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        state: DeliveryState::Retry {
            attempts: 1,
            at: at(seconds),
            last_error: Some("down".to_owned()),
        },
    }
}

async fn inserting_an_id_twice_stores_it_once<B: Backend>(store: Store<B>) {
    let first = event(Some("a"));
    assert_eq!(
        insert_events(&store, std::slice::from_ref(&first)).await,
        vec![first.id]
    );
    assert_eq!(
        insert_events(&store, std::slice::from_ref(&first)).await,
        Vec::<uuid::Uuid>::new()
    );
    assert_eq!(store.stats().await.expect("stats").pending_events, 1);
}

async fn claims_take_the_head_of_each_aggregate_in_position_order<B: Backend>(store: Store<B>) {
    let (a1, a2, b1, loose) = (
        event(Some("a")),
        event(Some("a")),
        event(Some("b")),
        event(None),
    );
    insert_events(&store, &[a1.clone(), a2.clone(), b1.clone(), loose.clone()]).await;
    let claimed = claim_events(&store, claim("w1", t0())).await;
    let ids: Vec<_> = claimed.0.iter().map(|event| event.id).collect();
    assert_eq!(ids, vec![a1.id, b1.id, loose.id]);
    assert!(claimed.0.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(complete(&store, claimed, &[]).await, 3);
    let next = claim_events(&store, claim("w1", t0())).await;
    assert_eq!(
        next.0.iter().map(|event| event.id).collect::<Vec<_>>(),
        vec![a2.id]
    );
}

async fn a_held_claim_is_not_claimed_again_until_given_back<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let held = claim_events(&store, claim("w1", t0())).await;
    assert_eq!(held.0.len(), 1);
    assert!(claim_events(&store, claim("w2", t0())).await.0.is_empty());
    // Abandoned: claimable again when its lease ends.
    drop(held);
    let after_the_lease = at(31);
    let taken = claim_events(&store, claim("w2", after_the_lease)).await;
    assert_eq!(taken.0.len(), 1);
}

async fn a_completion_after_the_lease_was_taken_over_acknowledges_nothing<B: Backend>(
    store: Store<B>,
) {
    insert_events(&store, &[event(Some("a"))]).await;
    let stalled = claim_events(&store, claim("stalled", t0())).await;
    assert_eq!(stalled.0.len(), 1);
    let taken = claim_events(&store, claim("w2", at(31))).await;
    assert_eq!(taken.0.len(), 1, "another worker takes the event over");
    assert_eq!(taken.0[0].claims, 2, "every claim counts");
    let positions: Vec<i64> = stalled.0.iter().map(|event| event.position).collect();
    let late = store
        .backend()
        .complete_events(&stalled.1, &positions, &[], at(32))
        .await
        .expect("a fenced completion is no error");
    assert_eq!(late, 0);
    assert_eq!(complete(&store, taken, &[]).await, 1);
}

async fn an_extended_lease_is_kept_until_its_new_end<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a")), event(Some("b"))]).await;
    let held = claim_events(&store, claim("w1", t0())).await;
    let positions: Vec<i64> = held.0.iter().map(|event| event.position).collect();
    let extended = store
        .backend()
        .extend_event_leases("w1", &positions[..1], at(90))
        .await
        .expect("extend leases");
    assert_eq!(extended, positions[..1]);
    // Past the first lease: the event whose lease was not extended is taken over.
    let taken = claim_events(&store, claim("w2", at(60))).await;
    assert_eq!(
        taken
            .0
            .iter()
            .map(|event| event.position)
            .collect::<Vec<_>>(),
        positions[1..]
    );
    // The owner can no longer extend what it lost, nor can another owner extend its lease.
    let lost = store
        .backend()
        .extend_event_leases("w1", &positions[1..], at(120))
        .await
        .expect("extend leases");
    assert!(lost.is_empty());
    let foreign = store
        .backend()
        .extend_event_leases("w2", &positions[..1], at(120))
        .await
        .expect("extend leases");
    assert!(foreign.is_empty());
    assert_eq!(complete(&store, taken, &[]).await, 1);
    // Past the extended lease, the first event is claimable again.
    assert_eq!(claim_events(&store, claim("w3", at(89))).await.0.len(), 0);
    assert_eq!(claim_events(&store, claim("w3", at(91))).await.0.len(), 1);
}

async fn a_released_claim_is_not_counted<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let held = claim_events(&store, claim("w1", t0())).await;
    assert_eq!(held.0[0].claims, 1);
    assert_eq!(store.backend().release("w1").await.expect("release"), 1);
    let again = claim_events(&store, claim("w2", t0())).await;
    assert_eq!(again.0[0].claims, 1, "a claim given back is not a lost one");
}

async fn owed_deliveries_wait_for_their_time<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let claimed = claim_events(&store, claim("w1", t0())).await;
    let owed = retry_at(&claimed.0[0], "mailer", 10);
    assert_eq!(complete(&store, claimed, &[owed]).await, 1);
    let lane = change_lane();
    let early = store
        .backend()
        .claim_deliveries(&lane, claim("r1", at(9)))
        .await
        .expect("claim retries");
    assert!(early.is_empty(), "not due before its time");
    let due = store
        .backend()
        .claim_deliveries(&lane, claim("r1", at(10)))
        .await
        .expect("claim retries");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].subscriber.as_str(), due[0].attempts), ("mailer", 1));
}

async fn a_retrys_claims_count_until_an_attempt_is_recorded<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let claimed = claim_events(&store, claim("w1", t0())).await;
    let owed = retry_at(&claimed.0[0], "mailer", 0);
    let event_id = owed.event_id;
    complete(&store, claimed, &[owed]).await;
    let lane = change_lane();
    let claims_of = |owner: &'static str, seconds: i64| {
        let (store, lane) = (store.clone(), lane.clone());
        async move {
            let claimed = store
                .backend()
                .claim_deliveries(&lane, claim(owner, at(seconds)))
                .await
                .expect("claim retries");
            claimed
                .iter()
                .map(|delivery| delivery.claims)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(claims_of("r1", 1).await, vec![1]);
    // r1's lease (30 s) runs out without an outcome: a lost claim.
    assert_eq!(claims_of("r2", 32).await, vec![2]);
    // Given back, r2's claim is not a lost one.
    assert_eq!(store.backend().release("r2").await.expect("release"), 1);
    assert_eq!(claims_of("r3", 33).await, vec![2]);
    // An attempt recorded: the count starts again.
    let retried = DeliveryOutcome {
        event_id,
        subscriber: "mailer".to_owned(),
        state: Some(DeliveryState::Retry {
            attempts: 2,
            at: at(40),
            last_error: Some("still down".to_owned()),
        }),
    };
    store
        .backend()
        .finish_deliveries("r3", &[retried], at(34))
        .await
        .expect("finish");
    assert_eq!(claims_of("r4", 40).await, vec![1]);
    // And an extended lease is not lost when the old one would have run out.
    store
        .backend()
        .extend_delivery_leases("r4", at(100))
        .await
        .expect("extend");
    assert_eq!(claims_of("r5", 80).await, Vec::<u32>::new());
    assert_eq!(claims_of("r5", 101).await, vec![2]);
}

async fn a_retry_queues_behind_its_aggregates_earlier_open_delivery<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let first = claim_events(&store, claim("w1", t0())).await;
    let owed_first = retry_at(&first.0[0], "mailer", 0);
    complete(&store, first, &[owed_first]).await;
    insert_events(&store, &[event(Some("a"))]).await;
    let second = claim_events(&store, claim("w1", t0())).await;
    assert_eq!(second.0.len(), 1);
    assert_eq!(
        second.0[0].blocked_subscribers,
        vec!["mailer".to_owned()],
        "the claim says which subscriber it must queue behind"
    );
    let owed_second = retry_at(&second.0[0], "mailer", 0);
    let second_id = second.0[0].id;
    complete(&store, second, &[owed_second]).await;
    let due = store
        .backend()
        .claim_deliveries(&change_lane(), claim("r1", at(1)))
        .await
        .expect("claim retries");
    assert_eq!(due.len(), 1, "only the aggregate's first open delivery");
    assert_ne!(due[0].event.id, second_id);
}

async fn a_failed_last_attempt_is_a_dead_letter_until_redriven<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let claimed = claim_events(&store, claim("w1", t0())).await;
    let event_id = claimed.0[0].id;
    let owed = retry_at(&claimed.0[0], "mailer", 0);
    complete(&store, claimed, &[owed]).await;
    let lane = change_lane();
    let due = store
        .backend()
        .claim_deliveries(&lane, claim("r1", at(1)))
        .await
        .expect("claim retries");
    let dead = DeliveryOutcome {
        event_id,
        subscriber: due[0].subscriber.clone(),
        state: Some(DeliveryState::Failed {
            attempts: 2,
            last_error: "still down".to_owned(),
        }),
    };
    store
        .backend()
        .finish_deliveries("r1", &[dead], at(1))
        .await
        .expect("finish retries");
    let letters = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].attempts, letters[0].last_error.as_str()),
        (2, "still down")
    );
    assert!(
        store
            .backend()
            .claim_deliveries(&lane, claim("r1", at(3600)))
            .await
            .expect("claim retries")
            .is_empty(),
        "a dead letter is never due"
    );
    let redriven = store
        .backend()
        .redrive(&Redrive::event(event_id), at(2))
        .await
        .expect("redrive");
    assert_eq!(redriven, 1);
    let again = store
        .backend()
        .claim_deliveries(&lane, claim("r2", at(2)))
        .await
        .expect("claim retries");
    assert_eq!((again.len(), again[0].attempts), (1, 0));
}

async fn a_taken_aggregate_sequence_is_a_conflict<B: Backend>(store: Store<B>) {
    let mut first = event(Some("a"));
    first.aggregate_sequence = Some(1);
    insert_events(&store, &[first]).await;
    let mut rival = event(Some("a"));
    rival.aggregate_sequence = Some(1);
    let mut tx = store.begin().await.expect("begin");
    let inserted = store.backend().insert_events(&mut tx, &[rival], t0()).await;
    // The memory backend checks the sequence at commit, the databases at insert.
    let outcome = match inserted {
        Ok(_) => store.commit(tx).await,
        Err(error) => Err(error),
    };
    assert!(matches!(outcome, Err(StoreError::Conflict)), "{outcome:?}");
}

async fn pruning_never_deletes_an_aggregates_stream<B: Backend>(store: Store<B>) {
    let mut streamed = event(Some("a"));
    streamed.aggregate_sequence = Some(1);
    let plain = event(Some("b"));
    insert_events(&store, &[streamed.clone(), plain.clone()]).await;
    let claimed = claim_events(&store, claim("w1", t0())).await;
    assert_eq!(complete(&store, claimed, &[]).await, 2);
    let pruned = store.backend().prune(at(3600)).await.expect("prune");
    assert_eq!(pruned, 1, "only the event outside any stream");
    let stream = store
        .backend()
        .load_stream("contact", "a", 0)
        .await
        .expect("load the stream");
    assert_eq!(
        stream.iter().map(|event| event.id).collect::<Vec<_>>(),
        vec![streamed.id]
    );
}

on_every_backend!(
    pruning_never_deletes_an_aggregates_stream,
    inserting_an_id_twice_stores_it_once,
    claims_take_the_head_of_each_aggregate_in_position_order,
    a_held_claim_is_not_claimed_again_until_given_back,
    a_completion_after_the_lease_was_taken_over_acknowledges_nothing,
    an_extended_lease_is_kept_until_its_new_end,
    a_released_claim_is_not_counted,
    owed_deliveries_wait_for_their_time,
    a_retry_queues_behind_its_aggregates_earlier_open_delivery,
    a_retrys_claims_count_until_an_attempt_is_recorded,
    a_failed_last_attempt_is_a_dead_letter_until_redriven,
    a_taken_aggregate_sequence_is_a_conflict,
);

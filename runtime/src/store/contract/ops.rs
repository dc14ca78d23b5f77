//! What operators read at the seam: lane and job statistics, event listings and details, and
//! dead letters narrowed the way re-drive narrows them.

use super::{at, claim, event, insert_events, insert_runs, on_every_backend, run, t0};
use crate::ops::{DeliveryStatus, EventFilter, EventStatus, LaneStats, Redrive, RunStatus};
use crate::store::{
    Backend, Claim, DeliveryState, Lane, NewDelivery, NewEvent, Store, StoredEvent,
};

fn audit_event() -> NewEvent {
    NewEvent {
        event_type: "contact_viewed",
        tier: "audit",
        direction: None,
        pool: None,
        ..event(None)
    }
}

fn of_type(event_type: &'static str, aggregate: &str) -> NewEvent {
    NewEvent {
        event_type,
        ..event(Some(aggregate))
    }
}

fn delivery(event: &StoredEvent, subscriber: &str, state: DeliveryState) -> NewDelivery {
    NewDelivery {
        event_id: event.id,
        event_position: event.position,
        subscriber: subscriber.to_owned(),
        pool: event.pool.clone(),
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        state,
    }
}

fn retry(seconds: i64) -> DeliveryState {
    DeliveryState::Retry {
        attempts: 1,
        at: at(seconds),
        last_error: Some("crm is down".to_owned()),
    }
}

fn dead() -> DeliveryState {
    DeliveryState::Failed {
        attempts: 3,
        last_error: "mailbox full".to_owned(),
    }
}

/// Claims the head of `events_change` (one event) and completes it with `deliveries`.
async fn deliver_one<B: Backend>(
    store: &Store<B>,
    deliveries: impl FnOnce(&StoredEvent) -> Vec<NewDelivery>,
) -> StoredEvent {
    let lane = Lane::Pool("events_change".to_owned());
    let one = Claim {
        limit: 1,
        ..claim("w1", t0())
    };
    let claimed = store
        .backend()
        .claim_events(&lane, None, one)
        .await
        .expect("claim")
        .pop()
        .expect("an event to claim");
    store
        .backend()
        .complete_events("w1", &[claimed.position], &deliveries(&claimed), t0())
        .await
        .expect("complete");
    claimed
}

async fn lane_stats_count_backlog_rate_retries_and_dead_letters<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a")), event(Some("b")), event(None)]).await;
    insert_events(&store, &[audit_event()]).await;
    deliver_one(&store, |first| {
        vec![
            delivery(first, "crm", retry(60)),
            delivery(first, "mailer", dead()),
        ]
    })
    .await;

    let lanes = store
        .backend()
        .lane_stats(at(30))
        .await
        .expect("lane stats");
    let pending = store
        .events(&EventFilter {
            status: Some(EventStatus::Pending),
            ..EventFilter::default()
        })
        .await
        .expect("events");
    let oldest_of = |lane: &str| {
        pending
            .iter()
            .filter(|event| event.lane == lane)
            .map(|event| event.recorded_at)
            .min()
    };
    assert_eq!(
        lanes,
        vec![
            LaneStats {
                lane: "audit".to_owned(),
                pending: 1,
                oldest_pending_at: oldest_of("audit"),
                processed_last_minute: 0,
                retrying: 0,
                dead_letters: 0,
            },
            LaneStats {
                lane: "events_change".to_owned(),
                pending: 2,
                oldest_pending_at: oldest_of("events_change"),
                processed_last_minute: 1,
                retrying: 1,
                dead_letters: 1,
            },
        ]
    );
    assert!(oldest_of("events_change").is_some());
    let later = store
        .backend()
        .lane_stats(at(120))
        .await
        .expect("lane stats");
    assert_eq!(
        later[1].processed_last_minute, 0,
        "the rate counts the last minute only"
    );
}

async fn events_are_listed_newest_first_filtered_and_followed<B: Backend>(store: Store<B>) {
    let (created, updated, other) = (
        of_type("contact_created", "a"),
        of_type("contact_updated", "a"),
        of_type("contact_created", "b"),
    );
    insert_events(&store, &[created.clone(), updated.clone(), other.clone()]).await;
    let ids = |filter: EventFilter| {
        let store = store.clone();
        async move {
            store
                .events(&filter)
                .await
                .expect("events")
                .into_iter()
                .map(|event| event.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(EventFilter::default()).await,
        vec![other.id, updated.id, created.id]
    );
    assert_eq!(
        ids(EventFilter {
            event_type: Some("contact_created".to_owned()),
            ..EventFilter::default()
        })
        .await,
        vec![other.id, created.id]
    );
    assert_eq!(
        ids(EventFilter {
            aggregate: Some(("contact".to_owned(), Some("a".to_owned()))),
            limit: 1,
            ..EventFilter::default()
        })
        .await,
        vec![updated.id]
    );
    let all = store.events(&EventFilter::default()).await.expect("events");
    let first_position = all.last().expect("events").position;
    assert_eq!(
        ids(EventFilter {
            after_position: Some(first_position),
            ..EventFilter::default()
        })
        .await,
        vec![updated.id, other.id],
        "following reads oldest first after the position"
    );
    assert!(
        ids(EventFilter {
            tenant: Some("acme".to_owned()),
            ..EventFilter::default()
        })
        .await
        .is_empty()
    );
    let summary = &all[2];
    assert_eq!(
        (
            summary.event_type.as_str(),
            summary.lane.as_str(),
            summary.aggregate_id.as_deref(),
            summary.status,
            summary.claims,
        ),
        (
            "contact_created",
            "events_change",
            Some("a"),
            EventStatus::Pending,
            0
        )
    );
}

async fn an_events_detail_shows_its_payload_what_it_owes_and_its_runs<B: Backend>(store: Store<B>) {
    insert_events(&store, &[event(Some("a"))]).await;
    let delivered = deliver_one(&store, |first| {
        vec![
            delivery(first, "mailer", dead()),
            delivery(first, "crm", retry(60)),
        ]
    })
    .await;
    let triggered = crate::store::NewRun {
        event_id: Some(delivered.id),
        ..run("sync_contact", t0())
    };
    insert_runs(&store, &[triggered.clone(), run("unrelated", t0())]).await;

    let detail = store
        .event(delivered.id)
        .await
        .expect("event")
        .expect("the event exists");
    assert_eq!(detail.event.status, EventStatus::Processed);
    assert_eq!(detail.event.claims, 1);
    assert!(detail.event.processed_at.is_some());
    assert_eq!(detail.payload, serde_json::json!({ "n": 1 }));
    let owed: Vec<_> = detail
        .deliveries
        .iter()
        .map(|d| {
            (
                d.subscriber.as_str(),
                d.status,
                d.attempts,
                d.last_error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        owed,
        vec![
            ("crm", DeliveryStatus::Retrying, 1, Some("crm is down")),
            (
                "mailer",
                DeliveryStatus::DeadLetter,
                3,
                Some("mailbox full")
            ),
        ]
    );
    assert_eq!(
        detail.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![triggered.id]
    );
    assert!(
        store
            .event(uuid::Uuid::now_v7())
            .await
            .expect("event")
            .is_none()
    );
}

async fn dead_letters_are_narrowed_by_event_type_as_redrive_is<B: Backend>(store: Store<B>) {
    insert_events(
        &store,
        &[
            of_type("contact_created", "a"),
            of_type("contact_updated", "b"),
        ],
    )
    .await;
    for _ in 0..2 {
        deliver_one(&store, |event| vec![delivery(event, "mailer", dead())]).await;
    }
    let updated = Redrive::event_type("contact_updated");
    let named = store
        .dead_letters_of(&updated, 10)
        .await
        .expect("dead letters");
    assert_eq!(
        named
            .iter()
            .map(|d| (
                d.event_type.as_str(),
                d.lane.as_str(),
                d.subscriber.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![("contact_updated", "events_change", "mailer")]
    );
    assert_eq!(store.redrive(&updated).await.expect("redrive"), 1);
    let left = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(
        left.iter()
            .map(|d| d.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["contact_created"]
    );
    assert!(
        store
            .dead_letters_of(&Redrive::all().subscriber("crm"), 10)
            .await
            .expect("dead letters")
            .is_empty()
    );
}

async fn committed_events_are_read_in_order_from_a_checkpoint<B: Backend>(store: Store<B>) {
    assert_eq!(
        store.committed_head().await.expect("head"),
        crate::store::Checkpoint::default()
    );
    let ids = insert_events(
        &store,
        &[
            event(Some("a")),
            audit_event(),
            of_type("contact_updated", "b"),
        ],
    )
    .await;
    let all = EventFilter::default();
    // Commit order is read only below every transaction still running on the server: another
    // test's open transaction holds the read back for a moment, by design.
    let mut read = Vec::new();
    for _ in 0..200 {
        read = store
            .events_committed_after(crate::store::Checkpoint::default(), &all)
            .await
            .expect("committed");
        if read.len() >= ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        read.iter().map(|(_, event)| event.id).collect::<Vec<_>>(),
        ids
    );
    let (second, _) = read[1];
    let rest = store
        .events_committed_after(second, &all)
        .await
        .expect("committed");
    assert_eq!(
        rest.iter().map(|(_, e)| e.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(store.committed_head().await.expect("head"), read[2].0);
    let updated = EventFilter {
        event_type: Some("contact_updated".to_owned()),
        ..EventFilter::default()
    };
    let narrowed = store
        .events_committed_after(crate::store::Checkpoint::default(), &updated)
        .await
        .expect("committed");
    assert_eq!(
        narrowed.iter().map(|(_, e)| e.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
}

async fn dead_letters_are_narrowed_by_tenant_as_redrive_is<B: Backend>(store: Store<B>) {
    let of_tenant = |aggregate: &str, tenant: Option<&str>| NewEvent {
        tenant_id: tenant.map(str::to_owned),
        ..of_type("contact_created", aggregate)
    };
    insert_events(
        &store,
        &[
            of_tenant("a", Some("acme")),
            of_tenant("b", Some("globex")),
            of_tenant("c", None),
        ],
    )
    .await;
    for _ in 0..3 {
        deliver_one(&store, |event| vec![delivery(event, "mailer", dead())]).await;
    }
    let acme = Redrive::all().tenant("acme");
    let named = store
        .dead_letters_of(&acme, 10)
        .await
        .expect("dead letters");
    assert_eq!(
        named
            .iter()
            .map(|d| d.aggregate_id.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("a")],
        "only acme's"
    );
    assert_eq!(store.redrive(&acme).await.expect("redrive"), 1);
    let mut left: Vec<_> = store
        .dead_letters(10)
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| d.aggregate_id)
        .collect();
    left.sort();
    assert_eq!(left, vec![Some("b".to_owned()), Some("c".to_owned())]);
}

async fn job_stats_count_runs_by_status_with_the_oldest_due_and_the_earliest_lease<B: Backend>(
    store: Store<B>,
) {
    let (first, second, canceled, later) = (
        run("j", t0()),
        run("j", at(1)),
        run("j", at(1)),
        run("j", at(100)),
    );
    insert_runs(&store, &[first.clone(), second, canceled.clone(), later]).await;
    store
        .backend()
        .cancel_tree(canceled.id, at(2))
        .await
        .expect("cancel");
    let one = Claim {
        limit: 1,
        ..claim("w1", at(2))
    };
    let claimed = store
        .backend()
        .claim_runs("batch", &["j"], one)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, first.id);

    let stats = store.backend().job_stats(at(10)).await.expect("job stats");
    assert_eq!(stats.len(), 1);
    let j = &stats[0];
    assert_eq!(
        (j.pool.as_str(), j.job.as_str()),
        ("batch", "j"),
        "{stats:?}"
    );
    assert_eq!(
        (j.due, j.scheduled, j.running, j.completed, j.failed),
        (1, 1, 1, 0, 1),
        "{stats:?}"
    );
    assert_eq!(j.oldest_due_at, Some(at(1)));
    assert_eq!(j.earliest_lease_expiry, Some(at(32)));
    let running = store
        .backend()
        .get_run(first.id)
        .await
        .expect("get run")
        .expect("the run exists");
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.lease_expires_at, Some(at(32)));
}

on_every_backend!(
    lane_stats_count_backlog_rate_retries_and_dead_letters,
    events_are_listed_newest_first_filtered_and_followed,
    an_events_detail_shows_its_payload_what_it_owes_and_its_runs,
    dead_letters_are_narrowed_by_event_type_as_redrive_is,
    dead_letters_are_narrowed_by_tenant_as_redrive_is,
    committed_events_are_read_in_order_from_a_checkpoint,
    job_stats_count_runs_by_status_with_the_oldest_due_and_the_earliest_lease,
);

//! What Herald records through the `metrics` facade, read back from a recorder with exact
//! counts: publishes (a duplicate id counts nothing), deliveries by outcome, the delivery
//! latency, runs enqueued, started and finished, and the gauges of `report_metrics`.
//!
//! One test in its own binary: the recorder is global, and nothing else runs beside it.

use std::time::Duration;

use herald::uuid::Uuid;
use herald::{Envelope, Jobs, Publish};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::{ContactCreated, StripePaymentReceived};
use integration_tests::fixtures::{contact_created, drain_until_idle, payment};
use integration_tests::jobs::{Probe, SyncContact};
use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

/// What the recorder held at one reading: a snapshot takes what changed since the last one,
/// so each reading takes one and asks it everything.
type Snapshot = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The value of the metric `name` whose labels include every pair of `labels`.
fn value<'s>(
    snapshot: &'s Snapshot,
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'s DebugValue> {
    snapshot
        .iter()
        .find(|(key, _, _, _)| {
            key.kind() == kind
                && key.key().name() == name
                && labels.iter().all(|(label, wanted)| {
                    key.key()
                        .labels()
                        .any(|l| l.key() == *label && l.value() == *wanted)
                })
        })
        .map(|(_, _, _, value)| value)
}

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(snapshot, MetricKind::Counter, name, labels) {
        Some(DebugValue::Counter(count)) => *count,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_records_what_it_does() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let (_dir, store) = integration_tests::support::sqlite().await;
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    bus.subscribe("audit_log", |_: Envelope<ContactCreated>| async {
        Ok::<_, String>(())
    });
    bus.subscribe("ledger", |_: Envelope<StripePaymentReceived>| async {
        Err::<(), _>("ledger unavailable".to_owned())
    });
    let payment = payment("cus_1");
    let payment_id = Uuid::now_v7();
    let mut tx = store.begin().await.unwrap();
    for _ in 0..2 {
        let contact = Uuid::now_v7();
        bus.publish(&mut tx, contact, contact_created(contact))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        // The same id twice, as a webhook delivered twice: stored once, counted once.
        bus.publish_with(&mut tx, Publish::new(payment.clone()).id(payment_id))
            .await
            .unwrap();
    }
    store.commit(tx).await.unwrap();

    let drained = drain_until_idle(&bus).await;
    assert_eq!(drained.dead_lettered, 1, "{drained:?}");
    tokio::time::timeout(
        Duration::from_secs(20),
        bus.worker().state(Probe::default()).run_until_idle(),
    )
    .await
    .expect("the worker goes idle")
    .unwrap();

    let done = snapshotter.snapshot().into_vec();
    let count = |name: &str, labels: &[(&str, &str)]| counter(&done, name, labels);
    assert_eq!(
        count(
            "herald_events_published_total",
            &[("type", "contact_created")]
        ),
        2
    );
    assert_eq!(
        count(
            "herald_events_published_total",
            &[("type", "stripe_payment_received")]
        ),
        1
    );
    let deliveries = |subscriber: &str, outcome: &str| {
        count(
            "herald_deliveries_total",
            &[("subscriber", subscriber), ("outcome", outcome)],
        )
    };
    assert_eq!(deliveries("audit_log", "delivered"), 2);
    // stripe_payment_received.yaml: `retry: { attempts: 5 }`.
    assert_eq!(deliveries("ledger", "retry"), 4);
    assert_eq!(deliveries("ledger", "dead_letter"), 1);
    match value(
        &done,
        MetricKind::Histogram,
        "herald_delivery_latency_seconds",
        &[("type", "contact_created")],
    ) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(
                samples.len(),
                2,
                "one per event's first successful delivery"
            );
            assert!(samples.iter().all(|s| s.into_inner() >= 0.0));
        }
        other => panic!("latency: {other:?}"),
    }
    assert_eq!(
        count("herald_jobs_enqueued_total", &[("job", "sync_contact")]),
        2
    );
    assert_eq!(
        count("herald_jobs_started_total", &[("job", "sync_contact")]),
        2
    );
    assert_eq!(
        count(
            "herald_jobs_finished_total",
            &[("job", "sync_contact"), ("outcome", "completed")]
        ),
        2
    );

    let reporter = store.report_metrics(Duration::from_secs(3600));
    let gauge_in = |snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]| match value(
        snapshot,
        MetricKind::Gauge,
        name,
        labels,
    ) {
        Some(DebugValue::Gauge(value)) => Some(value.into_inner()),
        _ => None,
    };
    let start = std::time::Instant::now();
    let reported = loop {
        let snapshot = snapshotter.snapshot().into_vec();
        if gauge_in(&snapshot, "herald_jobs_due", &[("job", "sync_contact")]).is_some() {
            break snapshot;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the reporter never reported"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let gauge = |name: &str, labels: &[(&str, &str)]| gauge_in(&reported, name, labels);
    reporter.shutdown().await;
    assert_eq!(
        gauge("herald_lane_dead_letters", &[("lane", "events_inbound")]),
        Some(1.0)
    );
    assert_eq!(
        gauge("herald_lane_pending", &[("lane", "events_change")]),
        Some(0.0)
    );
    assert_eq!(
        gauge(
            "herald_jobs_due",
            &[("pool", "batch"), ("job", "sync_contact")]
        ),
        Some(0.0)
    );
}

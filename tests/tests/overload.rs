//! Offered load above capacity: producers publish events and enqueue jobs at 1.5 times the rate
//! the consumers can take for a few seconds, so that a backlog builds under a working drain and
//! worker, then stop. Whatever the queue does under that pressure (claims over a growing
//! backlog, batches slower than their lease would be without renewal, wake-ups that keep coming),
//! every event must be delivered once, in order per aggregate, and every job run once, with
//! nothing dead-lettered, and the backlog must be worked off afterwards.
//!
//! The consumers' capacity is set by construction, not measured: each handler takes a token
//! from a bucket that hands out one every `1 / CAPACITY` seconds, so the assertions hold on a
//! slow machine as on a fast one (only the deadlines are generous).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::uuid::Uuid;
use herald::{Backend, Envelope, HandlerError, JobContext, JobError, Jobs, Store, job_handler};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::ContactCreated;
use integration_tests::support::eventually;
use serde::{Deserialize, Serialize};

/// Events (and, separately, jobs) the consumers can take per second.
const CAPACITY: u32 = 200;
/// How long the producer offers 1.5 × `CAPACITY`.
const OFFERED_FOR: Duration = Duration::from_secs(3);
/// One producer transaction every `TICK`.
const TICK: Duration = Duration::from_millis(50);
/// Aggregates each transaction's events are spread over, several events each.
const AGGREGATES_PER_TICK: u32 = 5;

/// Hands out one token every `interval`: whoever takes one waits its turn.
struct Bucket {
    interval: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Bucket {
    fn per_second(rate: u32) -> Arc<Self> {
        Arc::new(Self {
            interval: Duration::from_secs(1) / rate,
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        })
    }

    async fn take(&self) {
        let mut next = self.next.lock().await;
        let now = tokio::time::Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + self.interval;
    }
}

/// The job side's bucket and what its runs saw.
#[derive(Clone)]
struct JobSide {
    bucket: Arc<Bucket>,
    runs: Arc<Mutex<HashMap<u32, u32>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Paced {
    n: u32,
}

#[job_handler(retries = 0)]
async fn paced_job(ctx: JobContext, input: Paced) -> Result<(), JobError> {
    let side = ctx.state::<JobSide>()?;
    side.bucket.take().await;
    *side.runs.lock().unwrap().entry(input.n).or_default() += 1;
    Ok(())
}

async fn offered_load_above_capacity_loses_nothing_and_is_worked_off<B: Backend>(store: Store<B>) {
    let bus = TypedEventBus::new(store).with_jobs(Jobs::new().register::<PacedJob>());
    let delivered: Arc<Mutex<Vec<(Uuid, u32)>>> = Arc::default();
    let events_bucket = Bucket::per_second(CAPACITY);
    {
        let (sink, bucket) = (delivered.clone(), events_bucket.clone());
        bus.subscribe("paced", move |e: Envelope<ContactCreated>| {
            let (sink, bucket) = (sink.clone(), bucket.clone());
            async move {
                bucket.take().await;
                // `created_by` carries the event's number within its aggregate.
                let n = e.payload.created_by.as_u128() as u32;
                sink.lock().unwrap().push((e.payload.contact_id, n));
                Ok::<_, HandlerError>(())
            }
        });
    }
    let jobs = JobSide {
        bucket: Bucket::per_second(CAPACITY),
        runs: Arc::default(),
    };
    let drain = bus
        .drain()
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
        .spawn();
    let worker = bus
        .worker()
        .state(jobs.clone())
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
        .spawn();

    // 1.5 × capacity, per tick, split evenly over the tick's aggregates.
    let per_tick = CAPACITY * 3 / 2 * TICK.as_millis() as u32 / 1_000;
    let per_aggregate = per_tick / AGGREGATES_PER_TICK;
    let ticks = (OFFERED_FOR.as_millis() / TICK.as_millis()) as u32;
    let mut aggregates = Vec::new();
    let mut next_job = 0;
    let mut clock = tokio::time::interval(TICK);
    for _ in 0..ticks {
        clock.tick().await;
        let mut tx = bus.store().begin().await.expect("begin");
        for _ in 0..AGGREGATES_PER_TICK {
            let contact = Uuid::now_v7();
            for n in 0..per_aggregate {
                let event = ContactCreated {
                    contact_id: contact,
                    account_id: None,
                    created_by: Uuid::from_u128(u128::from(n)),
                };
                bus.publish(&mut tx, contact, event).await.expect("publish");
            }
            aggregates.push(contact);
        }
        for _ in 0..per_aggregate * AGGREGATES_PER_TICK {
            bus.store()
                .jobs()
                .start::<PacedJob>(&mut tx, Paced { n: next_job })
                .await
                .expect("enqueue");
            next_job += 1;
        }
        bus.store().commit(tx).await.expect("commit");
    }
    let offered = (aggregates.len() as u32 * per_aggregate) as usize;
    let (events_then, jobs_then) = (
        delivered.lock().unwrap().len(),
        jobs.runs.lock().unwrap().len(),
    );
    // Both sides kept working while the load was offered, and neither kept up: the buckets
    // allow at most CAPACITY per second, two thirds of what was offered.
    assert!(
        events_then > 0 && jobs_then > 0,
        "the drain ({events_then}) or the worker ({jobs_then}) stalled under the load"
    );
    assert!(
        events_then < offered && jobs_then < offered,
        "no backlog built ({events_then} events, {jobs_then} jobs of {offered}): not an overload"
    );

    let deadline = Duration::from_secs(60);
    eventually("the events' backlog is worked off", deadline, || async {
        delivered.lock().unwrap().len() >= offered
    })
    .await;
    eventually("the jobs' backlog is worked off", deadline, || async {
        jobs.runs.lock().unwrap().len() >= offered
    })
    .await;
    drain.shutdown().await;
    worker.shutdown().await;

    let delivered = delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), offered, "each event delivered once");
    let mut per_aggregate_seen: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for (contact, n) in delivered {
        per_aggregate_seen.entry(contact).or_default().push(n);
    }
    for contact in &aggregates {
        assert_eq!(
            per_aggregate_seen[contact],
            (0..per_aggregate).collect::<Vec<_>>(),
            "the events of {contact} out of order or missing"
        );
    }
    let runs = jobs.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), offered, "every job ran");
    assert!(
        runs.values().all(|&times| times == 1),
        "a job ran twice under the load"
    );
    let stats = bus.store().stats().await.expect("stats");
    assert_eq!(stats.pending_events, 0, "{stats:?}");
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
}

integration_tests::on_every_backend!(offered_load_above_capacity_loses_nothing_and_is_worked_off);

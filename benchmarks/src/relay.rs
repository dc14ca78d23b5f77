//! The relay to NATS JetStream, each figure beside the drain's own with a no-op subscriber,
//! measured in the same run on the same database: events relayed per second from a backlog
//! (1 and 4 drain workers, each its own lane of the pool), and the latency from commit to the
//! message in the stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm::generated::{AppEvent, TypedEventBus};
use herald::futures_util::StreamExt;
use herald::relay::async_nats::jetstream::{self, consumer};
use herald::relay::{Relay, headers};
use herald::uuid::Uuid;
use herald::{ServiceHandle, Store};

use super::{
    Dialect, Failure, Report, counting_bus, created, latencies, ms, per_second, percentile,
    publish_backlog, publish_spaced, rate, wait_for,
};

/// A relay to a fresh stream of this run, its subjects under a prefix of its own.
async fn fresh_relay(
    client: &herald::relay::async_nats::Client,
) -> Result<Relay<AppEvent>, Failure> {
    let id = Uuid::now_v7().simple().to_string();
    let relay = Relay::<AppEvent>::new(client.clone(), format!("BENCH_{id}"))
        .subjects(format!("bench{id}.{{direction}}.{{type}}").parse()?);
    relay.ensure_stream().await?;
    Ok(relay)
}

async fn delete(client: &herald::relay::async_nats::Client, relay: &Relay<AppEvent>) {
    let _ = jetstream::new(client.clone())
        .delete_stream(relay.stream_name())
        .await;
}

async fn wait_relayed(relay: &Relay<AppEvent>, target: u64) -> Result<(), Failure> {
    let start = Instant::now();
    loop {
        let stats = relay.stats();
        if stats.published + stats.duplicates >= target {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(format!("relay gave up: {stats:?} of {target}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(super) async fn run<B: Dialect>(
    store: Store<B>,
    nats_url: &str,
    args: &super::Args,
    report: &mut Report,
) -> Result<(), Failure> {
    let name = B::NAME;
    let n = args.events;
    let client = herald::relay::async_nats::connect(nats_url).await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let bus = counting_bus(&store, &delivered, &arrivals);

    // 1. A backlog relayed by 1 and 4 drain workers, against the same backlog drained to a
    //    no-op subscriber by as many workers.
    for workers in [1usize, 4] {
        delivered.store(0, Ordering::Relaxed);
        publish_backlog(&bus, n, 1_000).await?;
        let drains: Vec<ServiceHandle> = (0..workers)
            .map(|w| {
                counting_bus(&store, &delivered, &arrivals)
                    .drain()
                    .worker_id(format!("noop-{w}"))
                    .spawn()
            })
            .collect();
        let start = Instant::now();
        wait_for(&delivered, n, Duration::from_secs(600)).await?;
        let noop = rate(n, start.elapsed());
        for drain in drains {
            drain.shutdown().await;
        }

        let relay = fresh_relay(&client).await?;
        let relaying = TypedEventBus::new(store.clone());
        publish_backlog(&relaying, n, 1_000).await?;
        let drains: Vec<ServiceHandle> = (0..workers)
            .map(|w| {
                let bus = TypedEventBus::new(store.clone());
                relay.subscribe(&bus);
                bus.drain().worker_id(format!("relay-{w}")).spawn()
            })
            .collect();
        let start = Instant::now();
        wait_relayed(&relay, n).await?;
        let relayed = rate(n, start.elapsed());
        for drain in drains {
            drain.shutdown().await;
        }
        delete(&client, &relay).await;
        report.add(
            name,
            format!("relay a backlog of {n} to JetStream, {workers} worker(s) (vs no-op)"),
            per_second(relayed),
            per_second(noop),
            format!("{:.2}", relayed / noop),
        );
    }

    // 2. Commit to message in the stream, on an idle system, against commit to a no-op
    //    handler. The stream side is seen by a consumer of the stream: its delivery (one more
    //    loopback hop) is included, so the figure is an upper bound.
    let noop_drain = bus.drain().spawn();
    let committed = publish_spaced(&bus, 1_000).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    noop_drain.shutdown().await;
    let noop_latencies = latencies(&committed, &arrivals.lock().unwrap());

    let relay = fresh_relay(&client).await?;
    let mut stream = jetstream::new(client.clone())
        .get_stream(relay.stream_name())
        .await?;
    let watcher: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let _ = stream.info().await?;
    let seen: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let watching = {
        let seen = seen.clone();
        let mut messages = watcher.messages().await?;
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let at = Instant::now();
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(headers::MESSAGE_ID))
                    .and_then(|id| id.as_str().parse::<Uuid>().ok());
                if let Some(id) = id {
                    seen.lock().unwrap().insert(id, at);
                }
            }
        })
    };
    let relaying = TypedEventBus::new(store.clone());
    relay.subscribe(&relaying);
    let relay_drain = relaying.drain().spawn();
    let mut committed = HashMap::new();
    for n in 0..1_000 {
        let event = created(n);
        let mut tx = store.begin().await?;
        let id = relaying.publish(&mut tx, event.contact_id, event).await?;
        store.commit(tx).await?;
        committed.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay_drain.shutdown().await;
    watching.abort();
    let relay_latencies = latencies(&committed, &seen.lock().unwrap());
    delete(&client, &relay).await;
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        report.add(
            name,
            format!(
                "commit-to-stream latency {label} ({} samples; vs no-op handler)",
                relay_latencies.len()
            ),
            ms(percentile(&relay_latencies, p)),
            ms(percentile(&noop_latencies, p)),
            format!(
                "{:.2}",
                percentile(&relay_latencies, p).as_secs_f64()
                    / percentile(&noop_latencies, p).as_secs_f64().max(1e-9)
            ),
        );
    }
    Ok(())
}

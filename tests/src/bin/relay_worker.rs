//! A drain worker for the relay kill test: relays the example domain's change events to a
//! JetStream stream until it is killed.
//!
//! Usage: `relay_worker <database-url> <nats-url> <stream> <subject-prefix> <worker-id>`

use std::time::Duration;

use herald::relay::Relay;
use herald::{Backend, DrainConfig, RetryTiming, Store};
use integration_tests::domain::{AppEvent, TypedEventBus};

struct Target {
    nats_url: String,
    stream: String,
    subject_prefix: String,
    worker: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, nats_url, stream, subject_prefix, worker] = <[String; 5]>::try_from(args).map_err(
        |_| "usage: relay_worker <database-url> <nats-url> <stream> <subject-prefix> <worker-id>",
    )?;
    let target = Target {
        nats_url,
        stream,
        subject_prefix,
        worker,
    };
    if url.starts_with("sqlite:") {
        run(herald::sqlite(&url).await?, target).await
    } else {
        run(herald::postgres(&url).await?, target).await
    }
}

async fn run<B: Backend>(
    store: Store<B>,
    target: Target,
) -> Result<(), Box<dyn std::error::Error>> {
    // A short lease, so that the next worker takes over a killed one's claims quickly.
    let config = DrainConfig {
        lease: Duration::from_secs(1),
        poll_interval: Duration::from_millis(100),
        retry: RetryTiming {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        ..DrainConfig::default()
    };
    let client = herald::relay::async_nats::connect(&target.nats_url).await?;
    let bus = TypedEventBus::new(store);
    Relay::<AppEvent>::new(client, &target.stream)
        .subjects(format!("{}.{{direction}}.{{type}}", target.subject_prefix).parse()?)
        .drain_config(&config)
        .publish_timeout(Duration::from_secs(1))
        .subscribe(&bus);
    let _drain = bus.drain().config(config).worker_id(target.worker).spawn();
    println!("relaying");
    std::future::pending::<()>().await;
    Ok(())
}

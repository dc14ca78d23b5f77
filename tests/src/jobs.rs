//! Jobs for the runtime tests, declared with `#[job_handler]` as an application would. A
//! [`Probe`] handed to the worker (`Worker::state`) lets tests see what the jobs did.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::uuid::Uuid;
use herald::{JobContext, JobError, RunAt, job_handler};
use serde::{Deserialize, Serialize};

use crate::domain::events::ContactCreated;

/// What the test jobs record.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub running: Arc<AtomicUsize>,
    pub max_running: Arc<AtomicUsize>,
    pub side_effects: Arc<AtomicU32>,
}

impl Probe {
    pub fn record(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactToSync {
    pub contact_id: Uuid,
}

impl From<&ContactCreated> for ContactToSync {
    fn from(event: &ContactCreated) -> Self {
        Self {
            contact_id: event.contact_id,
        }
    }
}

/// Triggered by every `contact_created`; one live run per contact.
#[job_handler(triggers = [ContactCreated], dedupe = "contact_id", retries = 3)]
pub async fn sync_contact(ctx: JobContext, input: ContactToSync) -> Result<Uuid, JobError> {
    ctx.state::<Probe>()?
        .record(format!("sync {}", input.contact_id));
    Ok(input.contact_id)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nothing {}

#[job_handler(retries = 2, backoff = "fixed")]
pub async fn always_fails(ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    ctx.state::<Probe>()?
        .record(format!("attempt {}", ctx.attempt()));
    Err(JobError::msg(format!(
        "remote said no (attempt {})",
        ctx.attempt()
    )))
}

#[job_handler(timeout = "100ms", retries = 5)]
pub async fn sleeps_too_long(_ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: String,
    pub n: u32,
}

#[job_handler(dedupe = "key")]
pub async fn deduped(ctx: JobContext, input: Keyed) -> Result<u32, JobError> {
    ctx.state::<Probe>()?
        .record(format!("{} {}", input.key, input.n));
    Ok(input.n)
}

/// At most two run at once across all workers.
#[job_handler(concurrency = 2)]
pub async fn capped(ctx: JobContext, _input: Keyed) -> Result<(), JobError> {
    let probe = ctx.state::<Probe>()?;
    let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.max_running.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(25)).await;
    probe.running.fetch_sub(1, Ordering::SeqCst);
    probe.record("capped done");
    Ok(())
}

/// Charges once, then fails its first attempt after the charge: the retry must not charge again.
#[job_handler(retries = 3, backoff = "fixed")]
pub async fn charge_then_crash(ctx: JobContext, _input: Nothing) -> Result<u32, JobError> {
    let probe = ctx.state::<Probe>()?.clone();
    let receipt = ctx
        .step("charge", || async {
            Ok::<_, JobError>(probe.side_effects.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .await?;
    if ctx.attempt() == 1 {
        return Err(JobError::msg("crashed after charging"));
    }
    Ok(receipt)
}

/// Spawns a delayed child, then works until canceled.
#[job_handler]
pub async fn parent_of_a_tree(ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    ctx.spawn_child::<LeafOfATree>(Nothing {}, RunAt::In(Duration::from_secs(3600)))
        .await?;
    ctx.state::<Probe>()?.record("parent started");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[job_handler]
pub async fn leaf_of_a_tree(_ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    Ok(())
}

/// Runs for longer than its worker's lease: heartbeats must keep it.
#[job_handler(retries = 0)]
pub async fn outlives_its_lease(ctx: JobContext, _input: Nothing) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(1800)).await;
    Ok(ctx.attempt())
}

/// Where [`slow_sync`] writes what it did, so that a test in another process can read it.
#[derive(Debug, Clone)]
pub enum Ledger {
    Sqlite(herald::sqlx::SqlitePool),
    Postgres(herald::sqlx::PgPool),
}

impl Ledger {
    pub const SCHEMA: &str =
        "CREATE TABLE IF NOT EXISTS ledger (run_id TEXT NOT NULL, entry TEXT NOT NULL)";

    pub async fn record(&self, run: Uuid, entry: &str) -> Result<(), herald::sqlx::Error> {
        match self {
            Ledger::Sqlite(pool) => {
                herald::sqlx::query("INSERT INTO ledger (run_id, entry) VALUES (?, ?)")
                    .bind(run.to_string())
                    .bind(entry)
                    .execute(pool)
                    .await?;
            }
            Ledger::Postgres(pool) => {
                herald::sqlx::query("INSERT INTO ledger (run_id, entry) VALUES ($1, $2)")
                    .bind(run.to_string())
                    .bind(entry)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Records its start, works for a second and a half, records its end: long enough to be
/// killed in the middle.
#[job_handler(retries = 3)]
pub async fn slow_sync(ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    let ledger = ctx.state::<Ledger>()?;
    ledger
        .record(ctx.run_id(), &format!("started {}", ctx.attempt()))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ledger
        .record(ctx.run_id(), &format!("finished {}", ctx.attempt()))
        .await?;
    Ok(())
}

/// Spawns a child, then fails its first attempt: the retried attempt spawns it again, which must
/// give back the same child.
#[job_handler(retries = 2, backoff = "fixed")]
pub async fn spawns_then_fails_once(ctx: JobContext, _input: Nothing) -> Result<Uuid, JobError> {
    let child = ctx
        .spawn_child::<RecordsItsTenant>(Nothing {}, RunAt::Now)
        .await?;
    if ctx.attempt() == 1 {
        return Err(JobError::msg("crashed after spawning"));
    }
    Ok(child)
}

/// Records the tenant its context carries.
#[job_handler]
pub async fn records_its_tenant(ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    let tenant = ctx.tenant().unwrap_or("none").to_owned();
    ctx.state::<Probe>()?.record(format!("tenant {tenant}"));
    Ok(())
}

/// Records a tick every 20 ms until its attempt is stopped.
#[job_handler(retries = 0)]
pub async fn ticks_until_canceled(ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    let probe = ctx.state::<Probe>()?.clone();
    loop {
        probe.record("tick");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

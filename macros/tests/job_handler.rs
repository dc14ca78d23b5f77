//! What `#[job_handler]` generates, read back through the `Job` trait.

use std::time::Duration;

use herald::{Backoff, Job, JobContext, JobError, job_handler};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_created", direction = "change", aggregate = "contact")]
pub struct ContactCreated {
    pub contact_id: u64,
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_archived", direction = "change", aggregate = "contact")]
pub struct ContactArchived {
    pub contact_id: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SyncInput {
    pub contact_id: u64,
}

impl From<&ContactCreated> for SyncInput {
    fn from(event: &ContactCreated) -> Self {
        Self {
            contact_id: event.contact_id,
        }
    }
}

impl From<&ContactArchived> for SyncInput {
    fn from(event: &ContactArchived) -> Self {
        Self {
            contact_id: event.contact_id,
        }
    }
}

#[job_handler(pool = "interactive", retries = 5, backoff = "linear", timeout = "1500ms",
              triggers = [ContactCreated, ContactArchived], dedupe = "contact_id",
              concurrency = 4)]
async fn sync_contact_to_crm(_ctx: JobContext, input: SyncInput) -> Result<u64, JobError> {
    Ok(input.contact_id)
}

/// `max_attempts` counts like an event's `retry(attempts = N)`: the first attempt included.
#[job_handler(max_attempts = 3, backoff = "fixed")]
async fn counted_in_attempts(_ctx: JobContext, _input: SyncInput) -> Result<(), JobError> {
    Ok(())
}

#[job_handler(retries = 0)]
async fn once(_ctx: JobContext, _input: SyncInput) -> Result<(), JobError> {
    Ok(())
}

#[job_handler]
async fn plain(_ctx: JobContext, _input: SyncInput) -> Result<(), std::io::Error> {
    Ok(())
}

/// A job may take its trigger event itself as input.
#[job_handler(name = "archive_mirror", triggers = [ContactArchived], timeout = "2m")]
async fn mirror(_ctx: JobContext, input: ContactArchived) -> Result<(), JobError> {
    let _ = input.contact_id;
    Ok(())
}

#[test]
fn every_key_reaches_the_job() {
    type J = SyncContactToCrm;
    assert_eq!(J::NAME, "sync_contact_to_crm");
    assert_eq!(J::POOL, "interactive");
    assert_eq!(
        J::RETRY.attempts,
        6,
        "retries counts re-runs after the first attempt"
    );
    assert_eq!(J::RETRY.backoff, Backoff::Linear);
    assert_eq!(J::TIMEOUT, Duration::from_millis(1500));
    assert_eq!(J::CONCURRENCY, Some(4));
    let triggers: Vec<&str> = J::TRIGGERS.iter().map(|t| t.event_type).collect();
    assert_eq!(triggers, ["contact_created", "contact_archived"]);
    assert_eq!(
        J::dedupe_key(&SyncInput { contact_id: 42 }),
        Some("42".to_owned())
    );
}

#[test]
fn max_attempts_counts_every_attempt() {
    assert_eq!(CountedInAttempts::RETRY.attempts, 3);
    assert_eq!(CountedInAttempts::RETRY.backoff, Backoff::Fixed);
    assert_eq!(
        Once::RETRY.attempts,
        1,
        "retries = 0 is a single attempt, as max_attempts = 1"
    );
}

#[test]
fn defaults() {
    assert_eq!(Plain::NAME, "plain");
    assert_eq!(Plain::POOL, herald::DEFAULT_JOB_POOL);
    assert_eq!(Plain::RETRY.attempts, 11);
    assert_eq!(Plain::RETRY.backoff, Backoff::Exponential);
    assert_eq!(Plain::TIMEOUT, Duration::from_secs(60));
    assert_eq!(Plain::CONCURRENCY, None);
    assert!(Plain::TRIGGERS.is_empty());
    assert_eq!(Plain::dedupe_key(&SyncInput { contact_id: 1 }), None);
}

#[test]
fn triggers_build_the_input_from_the_event() {
    let trigger = &SyncContactToCrm::TRIGGERS[1];
    assert_eq!(
        trigger.input_for(r#"{"contact_id": 7}"#).unwrap(),
        r#"{"contact_id":7}"#
    );
    assert!(trigger.input_for(r#"{"contact": 7}"#).is_err());
    assert_eq!(Mirror::NAME, "archive_mirror");
    assert_eq!(Mirror::TIMEOUT, Duration::from_secs(120));
    assert_eq!(
        Mirror::TRIGGERS[0]
            .input_for(r#"{"contact_id": 3}"#)
            .unwrap(),
        r#"{"contact_id":3}"#
    );
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn run_of<J: Job>(ctx: JobContext, input: J::Input) {
        let future = J::run(ctx, input);
        assert_send(&future);
    }
    // Type-checking `run_of` for each job is the test: a non-Send future would not compile.
    let _ = run_of::<SyncContactToCrm>;
    let _ = run_of::<Plain>;
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Tagged {
    pub r#type: String,
}

/// Keywords name raw fields and functions: `dedupe = "type"` reads `r#type`, and the job of
/// `r#match` is `Match`, named "match".
#[job_handler(dedupe = "type")]
async fn r#match(_ctx: JobContext, input: Tagged) -> Result<String, JobError> {
    Ok(input.r#type)
}

#[test]
fn raw_identifiers() {
    assert_eq!(Match::NAME, "match");
    assert_eq!(
        Match::dedupe_key(&Tagged {
            r#type: "invoice".into()
        }),
        Some("invoice".to_owned())
    );
}

//! Fault injection: what a crashed or stalled process leaves behind, made on purpose, so that
//! tests can check that the others recover from it.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::store::{
    AttemptOutcome, AttemptResult, Backend, Claim, Lane, NewEvent, NewRun, Store, StoreError,
};

/// The lane of `pool`, or the audit lane for `"audit"`.
fn lane_named(pool: &str) -> Lane {
    if pool == "audit" {
        Lane::Audit
    } else {
        Lane::Pool(pool.to_owned())
    }
}

/// A claim of up to 100 rows by `owner`, now, for `lease`.
fn silent_claim<'a, B: Backend>(store: &Store<B>, owner: &'a str, lease: Duration) -> Claim<'a> {
    Claim {
        owner,
        limit: 100,
        lease,
        now: store.now(),
    }
}

/// A claim of events by a worker that then goes silent, as one that crashed or stalled in the
/// middle of a batch: the events stay claimed until the lease expires.
pub struct SilentEventClaim<B: Backend> {
    store: Store<B>,
    ids: Vec<Uuid>,
    positions: Vec<i64>,
    owner: String,
}

impl<B: Backend> SilentEventClaim<B> {
    /// Claims up to 100 events of `pool` (`"audit"` for the audit lane), of any type, for
    /// `lease`.
    pub async fn take(store: &Store<B>, pool: &str, lease: Duration) -> Result<Self, StoreError> {
        let lane = lane_named(pool);
        let owner = format!("silent-{}", Uuid::now_v7().simple());
        let events = store
            .backend()
            .claim_events(&lane, None, silent_claim(store, &owner, lease))
            .await?;
        Ok(Self {
            store: store.clone(),
            ids: events.iter().map(|event| event.id).collect(),
            positions: events.iter().map(|event| event.position).collect(),
            owner,
        })
    }

    /// How many events the claim holds.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the claim holds no event.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The ids of the events the claim holds, in outbox order.
    pub fn event_ids(&self) -> Vec<Uuid> {
        self.ids.clone()
    }

    /// The silent worker wakes up and acknowledges its batch as delivered, too late: returns how
    /// many events were still its own (none, once the lease has expired and another worker took
    /// them).
    pub async fn acknowledge_late(self) -> Result<u64, StoreError> {
        self.store
            .backend()
            .complete_events(&self.owner, &self.positions, &[], self.store.now())
            .await
    }
}

/// A claim of due retries by a worker that then goes silent, as one that crashed or stalled in
/// the middle of re-delivering them: the retries stay claimed until the lease expires.
pub struct SilentDeliveryClaim {
    claimed: usize,
}

impl SilentDeliveryClaim {
    /// Claims up to 100 due retries of `pool` (`"audit"` for the audit lane) for `lease`.
    pub async fn take<B: Backend>(
        store: &Store<B>,
        pool: &str,
        lease: Duration,
    ) -> Result<Self, StoreError> {
        let lane = lane_named(pool);
        let owner = format!("silent-{}", Uuid::now_v7().simple());
        let claimed = store
            .backend()
            .claim_deliveries(&lane, silent_claim(store, &owner, lease))
            .await?;
        Ok(Self {
            claimed: claimed.len(),
        })
    }

    /// How many retries the claim holds.
    pub fn len(&self) -> usize {
        self.claimed
    }

    /// Whether the claim holds no retry.
    pub fn is_empty(&self) -> bool {
        self.claimed == 0
    }
}

/// A claim of job runs by a worker that then goes silent: the runs stay `running` until their
/// lease expires and they are rescued.
pub struct SilentRunClaim<B: Backend> {
    store: Store<B>,
    runs: Vec<(Uuid, u32)>,
}

impl<B: Backend> SilentRunClaim<B> {
    /// Claims up to 100 due runs of the jobs `jobs` in `pool` for `lease`.
    pub async fn take(
        store: &Store<B>,
        pool: &str,
        jobs: &[&'static str],
        lease: Duration,
    ) -> Result<Self, StoreError> {
        let owner = format!("silent-{}", Uuid::now_v7().simple());
        let runs = store
            .backend()
            .claim_runs(pool, jobs, silent_claim(store, &owner, lease))
            .await?;
        Ok(Self {
            store: store.clone(),
            runs: runs.iter().map(|run| (run.id, run.attempt)).collect(),
        })
    }

    /// How many runs the claim holds.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether the claim holds no run.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The silent worker reports its attempts as failed, too late: returns how many were still
    /// its own (none, once they were rescued and run again elsewhere).
    pub async fn fail_late(self) -> Result<u64, StoreError> {
        let results: Vec<AttemptResult> = self
            .runs
            .iter()
            .map(|&(id, attempt)| AttemptResult {
                id,
                attempt,
                outcome: AttemptOutcome::Failed {
                    error: "late result of a silent worker".to_owned(),
                },
            })
            .collect();
        self.store
            .backend()
            .finish_runs(&results, self.store.now())
            .await
    }
}

/// An event row written the way another release would have written it — an older version of
/// a payload, or a type this code does not know — for tests of upcasters and rolling deploys.
#[derive(Debug, Clone)]
#[must_use = "a RawEvent does nothing until it is inserted"]
pub struct RawEvent {
    row: NewEvent,
}

impl RawEvent {
    /// A change event of `event_type` at `version` with this payload, in the `events_change`
    /// pool.
    pub fn change(event_type: &'static str, version: u32, payload: serde_json::Value) -> Self {
        Self {
            row: NewEvent {
                id: Uuid::now_v7(),
                event_type,
                version,
                tier: "domain",
                direction: Some("change"),
                pool: Some("events_change"),
                aggregate_type: None,
                aggregate_id: None,
                tenant_id: None,
                correlation_id: None,
                causation_id: None,
                payload: payload.to_string(),
                occurred_at: Utc::now(),
                aggregate_sequence: None,
                trace: None,
            },
        }
    }

    /// The aggregate the event belongs to, with its number in the aggregate's stream.
    pub fn aggregate(
        mut self,
        aggregate_type: &'static str,
        aggregate_id: impl std::fmt::Display,
        sequence: i64,
    ) -> Self {
        self.row.aggregate_type = Some(aggregate_type);
        self.row.aggregate_id = Some(aggregate_id.to_string());
        self.row.aggregate_sequence = Some(sequence);
        self
    }

    /// Writes the row in the caller's transaction, as the outbox would; returns its id.
    pub async fn insert<B: Backend>(
        self,
        store: &Store<B>,
        tx: &mut B::Transaction<'_>,
    ) -> Result<Uuid, StoreError> {
        store
            .backend()
            .insert_events(tx, std::slice::from_ref(&self.row), store.now())
            .await?;
        Ok(self.row.id)
    }
}

/// A run row written the way another release would have written it — an input this code's
/// job can no longer decode — for tests of what the worker does with it.
#[derive(Debug, Clone)]
#[must_use = "a RawRun does nothing until it is inserted"]
pub struct RawRun {
    run: NewRun,
}

impl RawRun {
    /// A run of `job` in `pool` with this input and three attempts.
    pub fn new(job: &'static str, pool: &'static str, input: serde_json::Value) -> Self {
        let id = Uuid::now_v7();
        Self {
            run: NewRun {
                id,
                job,
                pool,
                input: input.to_string(),
                max_attempts: 3,
                run_at: None,
                dedupe_key: None,
                scope_type: None,
                scope_id: None,
                event_id: None,
                parent_id: None,
                root_id: id,
                tenant_id: None,
                child_key: None,
                trace: None,
            },
        }
    }

    /// Writes the row in the caller's transaction, as enqueueing would; returns its id.
    pub async fn insert<B: Backend>(
        self,
        store: &Store<B>,
        tx: &mut B::Transaction<'_>,
    ) -> Result<Uuid, StoreError> {
        let ids = store
            .backend()
            .insert_runs(tx, std::slice::from_ref(&self.run), store.now())
            .await?;
        Ok(ids.first().copied().unwrap_or(self.run.id))
    }
}

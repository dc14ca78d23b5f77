//! The outbox in memory, for unit tests: the same claims, ordering, retries and dead letters as
//! the SQL backends, without a database, plus a record of everything committed.

mod jobs;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::Event;
use crate::ops::{
    DeliveryInfo, DeliveryStatus, EventDetail, EventFilter, EventStatus, EventSummary, LaneStats,
    ProjectionLag,
};
use crate::store::{
    AUDIT_LANE, Backend, Checkpoint, Claim, ClaimedDelivery, DeadLetter, DeliveryOutcome,
    DeliveryState, Fut, KnownType, Lane, NewDelivery, NewEvent, NewRun, OutboxStats,
    ProjectedEvent, Redrive, StoreError, StoredEvent, StreamEvent, Wakes, sealed,
};
use jobs::JobState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Processing,
    Processed,
}

#[derive(Debug)]
struct Row {
    event: StoredEvent,
    sequence: Option<i64>,
    status: Status,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Delivery {
    position: i64,
    pool: Option<String>,
    aggregate: Option<(String, String)>,
    failed: bool,
    processing: bool,
    attempts: u32,
    /// Claims since the last recorded attempt.
    claims: u32,
    next_attempt_at: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    next_position: i64,
    /// By position.
    rows: BTreeMap<i64, Row>,
    /// By (event id, subscriber).
    deliveries: BTreeMap<(Uuid, String), Delivery>,
    /// By (aggregate type, aggregate id): (sequence, state).
    snapshots: BTreeMap<(String, String), (i64, String)>,
    /// Projection checkpoints (position, saved at), by name.
    checkpoints: BTreeMap<String, (i64, DateTime<Utc>)>,
}

impl State {
    /// Whether `which` names the delivery of `event_id` (at `position`) to `subscriber`.
    fn names(&self, which: &Redrive, event_id: Uuid, subscriber: &str, position: i64) -> bool {
        which.event_id.is_none_or(|id| id == event_id)
            && which.subscriber.as_deref().is_none_or(|s| s == subscriber)
            && which.event_type.as_deref().is_none_or(|event_type| {
                self.rows
                    .get(&position)
                    .is_some_and(|row| row.event.event_type == event_type)
            })
            && which.tenant.as_deref().is_none_or(|tenant| {
                self.rows
                    .get(&position)
                    .is_some_and(|row| row.event.tenant_id.as_deref() == Some(tenant))
            })
    }

    fn position_of(&self, id: Uuid) -> Option<i64> {
        self.rows
            .values()
            .find(|row| row.event.id == id)
            .map(|row| row.event.position)
    }
}

/// One committed event, as a test asserts on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// The event's id.
    pub id: Uuid,
    /// The event's type, e.g. `contact_created`.
    pub event_type: String,
    /// The aggregate it was published for, if any.
    pub aggregate_type: Option<String>,
    /// The aggregate's id, if it has an aggregate.
    pub aggregate_id: Option<String>,
    /// The tenant it was published for, if any.
    pub tenant_id: Option<String>,
    /// The correlation id it was published with, if any.
    pub correlation_id: Option<Uuid>,
    /// The id of the event that caused it, if any.
    pub causation_id: Option<Uuid>,
    /// The payload as published, in JSON (`null` if it was not JSON).
    pub payload: serde_json::Value,
}

impl RecordedEvent {
    /// The payload as `E`, if this is an `E`.
    pub fn payload_as<E: Event>(&self) -> Option<E> {
        if self.event_type != E::META.event_type {
            return None;
        }
        serde_json::from_value(self.payload.clone()).ok()
    }
}

/// The outbox in memory, behind a [`crate::MemoryStore`] from [`crate::memory`]: for unit
/// tests, which also read what was published from it ([`MemoryBackend::published`]).
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    jobs: Arc<Mutex<JobState>>,
    wakes: Wakes,
    faults: Arc<Faults>,
}

/// Failures a test asks the in-memory backend to show, as a database that stops answering.
#[derive(Debug, Default)]
struct Faults {
    heartbeats_fail: AtomicBool,
    failed_heartbeats: AtomicU64,
}

impl sealed::Sealed for MemoryBackend {}

/// A transaction of the in-memory backend: publishes are buffered until [`commit`], and
/// dropping it without committing rolls them back, as with a database.
///
/// [`commit`]: MemoryTransaction::commit
#[derive(Debug)]
pub struct MemoryTransaction {
    backend: MemoryBackend,
    buffered: Vec<NewEvent>,
    /// Runs enqueued in the transaction, with the time they were enqueued at.
    runs: Vec<(NewRun, DateTime<Utc>)>,
    snapshots: Vec<(String, String, i64, String)>,
    checkpoints: Vec<(String, i64, DateTime<Utc>)>,
    /// When the transaction first wrote an event: its events' `recorded_at`.
    recorded_at: Option<DateTime<Utc>>,
}

impl MemoryTransaction {
    /// Writes what the transaction buffered, at once and all together; fails with
    /// [`StoreError::Conflict`] when another transaction appended one of its aggregate sequence
    /// numbers first, and then writes nothing.
    pub async fn commit(self) -> Result<(), StoreError> {
        // One lock for the check and the writes, as a database's commit is one step: two
        // appends of the same sequence cannot both pass the check.
        let mut state = self.backend.lock();
        // The (aggregate, sequence) unique key: a concurrent append committed first.
        let taken = self.buffered.iter().any(|event| {
            event.aggregate_sequence.is_some()
                && state.rows.values().any(|row| {
                    row.sequence == event.aggregate_sequence
                        && row.event.aggregate_type.as_deref() == event.aggregate_type
                        && row.event.aggregate_id == event.aggregate_id
                })
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        if !self.runs.is_empty() {
            let mut jobs = self.backend.jobs();
            for (run, enqueued_at) in &self.runs {
                jobs.insert(run, *enqueued_at);
            }
            drop(jobs);
            self.backend.wakes.jobs.notify();
        }
        let recorded_at = self.recorded_at.unwrap_or_else(Utc::now);
        let inserted = {
            let mut inserted = false;
            for event in self.buffered {
                if state.position_of(event.id).is_some() {
                    continue;
                }
                state.next_position += 1;
                let position = state.next_position;
                state.rows.insert(
                    position,
                    Row {
                        sequence: event.aggregate_sequence,
                        event: StoredEvent {
                            position,
                            id: event.id,
                            event_type: event.event_type.to_owned(),
                            version: event.version,
                            pool: event.pool.map(str::to_owned),
                            aggregate_type: event.aggregate_type.map(str::to_owned),
                            aggregate_id: event.aggregate_id,
                            tenant_id: event.tenant_id,
                            correlation_id: event.correlation_id,
                            causation_id: event.causation_id,
                            payload: event.payload,
                            occurred_at: event.occurred_at,
                            recorded_at,
                            claims: 0,
                            blocked_subscribers: Vec::new(),
                            unreadable: None,
                            trace: event.trace,
                        },
                        status: Status::Pending,
                        lease_owner: None,
                        lease_expires_at: None,
                        processed_at: None,
                    },
                );
                inserted = true;
            }
            for (projection, position, saved_at) in self.checkpoints {
                state.checkpoints.insert(projection, (position, saved_at));
            }
            for (aggregate_type, aggregate_id, sequence, snapshot) in self.snapshots {
                let slot = state
                    .snapshots
                    .entry((aggregate_type, aggregate_id))
                    .or_insert((sequence, snapshot.clone()));
                if slot.0 < sequence {
                    *slot = (sequence, snapshot);
                }
            }
            inserted
        };
        drop(state);
        if inserted {
            self.backend.wakes.all_events();
        }
        Ok(())
    }

    /// Discards what the transaction buffered, as dropping it does.
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl MemoryBackend {
    pub(super) fn new(wakes: Wakes) -> Self {
        Self {
            state: Arc::default(),
            jobs: Arc::default(),
            wakes,
            faults: Arc::default(),
        }
    }

    /// For tests: makes every job heartbeat fail (or succeed again), as when the database cannot
    /// be reached from the worker, while every other operation still works — so that a test can
    /// see what a worker does when it cannot renew its leases.
    pub fn fail_heartbeats(&self, fail: bool) {
        self.faults.heartbeats_fail.store(fail, Ordering::SeqCst);
    }

    /// How many heartbeats failed because of [`MemoryBackend::fail_heartbeats`].
    pub fn failed_heartbeats(&self) -> u64 {
        self.faults.failed_heartbeats.load(Ordering::SeqCst)
    }

    /// Whether the next heartbeat fails, counting it when it does.
    pub(super) fn heartbeat_fails(&self) -> bool {
        let fails = self.faults.heartbeats_fail.load(Ordering::SeqCst);
        if fails {
            self.faults.failed_heartbeats.fetch_add(1, Ordering::SeqCst);
        }
        fails
    }

    fn jobs(&self) -> MutexGuard<'_, JobState> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn wakes(&self) -> &Wakes {
        &self.wakes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves plain data behind, still consistent enough
        // for a test to inspect.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every committed event, in publish order.
    pub fn published(&self) -> Vec<RecordedEvent> {
        self.lock()
            .rows
            .values()
            .map(|row| RecordedEvent {
                id: row.event.id,
                event_type: row.event.event_type.clone(),
                aggregate_type: row.event.aggregate_type.clone(),
                aggregate_id: row.event.aggregate_id.clone(),
                tenant_id: row.event.tenant_id.clone(),
                correlation_id: row.event.correlation_id,
                causation_id: row.event.causation_id,
                payload: serde_json::from_str(&row.event.payload)
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect()
    }

    /// The committed payloads of type `E`, in publish order.
    pub fn published_of<E: Event>(&self) -> Vec<E> {
        self.published()
            .iter()
            .filter_map(RecordedEvent::payload_as)
            .collect()
    }
}

fn claimable(status: Status, expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match status {
        Status::Pending => true,
        Status::Processing => expires.is_some_and(|at| at < now),
        Status::Processed => false,
    }
}

fn aggregate_of(event: &StoredEvent) -> Option<(String, String)> {
    Some((event.aggregate_type.clone()?, event.aggregate_id.clone()?))
}

impl Backend for MemoryBackend {
    type Transaction<'c> = MemoryTransaction;

    fn begin(&self) -> Fut<'_, Self::Transaction<'static>> {
        Box::pin(async move {
            Ok(MemoryTransaction {
                backend: self.clone(),
                buffered: Vec::new(),
                runs: Vec::new(),
                snapshots: Vec::new(),
                checkpoints: Vec::new(),
                recorded_at: None,
            })
        })
    }

    fn commit<'a, 'c: 'a>(&'a self, tx: Self::Transaction<'c>) -> Fut<'a, ()> {
        Box::pin(tx.commit())
    }

    fn migrate(&self, _now: DateTime<Utc>) -> Fut<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn insert_events<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        events: &'a [NewEvent],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            let state = self.lock();
            tx.recorded_at.get_or_insert(now);
            let mut inserted = Vec::new();
            for event in events {
                let known = state.position_of(event.id).is_some()
                    || tx.buffered.iter().any(|buffered| buffered.id == event.id);
                if !known {
                    tx.buffered.push(event.clone());
                    inserted.push(event.id);
                }
            }
            Ok(inserted)
        })
    }

    fn insert_runs<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        runs: &'a [NewRun],
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<Uuid>> {
        Box::pin(async move {
            // Dedupe against committed runs and those earlier in this transaction.
            let jobs = self.jobs();
            let mut ids = Vec::with_capacity(runs.len());
            for run in runs {
                let live = run.dedupe_key.as_ref().and_then(|key| {
                    jobs.live_run(run.job, key).or_else(|| {
                        tx.runs
                            .iter()
                            .find(|(r, _)| r.job == run.job && r.dedupe_key.as_ref() == Some(key))
                            .map(|(r, _)| r.id)
                    })
                });
                match live {
                    Some(id) => ids.push(id),
                    None => {
                        tx.runs.push((run.clone(), now));
                        ids.push(run.id);
                    }
                }
            }
            Ok(ids)
        })
    }

    fn claim_events<'a>(
        &'a self,
        lane: &'a Lane,
        types: Option<&'a [KnownType]>,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<StoredEvent>> {
        Box::pin(async move {
            let Claim {
                owner, limit, now, ..
            } = claim;
            let mut state = self.lock();
            let mut open_aggregates = std::collections::HashSet::new();
            let mut chosen = Vec::new();
            for row in state.rows.values() {
                if row.event.pool.as_deref() != lane.pool() || row.status == Status::Processed {
                    continue;
                }
                let is_known = types.is_none_or(|types| {
                    KnownType::covers(types, &row.event.event_type, row.event.version)
                });
                let aggregate = aggregate_of(&row.event);
                let is_head = aggregate
                    .as_ref()
                    .is_none_or(|aggregate| !open_aggregates.contains(aggregate));
                if let Some(aggregate) = aggregate {
                    open_aggregates.insert(aggregate);
                }
                if is_head && is_known && claimable(row.status, row.lease_expires_at, now) {
                    chosen.push(row.event.position);
                    if chosen.len() == limit as usize {
                        break;
                    }
                }
            }
            let until = claim.until();
            let blocked = |event: &StoredEvent, state: &State| -> Vec<String> {
                let Some(aggregate) = aggregate_of(event) else {
                    return Vec::new();
                };
                state
                    .deliveries
                    .iter()
                    .filter(|(_, d)| {
                        !d.failed
                            && d.pool == event.pool
                            && d.aggregate.as_ref() == Some(&aggregate)
                    })
                    .map(|((_, subscriber), _)| subscriber.clone())
                    .collect()
            };
            let mut events = Vec::with_capacity(chosen.len());
            for position in chosen {
                let Some(mut event) = state.rows.get(&position).map(|row| row.event.clone()) else {
                    continue;
                };
                event.blocked_subscribers = blocked(&event, &state);
                if let Some(row) = state.rows.get_mut(&position) {
                    row.status = Status::Processing;
                    row.lease_owner = Some(owner.to_owned());
                    row.lease_expires_at = Some(until);
                    row.event.claims += 1;
                    event.claims = row.event.claims;
                }
                events.push(event);
            }
            Ok(events)
        })
    }

    fn complete_events<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        deliveries: &'a [NewDelivery],
        now: DateTime<Utc>,
    ) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut state = self.lock();
            let mut owned = Vec::new();
            for position in positions {
                if let Some(row) = state.rows.get_mut(position)
                    && row.status == Status::Processing
                    && row.lease_owner.as_deref() == Some(owner)
                {
                    row.status = Status::Processed;
                    row.processed_at = Some(now);
                    row.lease_owner = None;
                    row.lease_expires_at = None;
                    owned.push(*position);
                }
            }
            for delivery in deliveries
                .iter()
                .filter(|d| owned.contains(&d.event_position))
            {
                let (failed, attempts, next_attempt_at, last_error) = match &delivery.state {
                    DeliveryState::Retry {
                        attempts,
                        at,
                        last_error,
                    } => (false, *attempts, *at, last_error.clone()),
                    DeliveryState::Failed {
                        attempts,
                        last_error,
                    } => (true, *attempts, now, Some(last_error.clone())),
                };
                state
                    .deliveries
                    .entry((delivery.event_id, delivery.subscriber.clone()))
                    .or_insert(Delivery {
                        position: delivery.event_position,
                        pool: delivery.pool.clone(),
                        aggregate: delivery
                            .aggregate_type
                            .clone()
                            .zip(delivery.aggregate_id.clone()),
                        failed,
                        processing: false,
                        attempts,
                        claims: 0,
                        next_attempt_at,
                        lease_owner: None,
                        lease_expires_at: None,
                        last_error,
                    });
            }
            Ok(owned.len() as u64)
        })
    }

    fn extend_event_leases<'a>(
        &'a self,
        owner: &'a str,
        positions: &'a [i64],
        until: DateTime<Utc>,
    ) -> Fut<'a, Vec<i64>> {
        Box::pin(async move {
            let mut state = self.lock();
            let mut still_ours = Vec::new();
            for position in positions {
                if let Some(row) = state.rows.get_mut(position)
                    && row.status == Status::Processing
                    && row.lease_owner.as_deref() == Some(owner)
                {
                    row.lease_expires_at = Some(until);
                    still_ours.push(*position);
                }
            }
            Ok(still_ours)
        })
    }

    fn claim_deliveries<'a>(
        &'a self,
        lane: &'a Lane,
        claim: Claim<'a>,
    ) -> Fut<'a, Vec<ClaimedDelivery>> {
        Box::pin(async move {
            let Claim {
                owner, limit, now, ..
            } = claim;
            let until = claim.until();
            let mut state = self.lock();
            let mut open: Vec<(i64, Uuid, String)> = state
                .deliveries
                .iter()
                .filter(|(_, d)| !d.failed && d.pool.as_deref() == lane.pool())
                .map(|((id, subscriber), d)| (d.position, *id, subscriber.clone()))
                .collect();
            open.sort();
            let mut blocked = std::collections::HashSet::new();
            let mut chosen = Vec::new();
            for (_, id, subscriber) in open {
                let key = (id, subscriber);
                let Some(delivery) = state.deliveries.get(&key) else {
                    continue;
                };
                let ordering = delivery.aggregate.clone().map(|a| (key.1.clone(), a));
                let is_head = ordering.as_ref().is_none_or(|o| !blocked.contains(o));
                if let Some(ordering) = ordering {
                    blocked.insert(ordering);
                }
                let ready = if delivery.processing {
                    delivery.lease_expires_at.is_some_and(|at| at < now)
                } else {
                    delivery.next_attempt_at <= now
                };
                if is_head && ready {
                    chosen.push(key);
                    if chosen.len() == limit as usize {
                        break;
                    }
                }
            }
            let mut claimed = Vec::new();
            for key in chosen {
                let Some(position) = state.deliveries.get(&key).map(|d| d.position) else {
                    continue;
                };
                let Some(event) = state.rows.get(&position).map(|row| row.event.clone()) else {
                    continue;
                };
                if let Some(delivery) = state.deliveries.get_mut(&key) {
                    delivery.processing = true;
                    delivery.lease_owner = Some(owner.to_owned());
                    delivery.lease_expires_at = Some(until);
                    delivery.claims += 1;
                    claimed.push(ClaimedDelivery {
                        subscriber: key.1,
                        attempts: delivery.attempts,
                        claims: delivery.claims,
                        event,
                    });
                }
            }
            Ok(claimed)
        })
    }

    fn extend_delivery_leases<'a>(&'a self, owner: &'a str, until: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut state = self.lock();
            let mut held = 0;
            for delivery in state.deliveries.values_mut() {
                if delivery.processing && delivery.lease_owner.as_deref() == Some(owner) {
                    delivery.lease_expires_at = Some(until);
                    held += 1;
                }
            }
            Ok(held)
        })
    }

    fn finish_deliveries<'a>(
        &'a self,
        owner: &'a str,
        outcomes: &'a [DeliveryOutcome],
        now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut state = self.lock();
            for outcome in outcomes {
                let key = (outcome.event_id, outcome.subscriber.clone());
                let owned = state
                    .deliveries
                    .get(&key)
                    .is_some_and(|d| d.lease_owner.as_deref() == Some(owner));
                if !owned {
                    continue;
                }
                match &outcome.state {
                    None => {
                        state.deliveries.remove(&key);
                    }
                    Some(new_state) => {
                        if let Some(delivery) = state.deliveries.get_mut(&key) {
                            delivery.processing = false;
                            delivery.lease_owner = None;
                            delivery.lease_expires_at = None;
                            delivery.claims = 0;
                            match new_state {
                                DeliveryState::Retry {
                                    attempts,
                                    at,
                                    last_error,
                                } => {
                                    delivery.attempts = *attempts;
                                    delivery.next_attempt_at = *at;
                                    delivery.last_error = last_error.clone();
                                }
                                DeliveryState::Failed {
                                    attempts,
                                    last_error,
                                } => {
                                    delivery.failed = true;
                                    delivery.attempts = *attempts;
                                    delivery.next_attempt_at = now;
                                    delivery.last_error = Some(last_error.clone());
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        })
    }

    fn release<'a>(&'a self, owner: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut state = self.lock();
            let mut released = 0;
            for row in state.rows.values_mut() {
                if row.status == Status::Processing && row.lease_owner.as_deref() == Some(owner) {
                    row.status = Status::Pending;
                    row.lease_owner = None;
                    row.lease_expires_at = None;
                    // A claim given back is not a lost one: it does not count against the event.
                    row.event.claims = row.event.claims.saturating_sub(1);
                    released += 1;
                }
            }
            for delivery in state.deliveries.values_mut() {
                if delivery.processing && delivery.lease_owner.as_deref() == Some(owner) {
                    delivery.processing = false;
                    delivery.lease_owner = None;
                    delivery.lease_expires_at = None;
                    delivery.claims = delivery.claims.saturating_sub(1);
                    released += 1;
                }
            }
            Ok(released)
        })
    }

    fn load_stream<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        after_sequence: i64,
    ) -> Fut<'a, Vec<StreamEvent>> {
        Box::pin(async move {
            let state = self.lock();
            let mut stream: Vec<StreamEvent> = state
                .rows
                .values()
                .filter(|row| {
                    row.event.aggregate_type.as_deref() == Some(aggregate_type)
                        && row.event.aggregate_id.as_deref() == Some(aggregate_id)
                        && row
                            .sequence
                            .is_some_and(|sequence| sequence > after_sequence)
                })
                .map(|row| StreamEvent {
                    id: row.event.id,
                    sequence: row.sequence.unwrap_or_default(),
                    event_type: row.event.event_type.clone(),
                    version: row.event.version,
                    payload: row.event.payload.clone(),
                })
                .collect();
            stream.sort_by_key(|event| event.sequence);
            Ok(stream)
        })
    }

    fn load_snapshot<'a>(
        &'a self,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
    ) -> Fut<'a, Option<(i64, String)>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .snapshots
                .get(&(aggregate_type.to_owned(), aggregate_id.to_owned()))
                .cloned())
        })
    }

    fn save_snapshot<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        sequence: i64,
        state: &'a str,
        _now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            tx.snapshots.push((
                aggregate_type.to_owned(),
                aggregate_id.to_owned(),
                sequence,
                state.to_owned(),
            ));
            Ok(())
        })
    }

    fn load_checkpoint<'a>(
        &'a self,
        _tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        _now: DateTime<Utc>,
    ) -> Fut<'a, Checkpoint> {
        Box::pin(async move {
            let position = self
                .lock()
                .checkpoints
                .get(projection)
                .map_or(0, |(position, _)| *position);
            Ok(Checkpoint { tx_id: 0, position })
        })
    }

    fn save_checkpoint<'a>(
        &'a self,
        tx: &'a mut Self::Transaction<'_>,
        projection: &'a str,
        checkpoint: Checkpoint,
        now: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            tx.checkpoints
                .push((projection.to_owned(), checkpoint.position, now));
            Ok(())
        })
    }

    fn read_committed<'a>(
        &'a self,
        _tx: &'a mut Self::Transaction<'_>,
        after: Checkpoint,
        limit: u32,
    ) -> Fut<'a, Vec<(Checkpoint, ProjectedEvent)>> {
        Box::pin(async move {
            // Positions are assigned at commit, so they become visible in order.
            Ok(self
                .lock()
                .rows
                .range(after.position + 1..)
                .take(limit as usize)
                .map(|(position, row)| {
                    (
                        Checkpoint {
                            tx_id: 0,
                            position: *position,
                        },
                        ProjectedEvent {
                            position: *position,
                            id: row.event.id,
                            event_type: row.event.event_type.clone(),
                            version: row.event.version,
                            aggregate_type: row.event.aggregate_type.clone(),
                            aggregate_id: row.event.aggregate_id.clone(),
                            tenant_id: row.event.tenant_id.clone(),
                            payload: serde_json::from_str(&row.event.payload)
                                .unwrap_or(serde_json::Value::Null),
                            occurred_at: row.event.occurred_at,
                        },
                    )
                })
                .collect())
        })
    }

    fn projection_lag<'a>(&'a self, projection: &'a str) -> Fut<'a, ProjectionLag> {
        Box::pin(async move {
            let state = self.lock();
            let checkpoint = state
                .checkpoints
                .get(projection)
                .map_or(0, |(position, _)| *position);
            let behind = state.rows.range(checkpoint + 1..).count() as u64;
            Ok(ProjectionLag {
                behind,
                held_back: 0,
            })
        })
    }

    fn dead_letters<'a>(&'a self, which: &'a Redrive, limit: u32) -> Fut<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let state = self.lock();
            let mut dead: Vec<DeadLetter> = state
                .deliveries
                .iter()
                .filter(|((event_id, subscriber), d)| {
                    d.failed && state.names(which, *event_id, subscriber, d.position)
                })
                .map(|((event_id, subscriber), d)| DeadLetter {
                    event_id: *event_id,
                    event_type: state
                        .rows
                        .get(&d.position)
                        .map(|row| row.event.event_type.clone())
                        .unwrap_or_default(),
                    subscriber: subscriber.clone(),
                    aggregate_type: d.aggregate.as_ref().map(|(t, _)| t.clone()),
                    aggregate_id: d.aggregate.as_ref().map(|(_, i)| i.clone()),
                    attempts: d.attempts,
                    last_error: d.last_error.clone().unwrap_or_default(),
                    lane: lane_name(d.pool.as_deref()),
                    // A delivery is due again at the time it failed for good.
                    failed_at: d.next_attempt_at,
                })
                .collect();
            dead.sort_by_key(|letter| letter.failed_at);
            dead.truncate(limit as usize);
            Ok(dead)
        })
    }

    fn redrive<'a>(&'a self, which: &'a Redrive, now: DateTime<Utc>) -> Fut<'a, u64> {
        Box::pin(async move {
            let mut state = self.lock();
            let named: Vec<(Uuid, String)> = state
                .deliveries
                .iter()
                .filter(|((event_id, subscriber), d)| {
                    d.failed && state.names(which, *event_id, subscriber, d.position)
                })
                .map(|(key, _)| key.clone())
                .collect();
            let mut count = 0;
            for key in named {
                if let Some(delivery) = state.deliveries.get_mut(&key) {
                    delivery.failed = false;
                    delivery.attempts = 0;
                    delivery.claims = 0;
                    delivery.next_attempt_at = now;
                    count += 1;
                }
            }
            Ok(count)
        })
    }

    fn prune(&self, processed_before: DateTime<Utc>) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut state = self.lock();
            let with_deliveries: std::collections::HashSet<i64> =
                state.deliveries.values().map(|d| d.position).collect();
            let before = state.rows.len();
            state.rows.retain(|position, row| {
                !(row.status == Status::Processed
                    && row.sequence.is_none()
                    && row.processed_at.is_some_and(|at| at < processed_before)
                    && !with_deliveries.contains(position))
            });
            Ok((before - state.rows.len()) as u64)
        })
    }

    fn stats(&self) -> Fut<'_, OutboxStats> {
        Box::pin(async move {
            let state = self.lock();
            let processed = state
                .rows
                .values()
                .filter(|row| row.status == Status::Processed)
                .count() as u64;
            let dead = state.deliveries.values().filter(|d| d.failed).count() as u64;
            Ok(OutboxStats {
                pending_events: state.rows.len() as u64 - processed,
                processed_events: processed,
                retrying_deliveries: state.deliveries.len() as u64 - dead,
                dead_letters: dead,
            })
        })
    }

    fn lane_stats(&self, now: DateTime<Utc>) -> Fut<'_, Vec<LaneStats>> {
        Box::pin(async move {
            let state = self.lock();
            let minute_ago = now - chrono::Duration::minutes(1);
            let mut lanes: BTreeMap<String, LaneStats> = BTreeMap::new();
            for row in state.rows.values() {
                let lane = || lane_name(row.event.pool.as_deref());
                if row.status != Status::Processed {
                    let stats = LaneStats::entry(&mut lanes, lane());
                    let since = row.event.recorded_at;
                    stats.pending += 1;
                    stats.oldest_pending_at =
                        Some(stats.oldest_pending_at.map_or(since, |o| o.min(since)));
                } else if row.processed_at.is_some_and(|at| at >= minute_ago) {
                    LaneStats::entry(&mut lanes, lane()).processed_last_minute += 1;
                }
            }
            for delivery in state.deliveries.values() {
                let stats = LaneStats::entry(&mut lanes, lane_name(delivery.pool.as_deref()));
                if delivery.failed {
                    stats.dead_letters += 1;
                } else {
                    stats.retrying += 1;
                }
            }
            Ok(lanes.into_values().collect())
        })
    }

    fn projection_checkpoints(&self) -> Fut<'_, Vec<(String, i64, DateTime<Utc>)>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .checkpoints
                .iter()
                .map(|(name, (position, saved_at))| (name.clone(), *position, *saved_at))
                .collect())
        })
    }

    fn list_committed<'a>(
        &'a self,
        after: Checkpoint,
        filter: &'a EventFilter,
    ) -> Fut<'a, Vec<(Checkpoint, EventSummary)>> {
        // One writer at a time: positions are commit order.
        Box::pin(async move {
            let in_order = EventFilter {
                after_position: Some(after.position),
                ..filter.clone()
            };
            let events = self.list_events(&in_order).await?;
            Ok(events
                .into_iter()
                .map(|event| {
                    let checkpoint = Checkpoint {
                        tx_id: 0,
                        position: event.position,
                    };
                    (checkpoint, event)
                })
                .collect())
        })
    }

    fn committed_head(&self) -> Fut<'_, Checkpoint> {
        Box::pin(async move {
            Ok(Checkpoint {
                tx_id: 0,
                position: self.lock().rows.keys().next_back().copied().unwrap_or(0),
            })
        })
    }

    fn list_events<'a>(&'a self, filter: &'a EventFilter) -> Fut<'a, Vec<EventSummary>> {
        Box::pin(async move {
            let state = self.lock();
            let matches = |row: &&Row| {
                let event = &row.event;
                filter
                    .event_type
                    .as_deref()
                    .is_none_or(|t| event.event_type == t)
                    && filter
                        .aggregate
                        .as_ref()
                        .is_none_or(|(aggregate_type, id)| {
                            event.aggregate_type.as_deref() == Some(aggregate_type.as_str())
                                && id
                                    .as_deref()
                                    .is_none_or(|id| event.aggregate_id.as_deref() == Some(id))
                        })
                    && filter
                        .tenant
                        .as_deref()
                        .is_none_or(|t| event.tenant_id.as_deref() == Some(t))
                    && filter
                        .status
                        .is_none_or(|status| row.summary().status == status)
                    && filter
                        .since
                        .is_none_or(|since| row.event.recorded_at >= since)
                    && filter
                        .until
                        .is_none_or(|until| row.event.recorded_at < until)
            };
            let limit = filter.limit as usize;
            Ok(match filter.after_position {
                Some(after) => state
                    .rows
                    .range(after + 1..)
                    .map(|(_, row)| row)
                    .filter(matches)
                    .take(limit)
                    .map(Row::summary)
                    .collect(),
                None => state
                    .rows
                    .values()
                    .rev()
                    .filter(matches)
                    .take(limit)
                    .map(Row::summary)
                    .collect(),
            })
        })
    }

    fn get_event(&self, id: Uuid) -> Fut<'_, Option<EventDetail>> {
        Box::pin(async move {
            let detail = {
                let state = self.lock();
                let Some(row) = state.position_of(id).and_then(|p| state.rows.get(&p)) else {
                    return Ok(None);
                };
                let payload = serde_json::from_str(&row.event.payload)
                    .unwrap_or_else(|_| serde_json::Value::String(row.event.payload.clone()));
                let deliveries = state
                    .deliveries
                    .range((id, String::new())..)
                    .take_while(|((event_id, _), _)| *event_id == id)
                    .map(|((_, subscriber), d)| DeliveryInfo {
                        subscriber: subscriber.clone(),
                        status: if d.failed {
                            DeliveryStatus::DeadLetter
                        } else if d.processing {
                            DeliveryStatus::Delivering
                        } else {
                            DeliveryStatus::Retrying
                        },
                        attempts: d.attempts,
                        next_attempt_at: d.next_attempt_at,
                        last_error: d.last_error.clone(),
                    })
                    .collect();
                EventDetail {
                    event: row.summary(),
                    payload,
                    deliveries,
                    runs: Vec::new(),
                }
            };
            let runs = self.jobs().runs_of_event(id);
            Ok(Some(EventDetail { runs, ..detail }))
        })
    }

    fn listen(&self, _wakes: Wakes) -> Fut<'_, Option<tokio::task::JoinHandle<()>>> {
        Box::pin(async { Ok(None) })
    }
}

/// The lane of a pool column: the pool, or `audit`.
fn lane_name(pool: Option<&str>) -> String {
    pool.unwrap_or(AUDIT_LANE).to_owned()
}

impl Row {
    fn summary(&self) -> EventSummary {
        let event = &self.event;
        EventSummary {
            position: event.position,
            id: event.id,
            event_type: event.event_type.clone(),
            version: event.version,
            lane: lane_name(event.pool.as_deref()),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            tenant_id: event.tenant_id.clone(),
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            status: match self.status {
                Status::Pending => EventStatus::Pending,
                Status::Processing => EventStatus::Processing,
                Status::Processed => EventStatus::Processed,
            },
            claims: event.claims,
            occurred_at: event.occurred_at,
            recorded_at: self.event.recorded_at,
            processed_at: self.processed_at,
            trace: event.trace.clone(),
        }
    }
}

//! Loading, deciding and appending event-sourced aggregates with optimistic concurrency.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use uuid::Uuid;

use super::{Aggregate, AggregateEvents, Decide, JobQueue};
use crate::event::catalog::Catalog;
use crate::event::upcast::{UpcastError, Upcaster, Upcasters};
use crate::jobs::EnqueueError;
use crate::outbox::{Outbox, PublishError, TenantChoice};
use crate::store::{Backend, NewEvent, StoreError};

/// Why `execute` (or `load`) did not succeed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Every attempt lost the race for the next sequence numbers to another writer.
    #[error(
        "{aggregate} {id}: {attempts} attempts lost the race against concurrent writers; try \
         again later"
    )]
    Concurrency {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's id.
        id: String,
        /// How many load-decide-append attempts were made.
        attempts: u32,
    },
    /// The stream holds an event type that the registry does not know, or that is not one of
    /// this aggregate's.
    #[error(
        "{aggregate} {id}: its stream holds an event of type `{event_type}` that this code does \
         not know; restore the event type, or upcast it into a known one"
    )]
    UnknownEventType {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's id.
        id: String,
        /// The unknown event type.
        event_type: String,
    },
    /// A stored event is older than its type's version, and an upcaster on the way is missing.
    #[error(
        "{aggregate} {id}: event {event_id} (`{event_type}` version {stored}) has no upcaster \
         from version {missing} to the current version {current}"
    )]
    MissingUpcaster {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's id.
        id: String,
        /// The stored event.
        event_id: Uuid,
        /// Its type.
        event_type: String,
        /// The version it was stored with.
        stored: u32,
        /// The version no upcaster starts from.
        missing: u32,
        /// The version the code reads.
        current: u32,
    },
    /// A stored event cannot be read (its JSON, an upcaster or its decoding failed); also, with
    /// a nil `event_id`, a state that cannot be serialized for a snapshot.
    #[error("{aggregate} {id}: event {event_id} cannot be read: {reason}")]
    Undecodable {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's id.
        id: String,
        /// The event that cannot be read; nil when a snapshot could not be serialized.
        event_id: Uuid,
        /// What went wrong.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new events could not be written to the outbox.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The decision's jobs could not be enqueued.
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Who and what a command runs for: its tenant, and the correlation and causation its events
/// carry. On a multi-tenant store, a command must name its tenant (or say it has none), like a
/// publish; the decision's jobs belong to the same tenant.
#[derive(Debug, Clone, Default)]
#[must_use = "a CommandContext does nothing until it is passed to `execute_with`"]
pub struct CommandContext {
    tenant: TenantChoice,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
}

impl CommandContext {
    /// A context that names nothing: enough on a store that is not multi-tenant.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant the command runs for: its events and jobs belong to it.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = TenantChoice::Some(tenant.into());
        self
    }

    /// Says explicitly that the command belongs to no tenant, which a multi-tenant store
    /// accepts.
    pub fn without_tenant(mut self) -> Self {
        self.tenant = TenantChoice::None;
        self
    }

    /// The id shared by the chain of events this command is part of.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The id of the event (or request) that caused this command.
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }
}

/// What an accepted command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The state after the new events.
    pub state: A,
    /// The events the command decided, as appended.
    pub events: Vec<A::Event>,
    /// The stream's last sequence number after the append.
    pub sequence: i64,
    /// Ids of the appended events, in order.
    pub event_ids: Vec<Uuid>,
}

/// An aggregate as loaded: its state and the sequence number it is at.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The fold of its events, from the latest snapshot when snapshots are on.
    pub state: A,
    /// The sequence number of the last event folded; 0 for a new aggregate.
    pub sequence: i64,
}

/// Executes commands against aggregates of type `A`; from [`crate::EventBus::aggregates`].
pub struct AggregateStore<A: Decide, C: Catalog, B: Backend> {
    outbox: Outbox<C, B>,
    snapshot_every: Option<i64>,
    max_attempts: u32,
    upcasters: Upcasters,
    aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A, C, B> AggregateStore<A, C, B>
where
    A: Decide,
    C: Catalog,
    B: Backend,
{
    pub(crate) fn new(outbox: Outbox<C, B>, upcasters: Upcasters) -> Self {
        Self {
            outbox,
            snapshot_every: None,
            max_attempts: 5,
            upcasters,
            aggregate: std::marker::PhantomData,
        }
    }
}

impl<A, C, B> AggregateStore<A, C, B>
where
    A: Decide + Serialize + DeserializeOwned,
    A::Command: Clone,
    C: Catalog,
    B: Backend,
{
    /// Stores a snapshot of the state every `events` events; loads start from the latest one.
    pub fn snapshot_every(mut self, events: u32) -> Self {
        self.snapshot_every = Some(i64::from(events.max(1)));
        self
    }

    /// How many times `execute` loads, decides and appends again after losing a race (5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Registers how a stored `event_type` payload of `from_version` becomes `from_version + 1`.
    /// Upcasters belong to the event type, not to this store: this registers it on the bus the
    /// store came from, like [`crate::EventBus::upcast`], for its subscribers and projectors too.
    pub fn upcast(self, event_type: &'static str, from_version: u32, upcast: Upcaster) -> Self {
        self.upcasters.add(event_type, from_version, upcast);
        self
    }

    /// The current state of aggregate `id` (the default state if it has no events).
    pub async fn load(&self, id: impl Display) -> Result<Loaded<A>, ExecuteError<A::Error>> {
        self.load_id(&id.to_string(), self.snapshot_every.is_some())
            .await
    }

    /// The state from a full replay, ignoring snapshots: what snapshots are checked against.
    pub async fn replay(&self, id: impl Display) -> Result<Loaded<A>, ExecuteError<A::Error>> {
        self.load_id(&id.to_string(), false).await
    }

    async fn load_id(
        &self,
        id: &str,
        use_snapshot: bool,
    ) -> Result<Loaded<A>, ExecuteError<A::Error>> {
        let backend = self.outbox.store.backend();
        let (mut state, mut sequence) = match use_snapshot {
            true => match backend.load_snapshot(A::TYPE, id).await? {
                Some((sequence, json)) => match serde_json::from_str::<A>(&json) {
                    Ok(state) => (state, sequence),
                    // A snapshot of an older shape of the state: replay instead.
                    Err(_) => (A::default(), 0),
                },
                None => (A::default(), 0),
            },
            false => (A::default(), 0),
        };
        for stored in backend.load_stream(A::TYPE, id, sequence).await? {
            let event = self.decode(id, &stored)?;
            state.apply(&event);
            sequence = stored.sequence;
        }
        Ok(Loaded { state, sequence })
    }

    fn decode(
        &self,
        id: &str,
        stored: &crate::store::StreamEvent,
    ) -> Result<A::Event, ExecuteError<A::Error>> {
        let undecodable = |reason: String| ExecuteError::Undecodable {
            aggregate: A::TYPE,
            id: id.to_owned(),
            event_id: stored.id,
            reason,
        };
        let unknown = || ExecuteError::UnknownEventType {
            aggregate: A::TYPE,
            id: id.to_owned(),
            event_type: stored.event_type.clone(),
        };
        let descriptor = C::registry().get(&stored.event_type).ok_or_else(unknown)?;
        let current = descriptor.meta.version;
        let payload: serde_json::Value = serde_json::from_str(&stored.payload)
            .map_err(|error| undecodable(error.to_string()))?;
        let payload = self
            .upcasters
            .to_current(&stored.event_type, stored.version, current, payload)
            .map_err(|error| match error {
                UpcastError::Missing { missing, .. } => ExecuteError::MissingUpcaster {
                    aggregate: A::TYPE,
                    id: id.to_owned(),
                    event_id: stored.id,
                    event_type: stored.event_type.clone(),
                    stored: stored.version,
                    missing,
                    current,
                },
                failed @ UpcastError::Failed { .. } => undecodable(failed.to_string()),
            })?;
        A::Event::decode(&stored.event_type, &payload)
            .map_err(|error| undecodable(error.to_string()))?
            .ok_or_else(unknown)
    }

    /// Loads aggregate `id`, decides `command`, and appends the events with the next sequence
    /// numbers, writes them to the outbox and enqueues the decision's jobs, in one
    /// transaction. A concurrent append wins the sequence numbers; the whole
    /// load-decide-append then runs again, up to `max_attempts` times.
    pub async fn execute(
        &self,
        id: impl Display,
        command: A::Command,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.execute_with(id, command, &CommandContext::default())
            .await
    }

    /// Like [`AggregateStore::execute`], for the tenant, correlation and causation of
    /// `context`: the appended events carry them and the decision's jobs belong to the tenant.
    /// On a multi-tenant store a context without a tenant (nor an explicit
    /// [`CommandContext::without_tenant`]) appends nothing and fails with
    /// [`PublishError::TenantRequired`].
    pub async fn execute_with(
        &self,
        id: impl Display,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let id = id.to_string();
        let span = tracing::info_span!("herald.aggregate.execute", aggregate = A::TYPE, %id);
        async move {
            for attempt in 1..=self.max_attempts {
                let loaded = self.load_id(&id, self.snapshot_every.is_some()).await?;
                let mut jobs = JobQueue::new();
                let events = loaded
                    .state
                    .decide(command.clone(), &mut jobs)
                    .map_err(ExecuteError::Rejected)?;
                match self.append_with(&id, loaded, events, jobs, context).await {
                    Err(ExecuteError::Store(StoreError::Conflict))
                    | Err(ExecuteError::Publish(PublishError::Store(StoreError::Conflict))) => {
                        tracing::debug!(attempt, "lost an append race; deciding again");
                    }
                    other => return other,
                }
            }
            Err(ExecuteError::Concurrency {
                aggregate: A::TYPE,
                id,
                attempts: self.max_attempts,
            })
        }
        .instrument(span)
        .await
    }

    /// Appends `events` decided on `loaded` (at `loaded.sequence`), with `jobs`, in one
    /// transaction. Fails with `StoreError::Conflict` when another writer appended first.
    pub async fn append(
        &self,
        id: &str,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        jobs: JobQueue,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.append_with(id, loaded, events, jobs, &CommandContext::default())
            .await
    }

    /// Like [`AggregateStore::append`], with the tenant, correlation and causation of
    /// `context` (see [`AggregateStore::execute_with`]).
    pub async fn append_with(
        &self,
        id: &str,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        jobs: JobQueue,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let tenant_id = match (
            events.first(),
            context
                .tenant
                .clone()
                .resolve(self.outbox.store.is_multi_tenant()),
        ) {
            (_, Some(tenant)) => tenant,
            (Some(first), None) => {
                return Err(PublishError::TenantRequired {
                    event_type: first.meta().event_type,
                }
                .into());
            }
            // Nothing to store: no tenant needed.
            (None, None) => None,
        };
        let Loaded {
            mut state,
            sequence,
        } = loaded;
        let mut rows = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let meta = event.meta();
            rows.push(NewEvent {
                id: Uuid::now_v7(),
                event_type: meta.event_type,
                version: meta.version,
                tier: meta.tier().as_str(),
                direction: meta.direction().map(|direction| direction.as_str()),
                pool: meta.pool(),
                aggregate_type: Some(A::TYPE),
                aggregate_id: Some(id.to_owned()),
                tenant_id: tenant_id.clone(),
                correlation_id: context.correlation_id,
                causation_id: context.causation_id,
                payload: event
                    .payload_json()
                    .map_err(|source| PublishError::Serialize {
                        event_type: meta.event_type,
                        source,
                    })?,
                occurred_at: self.outbox.store.now(),
                aggregate_sequence: Some(sequence + offset as i64 + 1),
                trace: None,
            });
        }
        let new_sequence = sequence + rows.len() as i64;
        for event in &events {
            state.apply(event);
        }
        let store = &self.outbox.store;
        let mut tx = store.begin().await?;
        let event_ids = self.outbox.insert(&mut tx, rows).await?;
        let runs = jobs.into_runs(
            (A::TYPE, id),
            event_ids.first().copied(),
            tenant_id.as_deref(),
            store.now(),
        )?;
        if !runs.is_empty() {
            let ids = store
                .backend()
                .insert_runs(&mut tx, &runs, store.now())
                .await?;
            crate::metrics::runs_enqueued(&runs, &ids);
        }
        if let Some(every) = self.snapshot_every
            && new_sequence / every > sequence / every
        {
            let json =
                serde_json::to_string(&state).map_err(|error| ExecuteError::Undecodable {
                    aggregate: A::TYPE,
                    id: id.to_owned(),
                    event_id: Uuid::nil(),
                    reason: format!("the state cannot be serialized for a snapshot: {error}"),
                })?;
            store
                .backend()
                .save_snapshot(&mut tx, A::TYPE, id, new_sequence, &json, store.now())
                .await?;
        }
        store.commit(tx).await?;
        Ok(Executed {
            state,
            events,
            sequence: new_sequence,
            event_ids,
        })
    }
}

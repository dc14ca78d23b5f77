//! Publishing into the caller's transaction, and subscribing typed handlers.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::event::{Event, EventMeta};
use crate::job::Jobs;
use crate::registry::{PayloadError, Registry};
use crate::store::{Backend, NewEvent, NewRun, Store, StoreError, StoredEvent};

/// The registry a typed bus is generated for. The generator implements it on the application's
/// `AppEvent` enum.
pub trait Catalog: Send + Sync + 'static {
    fn registry() -> &'static Registry;
}

/// Marks an event type as a member of the registry `C`, so that a bus of `C` accepts it. The
/// generator implements it for every event of the registry, and for nothing else.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of the registry `{C}`",
    label = "only the events generated into `{C}` can be published, subscribed or trigger jobs here",
    note = "declare the event in `events/*.yaml` and generate again; a forwarder that only knows the type name at run time uses `publish_json`"
)]
pub trait InCatalog<C: Catalog>: Event {}

/// Why an event was not published. Nothing was written when publishing fails.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("payload of `{event_type}` cannot be serialized: {source}")]
    Serialize {
        event_type: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "`{event_type}` was published without a tenant, but this store is multi-tenant: \
         set `.tenant(..)`, or `.without_tenant()` for an event that belongs to no tenant"
    )]
    TenantRequired { event_type: &'static str },
    #[error(
        "`{event_type}` belongs to the aggregate `{aggregate}` but was published without an \
         aggregate id: use `publish(tx, id, payload)` or `Publish::aggregate_id`"
    )]
    MissingAggregateId {
        event_type: &'static str,
        aggregate: &'static str,
    },
    #[error(
        "`{event_type}` declares no `aggregate:` in its YAML, so it cannot carry an aggregate \
         id: add the aggregate to the event, or publish it without one"
    )]
    UnexpectedAggregateId { event_type: &'static str },
    #[error("the input of job `{job}`, triggered by `{event_type}`, cannot be built: {source}")]
    TriggerInput {
        event_type: &'static str,
        job: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum TenantChoice {
    #[default]
    Unset,
    None,
    Some(String),
}

/// One event to publish, with everything that may be stamped on it besides the payload.
#[derive(Debug, Clone)]
#[must_use = "a Publish does nothing until it is passed to a bus"]
pub struct Publish<P> {
    payload: P,
    id: Option<Uuid>,
    aggregate_id: Option<String>,
    tenant: TenantChoice,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    occurred_at: Option<DateTime<Utc>>,
}

impl<P> Publish<P> {
    pub fn new(payload: P) -> Self {
        Self {
            payload,
            id: None,
            aggregate_id: None,
            tenant: TenantChoice::Unset,
            correlation_id: None,
            causation_id: None,
            occurred_at: None,
        }
    }

    /// The event id, which is also its idempotency key: publishing the same id again stores
    /// nothing. Defaults to a fresh UUID v7 (time-ordered).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    pub fn aggregate_id(mut self, id: impl Display) -> Self {
        self.aggregate_id = Some(id.to_string());
        self
    }

    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = TenantChoice::Some(tenant.into());
        self
    }

    /// Says explicitly that the event belongs to no tenant, which a multi-tenant store accepts.
    pub fn without_tenant(mut self) -> Self {
        self.tenant = TenantChoice::None;
        self
    }

    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Marks the event as caused by `cause`: causation is the cause's id, correlation is
    /// carried over (or starts at the cause), and so is the tenant unless one is set.
    pub fn caused_by<E>(mut self, cause: &Envelope<E>) -> Self {
        self.causation_id = Some(cause.id);
        self.correlation_id = Some(cause.correlation_id.unwrap_or(cause.id));
        if self.tenant == TenantChoice::Unset {
            self.tenant = match &cause.tenant_id {
                Some(tenant) => TenantChoice::Some(tenant.clone()),
                None => TenantChoice::None,
            };
        }
        self
    }

    /// When the fact happened, if not now.
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(at);
        self
    }
}

/// A delivered event: the payload with everything publishing stamped on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    pub id: Uuid,
    pub event_type: String,
    pub version: u32,
    /// Global position in the outbox.
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// 1 on the first delivery to this subscriber, then 2, 3, ...
    pub attempt: u32,
    pub payload: E,
}

/// What a subscriber returns when it fails; the delivery is retried per the event's policy.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type ErasedHandler =
    Arc<dyn Fn(&StoredEvent, u32) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Subscriber {
    pub(crate) name: Arc<str>,
    pub(crate) handler: ErasedHandler,
}

pub(crate) type Subscribers = Arc<RwLock<HashMap<&'static str, Vec<Subscriber>>>>;

/// The event bus of one registry `C` on one store: publishes into the caller's transaction,
/// holds the subscribers, and starts drains. Cheap to clone; clones share subscribers.
///
/// Applications use the generated alias `TypedEventBus`.
pub struct EventBus<C: Catalog, B: Backend> {
    store: Store<B>,
    subscribers: Subscribers,
    jobs: Arc<Jobs<C>>,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog, B: Backend> Clone for EventBus<C, B> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
            jobs: self.jobs.clone(),
            catalog: PhantomData,
        }
    }
}

impl<C: Catalog, B: Backend> std::fmt::Debug for EventBus<C, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("registry", &C::registry().len())
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

impl<C: Catalog, B: Backend> EventBus<C, B> {
    pub fn new(store: Store<B>) -> Self {
        Self {
            store,
            subscribers: Subscribers::default(),
            jobs: Arc::new(Jobs::new()),
            catalog: PhantomData,
        }
    }

    /// The jobs whose triggers this bus honours: publishing an event enqueues, in the same
    /// transaction, a run of each of them that the event triggers.
    pub fn with_jobs(mut self, jobs: Jobs<C>) -> Self {
        self.jobs = Arc::new(jobs);
        self
    }

    pub fn jobs(&self) -> &Jobs<C> {
        &self.jobs
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    pub fn registry(&self) -> &'static Registry {
        C::registry()
    }

    /// Publishes `payload` for the aggregate `aggregate_id` in the caller's transaction: the
    /// event is stored if and only if the transaction commits.
    pub async fn publish<E: InCatalog<C>>(
        &self,
        tx: &mut B::Transaction<'_>,
        aggregate_id: impl Display,
        payload: E,
    ) -> Result<Uuid, PublishError> {
        self.publish_with(tx, Publish::new(payload).aggregate_id(aggregate_id))
            .await
    }

    /// Publishes with explicit id, tenant, correlation and causation.
    pub async fn publish_with<E: InCatalog<C>>(
        &self,
        tx: &mut B::Transaction<'_>,
        event: Publish<E>,
    ) -> Result<Uuid, PublishError> {
        let row = self.stamp(&E::META, event, |payload| {
            serde_json::to_string(payload).map_err(|source| PublishError::Serialize {
                event_type: E::META.event_type,
                source,
            })
        })?;
        self.insert(tx, vec![row]).await.map(|ids| ids[0])
    }

    /// Publishes several events of one type with one INSERT.
    pub async fn publish_many<E: InCatalog<C>>(
        &self,
        tx: &mut B::Transaction<'_>,
        events: impl IntoIterator<Item = Publish<E>>,
    ) -> Result<Vec<Uuid>, PublishError> {
        let rows = events
            .into_iter()
            .map(|event| {
                self.stamp(&E::META, event, |payload| {
                    serde_json::to_string(payload).map_err(|source| PublishError::Serialize {
                        event_type: E::META.event_type,
                        source,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.insert(tx, rows).await
    }

    /// Publishes an event known only by its type name, for forwarders: the type is looked up
    /// in the registry and the payload checked against it, exactly as the typed path would
    /// have shaped it.
    pub async fn publish_json(
        &self,
        tx: &mut B::Transaction<'_>,
        event_type: &str,
        event: Publish<serde_json::Value>,
    ) -> Result<Uuid, PublishError> {
        let descriptor = C::registry().validate(event_type, &event.payload)?;
        let row = self.stamp(&descriptor.meta, event, |payload| Ok(payload.to_string()))?;
        self.insert(tx, vec![row]).await.map(|ids| ids[0])
    }

    fn stamp<P>(
        &self,
        meta: &EventMeta,
        event: Publish<P>,
        serialize: impl FnOnce(&P) -> Result<String, PublishError>,
    ) -> Result<NewEvent, PublishError> {
        let event_type = meta.event_type;
        let tenant_id = match event.tenant {
            TenantChoice::Unset if self.store.is_multi_tenant() => {
                return Err(PublishError::TenantRequired { event_type });
            }
            TenantChoice::Unset | TenantChoice::None => None,
            TenantChoice::Some(tenant) => Some(tenant),
        };
        match (meta.aggregate, &event.aggregate_id) {
            (Some(aggregate), None) => {
                return Err(PublishError::MissingAggregateId {
                    event_type,
                    aggregate,
                });
            }
            (None, Some(_)) => return Err(PublishError::UnexpectedAggregateId { event_type }),
            _ => {}
        }
        Ok(NewEvent {
            id: event.id.unwrap_or_else(Uuid::now_v7),
            event_type,
            version: meta.version,
            tier: meta.tier().as_str(),
            direction: meta.direction().map(|direction| direction.as_str()),
            pool: meta.pool(),
            aggregate_type: meta.aggregate,
            aggregate_id: event.aggregate_id,
            tenant_id,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            payload: serialize(&event.payload)?,
            occurred_at: event.occurred_at.unwrap_or_else(Utc::now),
            aggregate_sequence: None,
        })
    }

    pub(crate) async fn insert(
        &self,
        tx: &mut B::Transaction<'_>,
        rows: Vec<NewEvent>,
    ) -> Result<Vec<Uuid>, PublishError> {
        let span = match rows.as_slice() {
            [row] => tracing::debug_span!(
                "herald.publish",
                event.id = %row.id,
                event.r#type = row.event_type,
            ),
            _ => tracing::debug_span!("herald.publish", events = rows.len()),
        };
        let _entered = span.enter();
        let inserted = self.store.backend().insert_events(tx, &rows).await?;
        tracing::trace!(inserted = inserted.len(), "published");
        let runs = self.triggered_runs(&rows, &inserted)?;
        if !runs.is_empty() {
            self.store.backend().insert_runs(tx, &runs).await?;
        }
        Ok(rows.into_iter().map(|row| row.id).collect())
    }

    /// The runs that the newly stored events trigger. An event id that was already stored
    /// triggers nothing again: the id is the idempotency key of its jobs too.
    fn triggered_runs(
        &self,
        rows: &[NewEvent],
        inserted: &[Uuid],
    ) -> Result<Vec<NewRun>, PublishError> {
        let mut runs = Vec::new();
        if self.jobs.names().is_empty() {
            return Ok(runs);
        }
        for row in rows {
            if row.tier != "domain" || !inserted.contains(&row.id) {
                continue;
            }
            for binding in self.jobs.bindings_of(row.event_type) {
                let input = binding.trigger.input_for(&row.payload).map_err(|source| {
                    PublishError::TriggerInput {
                        event_type: row.event_type,
                        job: binding.name,
                        source,
                    }
                })?;
                let id = Uuid::now_v7();
                runs.push(NewRun {
                    id,
                    job: binding.name,
                    pool: binding.pool,
                    dedupe_key: (binding.dedupe)(&input),
                    input,
                    max_attempts: binding.max_attempts,
                    run_at: None,
                    scope_type: row.aggregate_type.map(str::to_owned),
                    scope_id: row.aggregate_id.clone(),
                    event_id: Some(row.id),
                    parent_id: None,
                    root_id: id,
                });
            }
        }
        Ok(runs)
    }

    /// Registers `handler` as the subscriber `name` of `E`. The name identifies the subscriber's
    /// deliveries in the outbox (its retries and dead letters), so keep it stable across
    /// releases; every process that drains `E`'s pool must register the same subscribers.
    ///
    /// # Panics
    /// When `E` already has a subscriber called `name`: that is a wiring mistake, like a route
    /// registered twice.
    pub fn subscribe<E, F, Fut, Err>(&self, name: &str, handler: F) -> &Self
    where
        E: InCatalog<C>,
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send + 'static,
        Err: Into<HandlerError>,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |event: &StoredEvent, attempt: u32| {
            let decoded = serde_json::from_str::<E>(&event.payload).map(|payload| Envelope {
                id: event.id,
                event_type: event.event_type.clone(),
                version: event.version,
                position: event.position,
                occurred_at: event.occurred_at,
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                tenant_id: event.tenant_id.clone(),
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                attempt,
                payload,
            });
            let handler = handler.clone();
            Box::pin(async move {
                let envelope = decoded.map_err(|error| {
                    format!(
                        "stored payload does not decode as `{}`: {error}",
                        std::any::type_name::<E>()
                    )
                })?;
                handler(envelope)
                    .await
                    .map_err(|error| error.into().to_string())
            })
        });
        let mut subscribers = self
            .subscribers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = subscribers.entry(E::META.event_type).or_default();
        assert!(
            list.iter().all(|existing| &*existing.name != name),
            "`{}` already has a subscriber named `{name}`",
            E::META.event_type
        );
        list.push(Subscriber {
            name: name.into(),
            handler: erased,
        });
        self
    }

    /// The subscribers of `event_type`, cloned out of the lock.
    pub(crate) fn subscribers_of(&self, event_type: &str) -> Vec<Subscriber> {
        self.subscribers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(event_type)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn subscribers_by_type(&self) -> HashMap<&'static str, Vec<Subscriber>> {
        self.subscribers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

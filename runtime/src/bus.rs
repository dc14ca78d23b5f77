//! The typed facade an application holds: publish into the caller's transaction, subscribe
//! handlers, and start the services (drain, worker, aggregates) of one registry on one store.

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::aggregate::{AggregateStore, Decide};
use crate::drain::DrainBuilder;
use crate::drain::subscribers::{HandlerError, Subscribers};
use crate::event::catalog::{Catalog, InCatalog};
use crate::event::envelope::Envelope;
use crate::event::registry::Registry;
use crate::event::upcast::Upcaster;
use crate::jobs::Jobs;
use crate::jobs::worker::Worker;
use crate::outbox::{Outbox, Publish, PublishError};
use crate::projection::{Projection, Projector};
use crate::store::{Backend, Store};

/// The event bus of one registry `C` on one store: publishes into the caller's transaction,
/// holds the subscribers and the jobs, and starts drains and workers. Cheap to clone; clones
/// share subscribers.
///
/// Applications use the generated alias `TypedEventBus`.
pub struct EventBus<C: Catalog, B: Backend> {
    outbox: Outbox<C, B>,
    subscribers: Subscribers,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog, B: Backend> Clone for EventBus<C, B> {
    fn clone(&self) -> Self {
        Self {
            outbox: self.outbox.clone(),
            subscribers: self.subscribers.clone(),
            catalog: PhantomData,
        }
    }
}

impl<C: Catalog, B: Backend> std::fmt::Debug for EventBus<C, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("registry", &C::registry().len())
            .field("jobs", &self.outbox.jobs)
            .finish_non_exhaustive()
    }
}

impl<C: Catalog, B: Backend> EventBus<C, B> {
    /// A bus with no subscribers and no jobs, whose readers upcast the registry's kept
    /// versions with their typed upcasters ([`crate::UpcastFrom`]).
    pub fn new(store: Store<B>) -> Self {
        let subscribers = Subscribers::default();
        subscribers.upcasters().keep(C::registry());
        Self {
            outbox: Outbox {
                store,
                jobs: Arc::new(Jobs::new()),
            },
            subscribers,
            catalog: PhantomData,
        }
    }

    /// The application's jobs, registered once for both sides of their life: publishing an
    /// event enqueues, in the same transaction, a run of each job it triggers, and
    /// [`EventBus::worker`] runs them.
    pub fn with_jobs(mut self, jobs: Jobs<C>) -> Self {
        self.outbox.jobs = Arc::new(jobs);
        self
    }

    /// The jobs registered with [`EventBus::with_jobs`].
    pub fn jobs(&self) -> &Jobs<C> {
        &self.outbox.jobs
    }

    /// The store the bus writes to.
    pub fn store(&self) -> &Store<B> {
        &self.outbox.store
    }

    /// The registry's static metadata.
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
        let row = self.outbox.row(&E::META, event, serialize::<E>)?;
        self.outbox.insert(tx, vec![row]).await.map(|ids| ids[0])
    }

    /// Publishes several events of one type with one INSERT.
    pub async fn publish_many<E: InCatalog<C>>(
        &self,
        tx: &mut B::Transaction<'_>,
        events: impl IntoIterator<Item = Publish<E>>,
    ) -> Result<Vec<Uuid>, PublishError> {
        let rows = events
            .into_iter()
            .map(|event| self.outbox.row(&E::META, event, serialize::<E>))
            .collect::<Result<Vec<_>, _>>()?;
        self.outbox.insert(tx, rows).await
    }

    /// Publishes an event known only by its type name, for forwarders: the type is looked up
    /// in the registry and the payload checked against it, exactly as the typed path would
    /// have shaped it. A payload of an older version ([`Publish::payload_version`]) goes
    /// through the upcasters ([`EventBus::upcast`]) first, and is stored at the current one.
    pub async fn publish_json(
        &self,
        tx: &mut B::Transaction<'_>,
        event_type: &str,
        event: Publish<serde_json::Value>,
    ) -> Result<Uuid, PublishError> {
        self.publish_json_reporting(tx, event_type, event)
            .await
            .map(|(id, _)| id)
    }

    /// [`EventBus::publish_json`], which also says whether the event was new (`false`: its id
    /// was stored before, and nothing was written).
    pub(crate) async fn publish_json_reporting(
        &self,
        tx: &mut B::Transaction<'_>,
        event_type: &str,
        event: Publish<serde_json::Value>,
    ) -> Result<(Uuid, bool), PublishError> {
        let mut event = event;
        if let (Some(given), Some(descriptor)) =
            (event.payload_version, C::registry().get(event_type))
        {
            let meta = &descriptor.meta;
            if given > meta.version {
                return Err(PublishError::NewerVersion {
                    event_type: meta.event_type,
                    given,
                    current: meta.version,
                });
            }
            let stored = std::mem::take(&mut event.payload);
            event.payload = self
                .subscribers
                .upcasters()
                .to_current(meta.event_type, given, meta.version, stored)
                .map_err(|source| PublishError::Upcast {
                    event_type: meta.event_type,
                    source,
                })?;
        }
        let descriptor = C::registry().validate(event_type, &event.payload)?;
        if !event.payload.is_object() {
            return Err(PublishError::NotAnObject {
                event_type: descriptor.meta.event_type,
            });
        }
        let row = self
            .outbox
            .row(&descriptor.meta, event, |payload| Ok(payload.to_string()))?;
        let (ids, inserted) = self.outbox.insert_reporting(tx, vec![row]).await?;
        Ok((ids[0], inserted.contains(&ids[0])))
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
        self.subscribers.add::<E, F, Fut, Err>(name, None, handler);
        self
    }

    /// Like [`EventBus::subscribe`], with this subscriber's own delivery timeout instead of the
    /// drain's [`DrainConfig::delivery_timeout`](crate::DrainConfig::delivery_timeout): a
    /// delivery that takes longer is abandoned and counts as a failed attempt of this
    /// subscriber only (retried after the event's backoff, dead-lettered after its last).
    ///
    /// # Panics
    /// When `E` already has a subscriber called `name`.
    pub fn subscribe_with_timeout<E, F, Fut, Err>(
        &self,
        name: &str,
        timeout: Duration,
        handler: F,
    ) -> &Self
    where
        E: InCatalog<C>,
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send + 'static,
        Err: Into<HandlerError>,
    {
        self.subscribers
            .add::<E, F, Fut, Err>(name, Some(timeout), handler);
        self
    }

    /// Registers how a stored `event_type` payload of `from_version` becomes `from_version + 1`,
    /// for every reader of this bus's events: its subscribers, its aggregates
    /// ([`EventBus::aggregates`]) and its projectors ([`EventBus::projector`]). An event stored
    /// at an older version than its type's current `version:` goes through each upcaster on the
    /// way (1 → 2 → 3), so events still pending across a deploy that bumped a version reach
    /// every consumer in the current shape. A reader that finds no upcaster on the way fails
    /// with an error that names the one to add (a failed delivery, retried per the event's
    /// policy).
    ///
    /// ```
    /// # use herald::{Catalog, EventDescriptor, InCatalog, Registry};
    /// # #[derive(Debug, Clone, herald::serde::Serialize, herald::serde::Deserialize,
    /// #     herald::schemars::JsonSchema, herald::Event)]
    /// # #[serde(crate = "herald::serde")]
    /// # #[schemars(crate = "herald::schemars")]
    /// # #[event(type = "contact_renamed", direction = "change", aggregate = "contact", version = 2)]
    /// # struct ContactRenamed { full_name: String }
    /// # struct App;
    /// # static REGISTRY: Registry = Registry::new(&[EventDescriptor::of::<ContactRenamed>()]);
    /// # impl Catalog for App { fn registry() -> &'static Registry { &REGISTRY } }
    /// # impl InCatalog<App> for ContactRenamed {}
    /// let bus = herald::EventBus::<App, _>::new(herald::memory());
    /// // Version 2 renamed `name` to `full_name`.
    /// bus.upcast("contact_renamed", 1, |mut v1| {
    ///     let name = v1.as_object_mut().and_then(|fields| fields.remove("name"));
    ///     v1["full_name"] = name.ok_or("a v1 `contact_renamed` has a `name`")?;
    ///     Ok(v1)
    /// });
    /// ```
    ///
    /// A version kept in `events/<type>.v<N>.yaml` needs none of this: the registry carries
    /// its typed upcaster ([`crate::UpcastFrom`]), which every bus applies.
    ///
    /// # Panics
    /// When the registry has no `event_type`, when `from_version` is not below its current
    /// version, or when that version is kept and so already upcast by a typed upcaster: a
    /// wiring mistake, like a subscriber registered twice.
    pub fn upcast(&self, event_type: &str, from_version: u32, upcast: Upcaster) -> &Self {
        let Some(descriptor) = C::registry().get(event_type) else {
            panic!("cannot register an upcaster of `{event_type}`: the registry has no such event");
        };
        let current = descriptor.meta.version;
        assert!(
            from_version < current,
            "an upcaster of `{event_type}` from version {from_version} is never used: its current \
             version is {current}"
        );
        self.subscribers
            .upcasters()
            .add(event_type, from_version, upcast);
        self
    }

    /// A projector of `projection` over this bus's store whose events go through this bus's
    /// upcasters ([`EventBus::upcast`]) before they reach the projection: an event stored at an
    /// older version is folded in its type's current shape, with its `version` set to it.
    pub fn projector<P: Projection<B>>(&self, projection: P) -> Projector<P, B> {
        let upcasters = self.subscribers.upcasters().clone();
        Projector::new(self.outbox.store.clone(), projection).upcasting(move |event| {
            let Some(descriptor) = C::registry().get(&event.event_type) else {
                return Ok(());
            };
            let current = descriptor.meta.version;
            if event.version >= current {
                return Ok(());
            }
            let stored = std::mem::take(&mut event.payload);
            event.payload =
                upcasters.to_current(&event.event_type, event.version, current, stored)?;
            event.version = current;
            Ok(())
        })
    }

    /// The subscribers shared by this bus and its clones, for the crate's own subscribers that
    /// take the stored row (the NATS relay).
    #[cfg(feature = "nats")]
    pub(crate) fn subscribers(&self) -> &Subscribers {
        &self.subscribers
    }

    /// A drain over every pool of the registry (and the audit lane, if the registry has audit
    /// events) delivering to this bus's subscribers; narrow it with [`DrainBuilder::pools`].
    pub fn drain(&self) -> DrainBuilder<C, B> {
        DrainBuilder::new(self.outbox.store.clone(), self.subscribers.clone())
    }

    /// A worker for the jobs registered with [`EventBus::with_jobs`], in the pools of those
    /// jobs; narrow it with [`Worker::pools`].
    pub fn worker(&self) -> Worker<B> {
        Worker::new(self.outbox.store.clone(), self.outbox.jobs.runners())
    }

    /// The store of aggregates `A`: appends go through this bus, so the events reach the
    /// outbox and trigger their jobs like published ones.
    pub fn aggregates<A>(&self) -> AggregateStore<A, C, B>
    where
        A: Decide + Serialize + DeserializeOwned,
        A::Command: Clone,
    {
        AggregateStore::new(self.outbox.clone(), self.subscribers.upcasters().clone())
    }
}

fn serialize<E: Serialize + crate::event::Event>(payload: &E) -> Result<String, PublishError> {
    serde_json::to_string(payload).map_err(|source| PublishError::Serialize {
        event_type: E::META.event_type,
        source,
    })
}

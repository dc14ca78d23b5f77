//! The subscribers of one bus: typed handlers, erased so that a drain lane can call them with a
//! stored row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;

use crate::event::Event;
use crate::event::envelope::Envelope;
use crate::store::StoredEvent;

/// What a subscriber returns when it fails; the delivery is retried per the event's policy.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type ErasedHandler =
    Arc<dyn Fn(&StoredEvent, u32) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One registered subscriber of one event type.
#[derive(Clone)]
pub(crate) struct Subscriber {
    pub(crate) name: Arc<str>,
    handler: ErasedHandler,
}

impl Subscriber {
    /// Decodes the stored payload and runs the handler; `Err` carries the failure's message.
    pub(crate) fn call(
        &self,
        event: &StoredEvent,
        attempt: u32,
    ) -> BoxFuture<'static, Result<(), String>> {
        (self.handler)(event, attempt)
    }
}

/// The subscribers of a bus by event type. Clones share the same set.
#[derive(Clone, Default)]
pub(crate) struct Subscribers(Arc<RwLock<HashMap<&'static str, Vec<Subscriber>>>>);

impl Subscribers {
    /// Adds `handler` as the subscriber `name` of `E`.
    ///
    /// # Panics
    /// When `E` already has a subscriber called `name`.
    pub(crate) fn add<E, F, Fut, Err>(&self, name: &str, handler: F)
    where
        E: Event,
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
            .0
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
    }

    /// Adds `handler` as the subscriber `name` of each of `event_types`, called with the stored
    /// row itself rather than a decoded payload: for the crate's own forwarders (the NATS
    /// relay), which send the payload on as it was stored. The handler builds what it needs from
    /// the row before it returns its future, so the row is never copied.
    ///
    /// # Panics
    /// When one of the types already has a subscriber called `name`.
    #[cfg(feature = "nats")]
    pub(crate) fn add_raw<F>(&self, name: &str, event_types: &[&'static str], handler: F)
    where
        F: Fn(&StoredEvent, u32) -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        let erased: ErasedHandler = Arc::new(handler);
        let mut subscribers = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for event_type in event_types {
            let list = subscribers.entry(event_type).or_default();
            assert!(
                list.iter().all(|existing| &*existing.name != name),
                "`{event_type}` already has a subscriber named `{name}`"
            );
            list.push(Subscriber {
                name: name.into(),
                handler: erased.clone(),
            });
        }
    }

    /// The subscribers of `event_type`, cloned out of the lock.
    pub(crate) fn of(&self, event_type: &str) -> Vec<Subscriber> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(event_type)
            .cloned()
            .unwrap_or_default()
    }

    /// Every subscriber by event type, cloned out of the lock (once per batch).
    pub(crate) fn by_type(&self) -> HashMap<&'static str, Vec<Subscriber>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

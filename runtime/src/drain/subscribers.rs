//! The subscribers of one bus: typed handlers, erased so that a drain lane can call them with a
//! stored row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::event::Event;
use crate::event::envelope::Envelope;
use crate::event::upcast::Upcasters;
use crate::store::StoredEvent;

/// What a subscriber returns when it fails; the delivery is retried per the event's policy.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type ErasedHandler =
    Arc<dyn Fn(&StoredEvent, u32) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One registered subscriber of one event type.
#[derive(Clone)]
pub(crate) struct Subscriber {
    pub(crate) name: Arc<str>,
    /// How long one delivery may take, when the subscriber set its own; otherwise the drain's
    /// [`crate::DrainConfig::delivery_timeout`].
    pub(crate) timeout: Option<Duration>,
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

/// The subscribers of a bus by event type, and the bus's upcasters that bring each stored
/// payload to the version they read. Clones share the same sets.
#[derive(Clone, Default)]
pub(crate) struct Subscribers {
    by_type: Arc<RwLock<HashMap<&'static str, Vec<Subscriber>>>>,
    upcasters: Upcasters,
}

impl Subscribers {
    /// Adds `handler` as the subscriber `name` of `E`, whose deliveries may take `timeout` (the
    /// drain's default when `None`).
    ///
    /// # Panics
    /// When `E` already has a subscriber called `name`.
    pub(crate) fn add<E, F, Fut, Err>(&self, name: &str, timeout: Option<Duration>, handler: F)
    where
        E: Event,
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send + 'static,
        Err: Into<HandlerError>,
    {
        let handler = Arc::new(handler);
        let upcasters = self.upcasters.clone();
        let erased: ErasedHandler = Arc::new(move |event: &StoredEvent, attempt: u32| {
            let decoded = decode::<E>(&upcasters, event).map(|payload| Envelope {
                id: event.id,
                event_type: event.event_type.clone(),
                version: event.version.max(E::META.version),
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
                let envelope = decoded?;
                handler(envelope)
                    .await
                    .map_err(|error| error.into().to_string())
            })
        });
        let mut subscribers = self
            .by_type
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
            timeout,
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
            .by_type
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
                timeout: None,
                handler: erased.clone(),
            });
        }
    }

    /// The upcasters the subscribers' payloads go through.
    pub(crate) fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// The subscribers of `event_type`, cloned out of the lock.
    pub(crate) fn of(&self, event_type: &str) -> Vec<Subscriber> {
        self.by_type
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(event_type)
            .cloned()
            .unwrap_or_default()
    }

    /// Every subscriber by event type, cloned out of the lock (once per batch).
    pub(crate) fn by_type(&self) -> HashMap<&'static str, Vec<Subscriber>> {
        self.by_type
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The stored payload as `E`, through the upcasters when it was stored at an older version; the
/// error says why not, for the failed delivery.
fn decode<E: Event>(upcasters: &Upcasters, event: &StoredEvent) -> Result<E, String> {
    let undecodable = |error: serde_json::Error| {
        format!(
            "stored payload does not decode as `{}`: {error}",
            std::any::type_name::<E>()
        )
    };
    if event.version >= E::META.version {
        return serde_json::from_str::<E>(&event.payload).map_err(undecodable);
    }
    let stored = serde_json::from_str(&event.payload).map_err(undecodable)?;
    let current = upcasters
        .to_current(&event.event_type, event.version, E::META.version, stored)
        .map_err(|error| error.to_string())?;
    serde_json::from_value::<E>(current).map_err(undecodable)
}

//! Events of the example domain as tests publish them, a drain that spends every attempt of a
//! failing delivery at once, a projection that counts, and the count of completed runs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::chrono::Utc;
use herald::uuid::Uuid;
use herald::{
    Backend, DrainSummary, Envelope, HandlerError, ProjectedEvent, Projection, RetryTiming, Store,
};

use crate::domain::TypedEventBus;
use crate::domain::events::{ContactCreated, StripePaymentReceived};

/// `contact_created` of `contact`, created by a fixed user.
pub fn contact_created(contact: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id: contact,
        account_id: None,
        created_by: Uuid::from_u128(7),
    }
}

/// A Stripe payment (webhook event `evt_1`) of the customer `customer_id`.
pub fn payment(customer_id: &str) -> StripePaymentReceived {
    StripePaymentReceived {
        event_id: "evt_1".to_owned(),
        customer_id: customer_id.to_owned(),
        amount_cents: 1250.0,
        currency: "eur".to_owned(),
        received_at: Utc::now(),
    }
}

/// Drains until nothing is claimable, with retries due at once, so that one call spends every
/// attempt of a failing delivery; fails instead of hanging if the drain never goes idle.
pub async fn drain_until_idle<B: Backend>(bus: &TypedEventBus<B>) -> DrainSummary {
    tokio::time::timeout(
        Duration::from_secs(20),
        bus.drain()
            .retry(RetryTiming {
                base: Duration::ZERO,
                cap: Duration::ZERO,
            })
            .run_until_idle(),
    )
    .await
    .expect("the drain goes idle")
    .expect("drain")
}

/// A projection named `folds` that counts what it folded, whatever the backend.
#[derive(Clone, Default)]
pub struct Folds(pub Arc<Mutex<u64>>);

impl<B: Backend> Projection<B> for Folds {
    fn name(&self) -> &str {
        "folds"
    }

    fn apply<'a>(
        &'a self,
        _tx: &'a mut B::Transaction<'static>,
        _event: &'a ProjectedEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        *self.0.lock().unwrap() += 1;
        Box::pin(async { Ok(()) })
    }

    fn reset<'a>(
        &'a self,
        _tx: &'a mut B::Transaction<'static>,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        *self.0.lock().unwrap() = 0;
        Box::pin(async { Ok(()) })
    }
}

/// How many job runs of `store` have completed (up to 1,000); 0 while the store cannot say.
pub async fn completed_runs<B: Backend>(store: &Store<B>) -> usize {
    store
        .jobs()
        .list(
            &herald::ops::RunFilter::default()
                .status(herald::ops::RunStatus::Completed)
                .limit(1000),
        )
        .await
        .map_or(0, |runs| runs.len())
}

/// Subscribes `record` to `contact_created`: how many times each contact's event arrived.
pub fn count_deliveries_by_contact<B: Backend>(
    bus: &TypedEventBus<B>,
) -> Arc<Mutex<HashMap<Uuid, u32>>> {
    let delivered: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let sink = delivered.clone();
    bus.subscribe("record", move |e: Envelope<ContactCreated>| {
        let sink = sink.clone();
        async move {
            *sink
                .lock()
                .unwrap()
                .entry(e.payload.contact_id)
                .or_default() += 1;
            Ok::<_, HandlerError>(())
        }
    });
    delivered
}

/// Retries 5–50 ms apart: a test that cuts connections waits for its loops, not their backoff.
pub fn quick_retries() -> RetryTiming {
    RetryTiming {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    }
}

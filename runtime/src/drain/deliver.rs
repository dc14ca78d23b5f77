//! One delivery attempt of one event to one subscriber, and what its failure means: a retry
//! after the event's backoff, or a dead letter after its last attempt.

use std::panic::AssertUnwindSafe;

use crate::clock::later;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::metrics::Delivery;

use super::Lanes;
use super::subscribers::Subscriber;
use crate::event::RetryPolicy;
use crate::event::catalog::Catalog;
use crate::service::panic_message;
use crate::store::{Backend, DeliveryState, StoredEvent};

pub(super) fn retry_policy<C: Catalog>(event_type: &str) -> RetryPolicy {
    C::registry()
        .get(event_type)
        .map(|descriptor| descriptor.meta.retry)
        .unwrap_or_default()
}

/// What becomes of a delivery of a row that cannot be read: a dead letter that says why, for an
/// operator to repair the row and re-drive it; no handler can be given it.
pub(super) fn unreadable(event: &StoredEvent, reason: &str) -> DeliveryState {
    tracing::error!(
        event.id = %event.id,
        event.position = event.position,
        %reason,
        "stored event cannot be read: dead-lettered without delivery"
    );
    DeliveryState::Failed {
        attempts: 0,
        last_error: format!("the stored row cannot be read: {reason}"),
    }
}

/// What becomes of a delivery whose every earlier claim was lost (a crash, a stall past the
/// lease, a kill while delivering), once those claims have spent its attempts: a dead letter
/// that says so, instead of a claim for ever.
pub(super) fn lost_too_often(
    event: &StoredEvent,
    subscriber: &str,
    attempts: u32,
    lost_claims: u32,
) -> DeliveryState {
    tracing::error!(
        event.id = %event.id,
        event.r#type = %event.event_type,
        %subscriber,
        lost_claims,
        "delivery claimed and lost too often: dead-lettered without delivery"
    );
    DeliveryState::Failed {
        attempts,
        last_error: format!(
            "claim lost {lost_claims} times: worker crashed or stalled while delivering"
        ),
    }
}

/// One delivery attempt. `None` when it succeeded; otherwise when (or whether) to try again.
pub(super) async fn deliver<C: Catalog, B: Backend>(
    shared: &Lanes<C, B>,
    event: &StoredEvent,
    subscriber: &Subscriber,
    attempts_before: u32,
    policy: RetryPolicy,
) -> Option<DeliveryState> {
    let attempt = attempts_before + 1;
    let span = tracing::info_span!(
        "herald.deliver",
        event.id = %event.id,
        event.r#type = %event.event_type,
        subscriber = %subscriber.name,
        attempt,
    );
    if let Some(trace) = &event.trace {
        trace.set_as_parent_of(&span);
    }
    let timeout = subscriber.timeout.unwrap_or(shared.config.delivery_timeout);
    let run = AssertUnwindSafe(subscriber.call(event, attempt)).catch_unwind();
    let error = match tokio::time::timeout(timeout, run.instrument(span.clone())).await {
        Ok(Ok(Ok(()))) => {
            crate::metrics::delivery(&event.event_type, &subscriber.name, Delivery::Delivered);
            if attempt == 1 {
                crate::metrics::delivery_latency(
                    &event.event_type,
                    event.recorded_at,
                    shared.store.now(),
                );
            }
            return None;
        }
        Ok(Ok(Err(error))) => error,
        Ok(Err(panic)) => format!("subscriber panicked: {}", panic_message(&panic)),
        Err(_) => format!("delivery timed out after {timeout:?}"),
    };
    let _entered = span.enter();
    if attempt >= policy.max_attempts().get() {
        tracing::error!(%error, "delivery failed for good: dead-lettered");
        crate::metrics::delivery(&event.event_type, &subscriber.name, Delivery::DeadLetter);
        Some(DeliveryState::Failed {
            attempts: attempt,
            last_error: error,
        })
    } else {
        let delay = shared.config.retry.delay(policy.backoff, attempt);
        tracing::warn!(%error, retry_in = ?delay, "delivery failed; will retry");
        crate::metrics::delivery(&event.event_type, &subscriber.name, Delivery::Retry);
        Some(DeliveryState::Retry {
            attempts: attempt,
            at: later(shared.store.now(), delay),
            last_error: Some(error),
        })
    }
}

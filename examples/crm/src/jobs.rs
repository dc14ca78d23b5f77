//! The example domain's jobs: the durable side effects of its events.
//!
//! - `stripe_payment_received` → [`RecordPayment`]: books the payment, once per Stripe event id
//!   (dedupe on the run, and a unique key on the row for a run retried after it booked).
//! - `contact_created` → [`SyncContactToCrm`]: pushes the contact to the CRM, then emits
//!   `webhook_outbound_contact_sync` through the outbox with an id derived from the run, so a
//!   retried run publishes it once.

use herald::sqlx;
use herald::uuid::Uuid;
use herald::{Backend, JobContext, JobError, PostgresBackend, Publish, SqliteBackend, job_handler};
use serde::{Deserialize, Serialize};

use crate::generated::events::{ContactCreated, StripePaymentReceived, WebhookOutboundContactSync};
use crate::generated::{JobBindings, TypedEventBus};

/// What the jobs need from the application: its bus (and through it the store and pool).
#[derive(Debug, Clone)]
pub enum App {
    Sqlite(TypedEventBus<SqliteBackend>),
    Postgres(TypedEventBus<PostgresBackend>),
}

/// Every job of the example, with the events that trigger them.
pub fn jobs() -> JobBindings {
    JobBindings::new()
        .register::<RecordPayment>()
        .register::<SyncContactToCrm>()
        .register::<NotifyContactArchived>()
}

/// The table [`record_payment`] writes; `stripe_event_id` is its idempotency key.
pub const PAYMENTS_SQLITE: &str = "CREATE TABLE IF NOT EXISTS payments (\
     stripe_event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount_cents REAL NOT NULL, \
     currency TEXT NOT NULL)";
pub const PAYMENTS_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS payments (\
     stripe_event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, \
     amount_cents DOUBLE PRECISION NOT NULL, currency TEXT NOT NULL)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub stripe_event_id: String,
    pub customer_id: String,
    pub amount_cents: f64,
    pub currency: String,
}

impl From<&StripePaymentReceived> for Payment {
    fn from(event: &StripePaymentReceived) -> Self {
        Self {
            stripe_event_id: event.event_id.clone(),
            customer_id: event.customer_id.clone(),
            amount_cents: event.amount_cents,
            currency: event.currency.clone(),
        }
    }
}

/// Books a Stripe payment exactly once. Returns whether this run booked it (false: an earlier
/// run of the same Stripe event already had).
#[job_handler(triggers = [StripePaymentReceived], dedupe = "stripe_event_id", retries = 8,
              timeout = "10s")]
pub async fn record_payment(ctx: JobContext, payment: Payment) -> Result<bool, JobError> {
    let booked = match ctx.state::<App>()? {
        App::Sqlite(bus) => sqlx::query(
            "INSERT INTO payments (stripe_event_id, customer_id, amount_cents, currency) \
             VALUES (?, ?, ?, ?) ON CONFLICT (stripe_event_id) DO NOTHING",
        )
        .bind(&payment.stripe_event_id)
        .bind(&payment.customer_id)
        .bind(payment.amount_cents)
        .bind(&payment.currency)
        .execute(bus.store().backend().pool())
        .await?
        .rows_affected(),
        App::Postgres(bus) => sqlx::query(
            "INSERT INTO payments (stripe_event_id, customer_id, amount_cents, currency) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (stripe_event_id) DO NOTHING",
        )
        .bind(&payment.stripe_event_id)
        .bind(&payment.customer_id)
        .bind(payment.amount_cents)
        .bind(&payment.currency)
        .execute(bus.store().backend().pool())
        .await?
        .rows_affected(),
    };
    Ok(booked == 1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncContact {
    pub contact_id: Uuid,
}

impl From<&ContactCreated> for SyncContact {
    fn from(event: &ContactCreated) -> Self {
        Self {
            contact_id: event.contact_id,
        }
    }
}

/// Pushes a new contact to the CRM, then tells the world through the outbox.
#[job_handler(pool = "batch", triggers = [ContactCreated], dedupe = "contact_id", retries = 5,
              timeout = "30s", concurrency = 4)]
pub async fn sync_contact_to_crm(ctx: JobContext, input: SyncContact) -> Result<(), JobError> {
    // The remote call is a memoized step: a retry after it succeeded does not push again.
    let remote_id = ctx
        .step("push", || async {
            Ok::<_, JobError>(format!("crm-{}", input.contact_id.simple()))
        })
        .await?;
    tracing_line(&format!(
        "pushed contact {} to the CRM as {remote_id}",
        input.contact_id
    ));
    let event_id = ctx.idempotency_key("webhook_outbound_contact_sync");
    match ctx.state::<App>()? {
        App::Sqlite(bus) => emit_sync(bus, event_id, input.contact_id).await,
        App::Postgres(bus) => emit_sync(bus, event_id, input.contact_id).await,
    }
}

async fn emit_sync<B: Backend>(
    bus: &TypedEventBus<B>,
    event_id: Uuid,
    contact_id: Uuid,
) -> Result<(), JobError> {
    let mut tx = bus.store().begin().await?;
    bus.publish_with(
        &mut tx,
        Publish::new(WebhookOutboundContactSync {
            contact_id,
            operation: "create".into(),
            occurred_at: herald::chrono::Utc::now(),
        })
        .id(event_id)
        .aggregate_id(contact_id),
    )
    .await?;
    bus.store().commit(tx).await?;
    Ok(())
}

fn tracing_line(line: &str) {
    println!("  [job]           {line}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedContact {
    pub contact_id: Uuid,
}

/// Tells the contact's owner that it was archived; enqueued by the `contact` aggregate with its
/// `contact_archived` event.
#[job_handler(retries = 5, timeout = "10s")]
pub async fn notify_contact_archived(
    _ctx: JobContext,
    input: ArchivedContact,
) -> Result<(), JobError> {
    tracing_line(&format!(
        "told the owner that contact {} was archived",
        input.contact_id
    ));
    Ok(())
}

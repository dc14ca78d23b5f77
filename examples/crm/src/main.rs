//! The whole flow on the embedded default: contacts are written and their events published in
//! the same transactions, a drain delivers them to subscribers (one of which publishes an
//! outbound event in turn), and a failing subscriber retries alone.
//!
//! `cargo run -p crm` uses a SQLite file; `--database-url postgres://...` runs the same flow
//! against PostgreSQL.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use crm::generated::TypedEventBus;
use crm::generated::events::{ContactCreated, StripePaymentReceived, WebhookOutboundContactSync};
use herald::chrono::Utc;
use herald::sqlx;
use herald::uuid::Uuid;
use herald::{Backend, Envelope, HandlerError, Publish, RetryTiming, Store};

#[derive(Parser)]
#[command(
    about = "Herald's example CRM: publish events with the rows they describe, then drain them"
)]
struct Args {
    /// `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, default_value = "sqlite://herald-demo.db")]
    database_url: String,
    /// Contacts to create.
    #[arg(long, default_value_t = 3)]
    contacts: u32,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.database_url.starts_with("sqlite:") {
        demo_sqlite(&args).await
    } else if args.database_url.starts_with("postgres") {
        demo_postgres(&args).await
    } else {
        Err(format!(
            "--database-url must start with sqlite: or postgres:, not `{}`",
            args.database_url
        )
        .into())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo_sqlite(args: &Args) -> Result<(), Failure> {
    let store = herald::sqlite(&args.database_url).await?;
    store.migrate().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS contacts (id BLOB PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
         name TEXT NOT NULL)",
    )
    .execute(store.backend().pool())
    .await?;
    let bus = wire(&store);
    let drain = start(&bus);
    for n in 0..args.contacts {
        let (id, email, name) = new_contact(n);
        let mut tx = store.begin().await?;
        sqlx::query("INSERT INTO contacts (id, email, name) VALUES (?, ?, ?)")
            .bind(id)
            .bind(&email)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        bus.publish(&mut tx, id, created(id)).await?;
        tx.commit().await?;
        println!("wrote contact {name} <{email}> and published contact_created, one transaction");
    }
    // A transaction that fails after publishing takes its event with it.
    let (id, _, _) = new_contact(0);
    let mut tx = store.begin().await?;
    bus.publish(&mut tx, id, created(id)).await?;
    let duplicate = sqlx::query("INSERT INTO contacts (id, email, name) VALUES (?, ?, ?)")
        .bind(id)
        .bind(
            sqlx::query_scalar::<_, String>("SELECT email FROM contacts LIMIT 1")
                .fetch_one(&mut *tx)
                .await?,
        )
        .bind("Duplicate")
        .execute(&mut *tx)
        .await;
    report_rollback(duplicate.map(drop), tx.rollback().await.map_err(Into::into));
    publish_payment(&bus).await?;
    finish(&bus, drain).await
}

async fn demo_postgres(args: &Args) -> Result<(), Failure> {
    let store = herald::postgres(&args.database_url).await?;
    store.migrate().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS contacts (id UUID PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
         name TEXT NOT NULL)",
    )
    .execute(store.backend().pool())
    .await?;
    let bus = wire(&store);
    let drain = start(&bus);
    for n in 0..args.contacts {
        let (id, email, name) = new_contact(n);
        let mut tx = store.begin().await?;
        sqlx::query("INSERT INTO contacts (id, email, name) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&email)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        bus.publish(&mut tx, id, created(id)).await?;
        tx.commit().await?;
        println!("wrote contact {name} <{email}> and published contact_created, one transaction");
    }
    let (id, _, _) = new_contact(0);
    let mut tx = store.begin().await?;
    bus.publish(&mut tx, id, created(id)).await?;
    let duplicate = sqlx::query(
        "INSERT INTO contacts (id, email, name) SELECT $1, email, 'Duplicate' FROM contacts LIMIT 1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await;
    report_rollback(duplicate.map(drop), tx.rollback().await.map_err(Into::into));
    publish_payment(&bus).await?;
    finish(&bus, drain).await
}

fn new_contact(n: u32) -> (Uuid, String, String) {
    let id = Uuid::now_v7();
    let names = [
        "Ada Lovelace",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
    ];
    let name = names[n as usize % names.len()].to_owned();
    let email = format!(
        "{}+{}@example.com",
        name.to_lowercase().replace(' ', "."),
        id.simple()
    );
    (id, email, name)
}

fn created(contact_id: Uuid) -> ContactCreated {
    ContactCreated {
        contact_id,
        account_id: None,
        created_by: Uuid::nil(),
    }
}

fn report_rollback(insert: Result<(), sqlx::Error>, rollback: Result<(), Failure>) {
    match (insert, rollback) {
        (Err(error), Ok(())) => println!(
            "a duplicate contact failed ({}): rolled back, and its contact_created with it",
            error.as_database_error().map_or("error", |e| e.message())
        ),
        (Ok(()), _) => println!("unexpected: the duplicate contact was accepted"),
        (Err(_), Err(error)) => println!("rollback failed: {error}"),
    }
}

async fn publish_payment<B: Backend>(bus: &TypedEventBus<B>) -> Result<(), Failure> {
    let mut tx = bus.store().begin().await?;
    bus.publish_with(
        &mut tx,
        Publish::new(StripePaymentReceived {
            event_id: "evt_demo_1".into(),
            customer_id: "cus_demo".into(),
            amount_cents: 4900.0,
            currency: "eur".into(),
            received_at: Utc::now(),
        }),
    )
    .await?;
    bus.store().commit(tx).await?;
    println!("published stripe_payment_received (inbound, no aggregate)");
    Ok(())
}

/// The subscribers: a projection, a flaky mailer that fails its first attempt, a forwarder
/// that publishes the outbound sync event through the outbox, and the payment ledger.
fn wire<B: Backend>(store: &Store<B>) -> TypedEventBus<B> {
    let bus = TypedEventBus::new(store.clone());
    bus.subscribe("search_index", |e: Envelope<ContactCreated>| async move {
        println!(
            "  [search_index]  contact_created #{} for contact {}",
            e.position, e.payload.contact_id
        );
        Ok::<_, HandlerError>(())
    });
    let mail_server_up = Arc::new(AtomicBool::new(false));
    bus.subscribe("welcome_mail", move |e: Envelope<ContactCreated>| {
        let up = mail_server_up.clone();
        async move {
            if !up.swap(true, Ordering::SeqCst) {
                println!(
                    "  [welcome_mail]  attempt {} failed: SMTP timeout (retries alone)",
                    e.attempt
                );
                return Err("SMTP timeout".into());
            }
            println!(
                "  [welcome_mail]  sent to contact {} on attempt {}",
                e.payload.contact_id, e.attempt
            );
            Ok::<_, HandlerError>(())
        }
    });
    let forwarder = bus.clone();
    bus.subscribe("crm_sync", move |e: Envelope<ContactCreated>| {
        let bus = forwarder.clone();
        async move {
            let mut tx = bus.store().begin().await?;
            bus.publish_with(
                &mut tx,
                Publish::new(WebhookOutboundContactSync {
                    contact_id: e.payload.contact_id,
                    operation: "create".into(),
                    occurred_at: e.occurred_at,
                })
                .aggregate_id(e.payload.contact_id)
                .caused_by(&e),
            )
            .await?;
            bus.store().commit(tx).await?;
            Ok::<_, HandlerError>(())
        }
    });
    bus.subscribe(
        "crm_webhook",
        |e: Envelope<WebhookOutboundContactSync>| async move {
            println!(
                "  [crm_webhook]   POST /contacts ({}) for {}, caused by event {}",
                e.payload.operation,
                e.payload.contact_id,
                e.causation_id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string())
            );
            Ok::<_, HandlerError>(())
        },
    );
    bus.subscribe("ledger", |e: Envelope<StripePaymentReceived>| async move {
        println!(
            "  [ledger]        {:.2} {} from {} ({})",
            e.payload.amount_cents / 100.0,
            e.payload.currency,
            e.payload.customer_id,
            e.payload.event_id
        );
        Ok::<_, HandlerError>(())
    });
    bus
}

fn start<B: Backend>(bus: &TypedEventBus<B>) -> herald::DrainHandle {
    bus.drain()
        .retry(RetryTiming {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        })
        .spawn()
}

async fn finish<B: Backend>(
    bus: &TypedEventBus<B>,
    drain: herald::DrainHandle,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = bus.store().stats().await?;
        if stats.pending_events == 0 && stats.retrying_deliveries == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the drain did not finish within 30 s: {stats:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drain.shutdown().await;
    let stats = bus.store().stats().await?;
    println!(
        "done: {} events processed in the outbox, {} dead letters",
        stats.processed_events, stats.dead_letters
    );
    Ok(())
}

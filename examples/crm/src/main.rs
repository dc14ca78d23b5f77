//! The whole flow on the embedded default: contacts are written and their events published in
//! the same transactions (with the jobs they trigger), a drain delivers the events to
//! subscribers, a worker runs the jobs (one of which publishes an outbound event in turn), and
//! a failing subscriber retries alone.
//!
//! `cargo run -p crm` uses a SQLite file; `--database-url postgres://...` runs the same flow
//! against PostgreSQL.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use crm::contact::{Contact, ContactCommand};
use crm::generated::TypedEventBus;
use crm::generated::events::{ContactCreated, StripePaymentReceived, WebhookOutboundContactSync};
use crm::jobs::App;
use herald::chrono::Utc;
use herald::ops::{RunFilter, RunStatus};
use herald::sqlx;
use herald::uuid::Uuid;
use herald::{
    Backend, Envelope, ExecuteError, HandlerError, PostgresBackend, Publish, RetryTiming,
    ServiceHandle, SqliteBackend, Store,
};

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
    demo(store, args).await
}

async fn demo_postgres(args: &Args) -> Result<(), Failure> {
    let store = herald::postgres(&args.database_url).await?;
    store.migrate().await?;
    demo(store, args).await
}

/// The application's own table, and the statements that differ between the databases: the
/// point of the demo is that they run in the same transaction as the events.
trait ContactsTable: Backend + Sized {
    const CREATE_TABLES: &'static str;
    /// The table of the `record_payment` job.
    const CREATE_PAYMENTS: &'static str;
    fn app(bus: &TypedEventBus<Self>) -> App;
    fn insert_contact<'a>(
        tx: &'a mut Self::Transaction<'static>,
        id: Uuid,
        email: &'a str,
        name: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    /// Inserts a contact under an email that is already taken, which the database refuses.
    fn insert_duplicate<'a>(
        tx: &'a mut Self::Transaction<'static>,
        id: Uuid,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    fn pool_execute<'a>(
        store: &'a Store<Self>,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}

impl ContactsTable for SqliteBackend {
    const CREATE_PAYMENTS: &'static str = crm::jobs::PAYMENTS_SQLITE;
    const CREATE_TABLES: &'static str = "CREATE TABLE IF NOT EXISTS contacts (id BLOB PRIMARY \
         KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL)";

    fn app(bus: &TypedEventBus<Self>) -> App {
        App::Sqlite(bus.clone())
    }

    async fn insert_contact(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
        email: &str,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO contacts (id, email, name) VALUES (?, ?, ?)")
            .bind(id)
            .bind(email)
            .bind(name)
            .execute(&mut **tx)
            .await
            .map(drop)
    }

    async fn insert_duplicate(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO contacts (id, email, name) SELECT ?, email, 'Duplicate' FROM contacts \
             LIMIT 1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(drop)
    }

    async fn pool_execute(store: &Store<Self>, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
}

impl ContactsTable for PostgresBackend {
    const CREATE_PAYMENTS: &'static str = crm::jobs::PAYMENTS_POSTGRES;
    const CREATE_TABLES: &'static str = "CREATE TABLE IF NOT EXISTS contacts (id UUID PRIMARY \
         KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL)";

    fn app(bus: &TypedEventBus<Self>) -> App {
        App::Postgres(bus.clone())
    }

    async fn insert_contact(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
        email: &str,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO contacts (id, email, name) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(email)
            .bind(name)
            .execute(&mut **tx)
            .await
            .map(drop)
    }

    async fn insert_duplicate(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO contacts (id, email, name) SELECT $1, email, 'Duplicate' FROM contacts \
             LIMIT 1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(drop)
    }

    async fn pool_execute(store: &Store<Self>, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
}

async fn demo<B: ContactsTable>(store: Store<B>, args: &Args) -> Result<(), Failure> {
    B::pool_execute(&store, B::CREATE_TABLES).await?;
    B::pool_execute(&store, B::CREATE_PAYMENTS).await?;
    let bus = wire(&store);
    let drain = start(&bus);
    let worker = bus.worker().state(B::app(&bus)).spawn();
    for n in 0..args.contacts {
        let (id, email, name) = new_contact(n);
        let mut tx = store.begin().await?;
        B::insert_contact(&mut tx, id, &email, &name).await?;
        bus.publish(&mut tx, id, created(id)).await?;
        store.commit(tx).await?;
        println!(
            "wrote contact {name} <{email}>, published contact_created and enqueued its CRM sync, \
             one transaction"
        );
    }
    // A transaction that fails after publishing takes its event with it.
    let (id, _, _) = new_contact(0);
    let mut tx = store.begin().await?;
    bus.publish(&mut tx, id, created(id)).await?;
    let duplicate = B::insert_duplicate(&mut tx, id).await;
    drop(tx);
    report_rollback(duplicate);
    publish_payment(&bus).await?;
    aggregate_demo(&bus).await?;
    finish(&bus, drain, worker).await
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

fn report_rollback(insert: Result<(), sqlx::Error>) {
    match insert {
        Err(error) => println!(
            "a duplicate contact failed ({}): rolled back, and its contact_created with it",
            error.as_database_error().map_or("error", |e| e.message())
        ),
        Ok(()) => println!("unexpected: the duplicate contact was accepted"),
    }
}

/// Stripe delivers its webhook twice (as it does): two events, one booked payment.
async fn publish_payment<B: Backend>(bus: &TypedEventBus<B>) -> Result<(), Failure> {
    let stripe_event_id = format!("evt_{}", Uuid::now_v7().simple());
    for delivery in 1..=2 {
        let mut tx = bus.store().begin().await?;
        bus.publish_with(
            &mut tx,
            Publish::new(StripePaymentReceived {
                event_id: stripe_event_id.clone(),
                customer_id: "cus_demo".into(),
                amount_cents: 4900.0,
                currency: "eur".into(),
                received_at: Utc::now(),
            }),
        )
        .await?;
        bus.store().commit(tx).await?;
        println!(
            "published stripe_payment_received for {stripe_event_id} (webhook delivery {delivery})"
        );
    }
    Ok(())
}

/// The same entity as an event-sourced aggregate: create, update, archive (which enqueues a
/// job with its event), and a refused command.
async fn aggregate_demo<B: Backend>(bus: &TypedEventBus<B>) -> Result<(), Failure> {
    let contacts = bus.aggregates::<Contact>().snapshot_every(100);
    let id = Uuid::now_v7();
    let commands = [
        ContactCommand::Create {
            contact_id: id,
            account_id: None,
            created_by: Uuid::nil(),
        },
        ContactCommand::Update {
            email: Some("barbara@example.com".into()),
            name: Some("Barbara Liskov".into()),
            tags: vec!["vip".into()],
            updated_by: Uuid::nil(),
        },
        ContactCommand::Archive {
            at: Utc::now(),
            reason: Some("moved on".into()),
        },
        ContactCommand::Archive {
            at: Utc::now(),
            reason: None,
        },
    ];
    for command in commands {
        match contacts.execute(id, command).await {
            Ok(executed) => println!(
                "aggregate contact {id}: appended {} at sequence {}",
                executed
                    .events
                    .iter()
                    .map(|event| event.event_type().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                executed.sequence
            ),
            Err(ExecuteError::Rejected(refused)) => {
                println!("aggregate contact {id}: refused, nothing written: {refused}")
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// The subscribers: a projection, a flaky mailer that fails its first attempt, and the webhook
/// sender of the outbound sync events that the CRM sync job publishes.
fn wire<B: Backend>(store: &Store<B>) -> TypedEventBus<B> {
    let bus = TypedEventBus::new(store.clone()).with_jobs(crm::jobs::jobs());
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
    bus.subscribe(
        "crm_webhook",
        |e: Envelope<WebhookOutboundContactSync>| async move {
            println!(
                "  [crm_webhook]   POST /contacts ({}) for {} (event {})",
                e.payload.operation, e.payload.contact_id, e.id
            );
            Ok::<_, HandlerError>(())
        },
    );
    bus
}

fn start<B: Backend>(bus: &TypedEventBus<B>) -> ServiceHandle {
    bus.drain()
        .retry(RetryTiming {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        })
        .spawn()
}

async fn finish<B: Backend>(
    bus: &TypedEventBus<B>,
    drain: ServiceHandle,
    worker: ServiceHandle,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let jobs = bus.store().jobs();
    loop {
        let stats = bus.store().stats().await?;
        let pending = jobs
            .list(&RunFilter::default().status(RunStatus::Pending))
            .await?;
        let running = jobs
            .list(&RunFilter::default().status(RunStatus::Running))
            .await?;
        if stats.pending_events == 0
            && stats.retrying_deliveries == 0
            && pending.is_empty()
            && running.is_empty()
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the drain did not finish within 30 s: {stats:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    drain.shutdown().await;
    let stats = bus.store().stats().await?;
    let completed = jobs
        .list(
            &RunFilter::default()
                .status(RunStatus::Completed)
                .limit(1000),
        )
        .await?;
    let mut per_job = std::collections::BTreeMap::<&str, usize>::new();
    for run in &completed {
        *per_job.entry(run.job.as_str()).or_default() += 1;
    }
    println!(
        "done: {} events processed, {} dead letters; job runs completed: {per_job:?} \
         (two deliveries of one Stripe webhook collapsed onto one record_payment run)",
        stats.processed_events, stats.dead_letters,
    );
    Ok(())
}

//! The whole flow on the embedded default: contacts are written and their events published in
//! the same transactions (with the jobs they trigger), a drain delivers the events to
//! subscribers, a worker runs the jobs (one of which publishes an outbound event in turn), and
//! a failing subscriber retries alone.
//!
//! `cargo run -p crm` uses a SQLite file; `--database-url postgres://...` runs the same flow
//! against PostgreSQL; `--nats-url nats://127.0.0.1:4222` also relays the change and outbound
//! events to the JetStream stream `HERALD_DEMO`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use crm::contact::{Contact, ContactCommand};
use crm::generated::entities::{ContactRepository, NewContact};
use crm::generated::events::{ContactCreated, StripePaymentReceived, WebhookOutboundContactSync};
use crm::generated::{AppEvent, TypedEventBus};
use crm::jobs::App;
use herald::chrono::Utc;
use herald::ops::{RunFilter, RunStatus};
use herald::relay::Relay;
use herald::sqlx;
use herald::sqlx::migrate::{MigrateError, Migrator};
use herald::uuid::Uuid;
use herald::{
    Backend, DrainConfig, Envelope, ExecuteError, HandlerError, PostgresBackend, Publish,
    RepositoryBackend, RepositoryError, RetryTiming, ServiceHandle, SqliteBackend, Store,
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
    /// Also relay the change and outbound events to JetStream (stream `HERALD_DEMO`, subjects
    /// `herald.<direction>.<type>`), e.g. `nats://127.0.0.1:4222`.
    #[arg(long)]
    nats_url: Option<String>,
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
    entity_migrations("sqlite")
        .await?
        .run(store.backend().pool())
        .await
        .map_err(migration_failed)?;
    sqlx::raw_sql(crm::jobs::PAYMENTS_SQLITE)
        .execute(store.backend().pool())
        .await?;
    demo(store, args).await
}

async fn demo_postgres(args: &Args) -> Result<(), Failure> {
    let store = herald::postgres(&args.database_url).await?;
    store.migrate().await?;
    entity_migrations("postgres")
        .await?
        .run(store.backend().pool())
        .await
        .map_err(migration_failed)?;
    sqlx::raw_sql(crm::jobs::PAYMENTS_POSTGRES)
        .execute(store.backend().pool())
        .await?;
    demo(store, args).await
}

/// The job state, which names the database (the `record_payment` job writes its own table).
trait DemoDatabase: RepositoryBackend + Sized {
    fn app(bus: &TypedEventBus<Self>) -> App;
}

impl DemoDatabase for SqliteBackend {
    fn app(bus: &TypedEventBus<Self>) -> App {
        App::Sqlite(bus.clone())
    }
}

impl DemoDatabase for PostgresBackend {
    fn app(bus: &TypedEventBus<Self>) -> App {
        App::Postgres(bus.clone())
    }
}

/// The entity migrations `codegen-cli generate` wrote for `database`, applied with sqlx's
/// migrator (what `sqlx migrate run --source examples/crm/migrations/<database>` does).
async fn entity_migrations(database: &str) -> Result<Migrator, Failure> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(database);
    Ok(Migrator::new(dir).await?)
}

fn migration_failed(error: MigrateError) -> Failure {
    format!(
        "the entity migrations failed ({error}); a database left by an older demo holds tables \
         of its own: delete it (herald-demo.db) and run again"
    )
    .into()
}

async fn demo<B: DemoDatabase>(store: Store<B>, args: &Args) -> Result<(), Failure> {
    let bus = wire(&store);
    let relay = match &args.nats_url {
        Some(url) => Some(relay(&bus, url).await?),
        None => None,
    };
    let drain = start(&bus);
    let worker = bus.worker().state(B::app(&bus)).spawn();
    let contacts = ContactRepository::new(&bus);
    let mut first_email = None;
    for n in 0..args.contacts {
        let new = new_contact(n);
        let (name, email) = (new.name.clone(), new.email.clone());
        first_email.get_or_insert_with(|| email.clone());
        let mut tx = store.begin().await?;
        contacts.insert(&mut tx, new, DEMO_USER).await?;
        store.commit(tx).await?;
        println!(
            "wrote contact {name} <{email}> through ContactRepository: the row, its \
             contact_created and its CRM sync job in one transaction"
        );
    }
    // A write the database refuses takes its event with it.
    if let Some(email) = first_email {
        let mut tx = store.begin().await?;
        let mut duplicate = new_contact(0);
        duplicate.email = email;
        let refused = contacts.insert(&mut tx, duplicate, DEMO_USER).await;
        drop(tx);
        report_rollback(refused.map(drop));
    }
    publish_payment(&bus).await?;
    aggregate_demo(&bus).await?;
    finish(&bus, drain, worker).await?;
    if let Some(relay) = relay {
        let stats = relay.stats();
        println!(
            "relayed to JetStream: {} stored, {} already there (a repeat within the duplicate \
             window), {} failed attempts",
            stats.published, stats.duplicates, stats.failed
        );
    }
    Ok(())
}

/// The user the demo writes as (`created_by`, and the actor of the events).
const DEMO_USER: Uuid = Uuid::from_u128(0xde40);

fn new_contact(n: u32) -> NewContact {
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
        Uuid::now_v7().simple()
    );
    NewContact {
        email,
        name,
        phone: None,
        status: None,
        lifetime_value: None,
        birthday: None,
        account_id: None,
    }
}

fn report_rollback(insert: Result<(), RepositoryError>) {
    match insert {
        Err(error) if error.is_unique_violation() => println!(
            "a contact with a taken email was refused ({error}): rolled back, and its \
             contact_created with it"
        ),
        Err(error) => println!("the duplicate contact failed otherwise: {error}"),
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

fn drain_config() -> DrainConfig {
    DrainConfig {
        retry: RetryTiming {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        },
        ..DrainConfig::default()
    }
}

fn start<B: Backend>(bus: &TypedEventBus<B>) -> ServiceHandle {
    bus.drain().config(drain_config()).spawn()
}

/// Relays the change and outbound events to the stream `HERALD_DEMO`, created if missing.
async fn relay<B: Backend>(bus: &TypedEventBus<B>, url: &str) -> Result<Relay<AppEvent>, Failure> {
    let client = herald::relay::async_nats::connect(url).await?;
    let relay = Relay::new(client, "HERALD_DEMO").drain_config(&drain_config());
    relay.ensure_stream().await?;
    relay.subscribe(bus);
    println!(
        "relaying to JetStream at {url}: stream HERALD_DEMO, subjects {:?}",
        relay.stream_subjects()
    );
    Ok(relay)
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

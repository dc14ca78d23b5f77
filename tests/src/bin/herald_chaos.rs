//! `herald_chaos`: Herald under fire. A producer process publishes `contact_created` events,
//! each with a domain row in the same transaction; several worker processes drain them to two
//! subscribers and run the job each event triggers, every one writing a ledger row; a
//! supervisor SIGKILLs a random process (a worker, or the producer in the middle of its
//! transactions) every 0.5–2 s, and on PostgreSQL also terminates the workers' connections. At
//! the end the ledgers are counted: lost deliveries, order violations per aggregate, atomicity
//! violations and jobs never completed must all be 0; duplicates are allowed (at least once).
//!
//! ```text
//! herald_chaos run [--postgres-url URL] [--events N] [--workers W] [--kills K]
//!                  [--pause-ms MIN..MAX] [--seed S] [--json]
//! herald_chaos worker <url> <id>           (started by `run`)
//! herald_chaos producer <url> <events>     (started by `run`)
//! ```
//!
//! Without `--postgres-url` it runs on a fresh SQLite file; with it, in a fresh schema of that
//! server. The exit code is 1 when anything was lost, reordered or half-written.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::serde_json;
use herald::sqlx::{self, Connection, Executor, PgConnection};
use herald::uuid::Uuid;
use herald::{
    Backend, Envelope, HandlerError, JobContext, JobError, PostgresBackend, SqliteBackend, Store,
    job_handler,
};
use integration_tests::domain::events::ContactCreated;
use integration_tests::domain::{JobBindings, TypedEventBus};
use serde::{Deserialize, Serialize};

const SUBSCRIBERS: [&str; 2] = ["projection", "notifier"];
const AGGREGATES: u64 = 50;
/// The `application_name` of the workers' connections: what the connection storm terminates.
const WORKER_APPLICATION: &str = "herald_chaos_worker";

type Failure = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a worker writes to the ledgers, whatever its database.
type Record = Arc<dyn Fn(LedgerRow) -> BoxFuture<'static, Result<(), sqlx::Error>> + Send + Sync>;

enum LedgerRow {
    Received {
        seq: i64,
        subscriber: &'static str,
        contact: String,
    },
    JobDone {
        run: Uuid,
        seq: i64,
    },
}

/// The ledger of the triggered job, given to the worker as its state.
#[derive(Clone)]
struct JobLedger(Record);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChaosInput {
    contact_id: Uuid,
    created_by: Uuid,
}

impl From<&ContactCreated> for ChaosInput {
    fn from(event: &ContactCreated) -> Self {
        Self {
            contact_id: event.contact_id,
            created_by: event.created_by,
        }
    }
}

/// Records that it ran: the ledger tells runs completed once, more than once and never.
#[job_handler(triggers = [ContactCreated], retries = 20, backoff = "fixed")]
async fn chaos_ledger(ctx: JobContext, input: ChaosInput) -> Result<(), JobError> {
    let ledger = ctx.state::<JobLedger>()?.clone();
    (ledger.0)(LedgerRow::JobDone {
        run: ctx.run_id(),
        seq: sequence_of(input.created_by),
    })
    .await
    .map_err(|error| JobError::msg(error.to_string()))
}

/// The producer numbers its events through `created_by`.
fn sequence_of(created_by: Uuid) -> i64 {
    i64::try_from(created_by.as_u128()).unwrap_or(i64::MAX)
}

fn contact_of(seq: i64) -> Uuid {
    Uuid::from_u128(u128::from(seq.unsigned_abs() % AGGREGATES) + 1)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker") => match &args[1..] {
            [url, id] => on_backend(url, |store| worker(store, id.clone())).await,
            _ => Err("usage: herald_chaos worker <url> <id>".into()),
        },
        Some("producer") => match &args[1..] {
            [url, events] => {
                let events: i64 = events.parse()?;
                // A lost connection (the storm hits the producer too) rolls its transaction
                // back; it starts again after the last one that committed.
                loop {
                    match on_backend(url, move |store| producer(store, events)).await {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            eprintln!("producer: {error}; starting again");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            _ => Err("usage: herald_chaos producer <url> <events>".into()),
        },
        Some("run") => run(Settings::parse(&args[1..])?).await,
        _ => Err("usage: herald_chaos run [options] (see the file's documentation)".into()),
    }
}

/// Opens the store `url` names and runs `work` on it, whichever database it is.
async fn on_backend<W, F>(url: &str, work: W) -> Result<(), Failure>
where
    W: FnOnce(AnyStore) -> F,
    F: Future<Output = Result<(), Failure>>,
{
    let store = if url.starts_with("sqlite:") {
        AnyStore::Sqlite(herald::sqlite(url).await?)
    } else {
        AnyStore::Postgres(herald::postgres(url).await?)
    };
    work(store).await
}

enum AnyStore {
    Sqlite(Store<SqliteBackend>),
    Postgres(Store<PostgresBackend>),
}

/// The ledger statements, written once for both databases (`$n` placeholders work on both).
macro_rules! ledger_record {
    ($pool:expr) => {{
        let pool = $pool;
        let record: Record = Arc::new(move |row| {
            let pool = pool.clone();
            Box::pin(async move {
                match row {
                    LedgerRow::Received {
                        seq,
                        subscriber,
                        contact,
                    } => sqlx::query(
                        "INSERT INTO chaos_received (seq, subscriber, contact) VALUES ($1, $2, $3)",
                    )
                    .bind(seq)
                    .bind(subscriber)
                    .bind(contact)
                    .execute(&pool)
                    .await
                    .map(drop),
                    LedgerRow::JobDone { run, seq } => {
                        sqlx::query("INSERT INTO chaos_jobs (run_id, seq) VALUES ($1, $2)")
                            .bind(run.to_string())
                            .bind(seq)
                            .execute(&pool)
                            .await
                            .map(drop)
                    }
                }
            })
        });
        record
    }};
}

async fn worker(store: AnyStore, id: String) -> Result<(), Failure> {
    match store {
        AnyStore::Sqlite(store) => {
            let record = ledger_record!(store.backend().pool().clone());
            work(store, id, record).await
        }
        AnyStore::Postgres(store) => {
            let record = ledger_record!(store.backend().pool().clone());
            work(store, id, record).await
        }
    }
}

async fn work<B: Backend>(store: Store<B>, id: String, record: Record) -> Result<(), Failure> {
    let bus = TypedEventBus::new(store).with_jobs(JobBindings::new().register::<ChaosLedger>());
    for subscriber in SUBSCRIBERS {
        let record = record.clone();
        bus.subscribe(subscriber, move |e: Envelope<ContactCreated>| {
            let row = LedgerRow::Received {
                seq: sequence_of(e.payload.created_by),
                subscriber,
                contact: e.payload.contact_id.to_string(),
            };
            let written = record(row);
            async move { written.await.map_err(HandlerError::from) }
        });
    }
    let _drain = bus
        .drain()
        .worker_id(format!("{id}-drain"))
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(100))
        .spawn();
    // Short leases, so that the work of a killed process is taken over within seconds.
    let _worker = bus
        .worker()
        .state(JobLedger(record))
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(100))
        .spawn();
    std::future::pending::<()>().await;
    Ok(())
}

/// Publishes events `max(seq) + 1 ..= events`, ten per transaction, each with its domain row:
/// a kill in the middle of a transaction must leave neither.
async fn producer(store: AnyStore, events: i64) -> Result<(), Failure> {
    match store {
        AnyStore::Sqlite(store) => produce(&store, events).await,
        AnyStore::Postgres(store) => produce(&store, events).await,
    }
}

async fn produce<B: ChaosDb>(store: &Store<B>, events: i64) -> Result<(), Failure> {
    let bus =
        TypedEventBus::new(store.clone()).with_jobs(JobBindings::new().register::<ChaosLedger>());
    let mut seq = B::last_produced(store).await? + 1;
    while seq <= events {
        let mut tx = store.begin().await?;
        let last = (seq + 9).min(events);
        for n in seq..=last {
            let contact = contact_of(n);
            B::insert_produced(&mut tx, n, contact.to_string()).await?;
            let created_by = Uuid::from_u128(u128::try_from(n)?);
            bus.publish(
                &mut tx,
                contact,
                ContactCreated {
                    contact_id: contact,
                    account_id: None,
                    created_by,
                },
            )
            .await?;
        }
        store.commit(tx).await?;
        seq = last + 1;
    }
    Ok(())
}

/// The settings of a run.
struct Settings {
    postgres_url: Option<String>,
    events: i64,
    workers: usize,
    kills: u32,
    pause: (u64, u64),
    seed: u64,
    json: bool,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Self, Failure> {
        let mut settings = Settings {
            postgres_url: None,
            events: 20_000,
            workers: 3,
            kills: 100,
            pause: (500, 2000),
            seed: u64::from(std::process::id()),
            json: false,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("`{flag}` needs a value"))
            };
            match flag.as_str() {
                "--postgres-url" => settings.postgres_url = Some(value()?),
                "--events" => settings.events = value()?.parse()?,
                "--workers" => settings.workers = value()?.parse::<usize>()?.max(1),
                "--kills" => settings.kills = value()?.parse()?,
                "--seed" => settings.seed = value()?.parse()?,
                "--pause-ms" => {
                    let text = value()?;
                    let (min, max) = text
                        .split_once("..")
                        .ok_or("`--pause-ms` takes MIN..MAX, e.g. 500..2000")?;
                    settings.pause = (min.parse()?, max.parse::<u64>()?.max(min.parse()?));
                }
                "--json" => settings.json = true,
                other => return Err(format!("unknown option `{other}`").into()),
            }
        }
        Ok(settings)
    }
}

/// A small deterministic generator (xorshift): the run's choices come from its seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, min: u64, max: u64) -> u64 {
        min + self.next() % (max - min + 1)
    }
}

fn spawn(args: &[&str]) -> Result<Child, Failure> {
    Ok(Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::null())
        .spawn()?)
}

async fn run(settings: Settings) -> Result<(), Failure> {
    let _dir;
    let (url, schema) = match &settings.postgres_url {
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("chaos.db").display());
            _dir = dir;
            (url, None)
        }
        Some(server) => {
            let schema = format!("herald_chaos_{}", Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(server).await?;
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .await?;
            let separator = if server.contains('?') { '&' } else { '?' };
            let url = format!(
                "{server}{separator}options=-c%20search_path%3D{schema}\
                 &application_name={WORKER_APPLICATION}"
            );
            (url, Some((server.clone(), schema)))
        }
    };
    let outcome = on_backend(&url, |store| async {
        match store {
            AnyStore::Sqlite(store) => supervise(&store, &url, &settings).await,
            AnyStore::Postgres(store) => supervise(&store, &url, &settings).await,
        }
    })
    .await;
    if let Some((server, schema)) = schema {
        let mut admin = PgConnection::connect(&server).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await?;
    }
    outcome
}

/// The statements that create the ledgers, per database.
fn ledger_tables(postgres: bool) -> [String; 3] {
    let id = if postgres {
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    };
    [
        "CREATE TABLE chaos_produced (seq BIGINT PRIMARY KEY, contact TEXT NOT NULL)".to_owned(),
        format!(
            "CREATE TABLE chaos_received (id {id}, seq BIGINT NOT NULL, \
             subscriber TEXT NOT NULL, contact TEXT NOT NULL)"
        ),
        "CREATE TABLE chaos_jobs (run_id TEXT NOT NULL, seq BIGINT NOT NULL)".to_owned(),
    ]
}

async fn supervise<B>(store: &Store<B>, url: &str, settings: &Settings) -> Result<(), Failure>
where
    B: ChaosDb,
{
    store.migrate().await?;
    for statement in ledger_tables(settings.postgres_url.is_some()) {
        B::execute(store, &statement).await?;
    }
    let started = Instant::now();
    let events = settings.events.to_string();
    let mut producer = Some(spawn(&["producer", url, &events])?);
    let mut workers: Vec<Child> = (0..settings.workers)
        .map(|n| spawn(&["worker", url, &format!("w{n}")]))
        .collect::<Result<_, _>>()?;
    let mut dice = Dice(settings.seed.max(1));
    let (mut worker_kills, mut producer_kills, mut storms) = (0u32, 0u32, 0u32);
    for _ in 0..settings.kills {
        tokio::time::sleep(Duration::from_millis(
            dice.between(settings.pause.0, settings.pause.1),
        ))
        .await;
        let producer_running = match producer.as_mut() {
            Some(child) => child.try_wait()?.is_none(),
            None => false,
        };
        if producer_running && dice.between(0, settings.workers as u64) == 0 {
            if let Some(mut child) = producer.take() {
                child.kill()?;
                child.wait()?;
            }
            producer_kills += 1;
            producer = Some(spawn(&["producer", url, &events])?);
        } else {
            let victim = dice.between(0, settings.workers as u64 - 1) as usize;
            workers[victim].kill()?;
            workers[victim].wait()?;
            worker_kills += 1;
            workers[victim] = spawn(&["worker", url, &format!("w{victim}")])?;
        }
        if settings.postgres_url.is_some() && dice.between(0, 3) == 0 {
            B::terminate_connections(store).await?;
            storms += 1;
        }
    }
    let last_kill = Instant::now();
    if let Some(mut child) = producer.take() {
        child.wait()?;
    }
    // A killed producer leaves its last transaction out: finish the count.
    let mut finisher = spawn(&["producer", url, &events])?;
    finisher.wait()?;
    let deadline = Duration::from_secs(300);
    let drained = loop {
        let counts = B::counts(store).await?;
        if counts.lost == 0 && counts.runs_open == 0 && counts.pending_events == 0 {
            break Some(counts);
        }
        if last_kill.elapsed() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_after_last_kill = last_kill.elapsed();
    for mut worker in workers {
        worker.kill()?;
        worker.wait()?;
    }
    let counts = match drained {
        Some(counts) => counts,
        None => B::counts(store).await?,
    };
    let report = Report {
        database: if settings.postgres_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        worker_kills,
        producer_kills,
        connection_storms: storms,
        seconds: started.elapsed().as_secs_f64(),
        drain_after_last_kill_seconds: drain_after_last_kill.as_secs_f64(),
        drained: drained.is_some(),
        counts,
    };
    report.print(settings.json);
    if report.is_sound() {
        Ok(())
    } else {
        std::process::exit(1);
    }
}

/// The ledgers counted at the end.
#[derive(Debug, Clone, Copy, Serialize)]
struct Counts {
    produced: i64,
    stored_events: i64,
    pending_events: i64,
    lost: i64,
    duplicates: i64,
    order_violations: i64,
    runs: i64,
    runs_open: i64,
    jobs_completed_once: i64,
    jobs_completed_more_than_once: i64,
    jobs_never_completed: i64,
}

const COUNTS: &str = "SELECT \
    (SELECT count(*) FROM chaos_produced) AS produced, \
    (SELECT count(*) FROM herald_events) AS stored_events, \
    (SELECT count(*) FROM herald_events WHERE status <> 'processed') AS pending_events, \
    (SELECT count(*) FROM chaos_produced p \
       CROSS JOIN (SELECT 'projection' AS name UNION ALL SELECT 'notifier') s \
       WHERE NOT EXISTS (SELECT 1 FROM chaos_received r \
         WHERE r.seq = p.seq AND r.subscriber = s.name)) AS lost, \
    (SELECT count(*) FROM chaos_received) \
      - (SELECT count(*) FROM (SELECT DISTINCT seq, subscriber FROM chaos_received) d) \
      AS duplicates, \
    (SELECT count(*) FROM ( \
       SELECT seq, LAG(seq) OVER (PARTITION BY subscriber, contact ORDER BY first) AS previous \
       FROM (SELECT subscriber, contact, seq, MIN(id) AS first FROM chaos_received \
             GROUP BY subscriber, contact, seq) firsts) ordered \
     WHERE previous > seq) AS order_violations, \
    (SELECT count(*) FROM herald_jobs) AS runs, \
    (SELECT count(*) FROM herald_jobs WHERE status IN ('pending', 'running')) AS runs_open, \
    (SELECT count(*) FROM (SELECT run_id FROM chaos_jobs GROUP BY run_id \
       HAVING count(*) = 1) once) AS jobs_completed_once, \
    (SELECT count(*) FROM (SELECT run_id FROM chaos_jobs GROUP BY run_id \
       HAVING count(*) > 1) again) AS jobs_completed_more_than_once, \
    (SELECT count(*) FROM herald_jobs) \
      - (SELECT count(DISTINCT run_id) FROM chaos_jobs) AS jobs_never_completed";

/// What the supervisor and the producer ask of the database, written once for both.
trait ChaosDb: Backend {
    fn last_produced(store: &Store<Self>) -> BoxFuture<'_, Result<i64, sqlx::Error>>;
    /// The producer's domain row, in the transaction that publishes its event.
    fn insert_produced<'a>(
        tx: &'a mut Self::Transaction<'static>,
        seq: i64,
        contact: String,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
    fn execute<'a>(store: &'a Store<Self>, sql: &'a str) -> BoxFuture<'a, Result<(), Failure>>;
    fn counts(store: &Store<Self>) -> BoxFuture<'_, Result<Counts, Failure>>;
    fn terminate_connections(store: &Store<Self>) -> BoxFuture<'_, Result<(), Failure>>;
}

macro_rules! impl_counts {
    ($backend:ty, $terminate:expr) => {
        impl ChaosDb for $backend {
            fn insert_produced<'a>(
                tx: &'a mut Self::Transaction<'static>,
                seq: i64,
                contact: String,
            ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query("INSERT INTO chaos_produced (seq, contact) VALUES ($1, $2)")
                        .bind(seq)
                        .bind(contact)
                        .execute(&mut **tx)
                        .await
                        .map(drop)
                })
            }

            fn last_produced(store: &Store<Self>) -> BoxFuture<'_, Result<i64, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM chaos_produced")
                        .fetch_one(store.backend().pool())
                        .await
                })
            }

            fn execute<'a>(
                store: &'a Store<Self>,
                sql: &'a str,
            ) -> BoxFuture<'a, Result<(), Failure>> {
                Box::pin(async move {
                    store
                        .backend()
                        .pool()
                        .execute(sqlx::AssertSqlSafe(sql.to_owned()))
                        .await?;
                    Ok(())
                })
            }

            fn counts(store: &Store<Self>) -> BoxFuture<'_, Result<Counts, Failure>> {
                Box::pin(async move {
                    use herald::sqlx::Row;
                    let row = sqlx::query(COUNTS)
                        .fetch_one(store.backend().pool())
                        .await?;
                    let count = |column: &str| row.try_get::<i64, _>(column);
                    Ok(Counts {
                        produced: count("produced")?,
                        stored_events: count("stored_events")?,
                        pending_events: count("pending_events")?,
                        lost: count("lost")?,
                        duplicates: count("duplicates")?,
                        order_violations: count("order_violations")?,
                        runs: count("runs")?,
                        runs_open: count("runs_open")?,
                        jobs_completed_once: count("jobs_completed_once")?,
                        jobs_completed_more_than_once: count("jobs_completed_more_than_once")?,
                        jobs_never_completed: count("jobs_never_completed")?,
                    })
                })
            }

            fn terminate_connections(store: &Store<Self>) -> BoxFuture<'_, Result<(), Failure>> {
                Box::pin(async move {
                    if let Some(sql) = $terminate {
                        sqlx::query(sql)
                            .bind(WORKER_APPLICATION)
                            .execute(store.backend().pool())
                            .await?;
                    }
                    Ok(())
                })
            }
        }
    };
}
impl_counts!(SqliteBackend, None::<&'static str>);
impl_counts!(
    PostgresBackend,
    Some(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()"
    )
);

#[derive(Serialize)]
struct Report {
    database: &'static str,
    worker_kills: u32,
    producer_kills: u32,
    connection_storms: u32,
    seconds: f64,
    drain_after_last_kill_seconds: f64,
    drained: bool,
    counts: Counts,
}

impl Report {
    /// Nothing lost, reordered, half-written or never run; duplicates are at-least-once.
    fn is_sound(&self) -> bool {
        let c = &self.counts;
        self.drained
            && c.lost == 0
            && c.order_violations == 0
            && c.produced == c.stored_events
            && c.runs == c.produced
            && c.jobs_never_completed == 0
    }

    fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        let c = &self.counts;
        println!(
            "herald_chaos on {}: {} worker kills, {} producer kills, {} connection storms, {:.1} s",
            self.database,
            self.worker_kills,
            self.producer_kills,
            self.connection_storms,
            self.seconds
        );
        println!(
            "  events: {} produced, {} stored (atomicity violations: {})",
            c.produced,
            c.stored_events,
            (c.produced - c.stored_events).abs()
        );
        println!(
            "  deliveries: {} lost, {} duplicates, {} per-aggregate order violations",
            c.lost, c.duplicates, c.order_violations
        );
        println!(
            "  jobs: {} runs, {} completed once, {} more than once, {} never",
            c.runs, c.jobs_completed_once, c.jobs_completed_more_than_once, c.jobs_never_completed
        );
        println!(
            "  drained {:.1} s after the last kill{}",
            self.drain_after_last_kill_seconds,
            if self.drained {
                ""
            } else {
                " (NOT drained within 300 s)"
            }
        );
        println!(
            "  verdict: {}",
            if self.is_sound() { "sound" } else { "BROKEN" }
        );
    }
}

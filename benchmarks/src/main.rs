//! Herald's outbox and job benchmarks, each against a baseline measured in the same run on the
//! same database:
//!
//! - a bare one-row `INSERT` + `COMMIT`, against which an unbatched publish is compared;
//! - the design Herald replaces: poll every second, claim 50, dispatch serially, mark each row
//!   processed with its own `UPDATE`;
//! - the ceiling of the claim approach: a bare queue table claimed 100 rows per `UPDATE` by one
//!   connection, with the settings of Herald's own claims.
//!
//! `cargo run --release -p herald-benchmarks -- --help`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use crm::generated::events::ContactCreated;
use crm::generated::{JobBindings, TypedEventBus};
use herald::sqlx::{self, Connection, Executor};
use herald::uuid::Uuid;
use herald::{
    Backend, Envelope, HandlerError, JobContext, JobError, PostgresBackend, Publish, SqliteBackend,
    Store, Worker, job_handler,
};
use serde::{Deserialize, Serialize};

mod relay;
mod side_by_side;

#[derive(Parser)]
#[command(about = "Throughput and latency of Herald's outbox and jobs against baselines")]
struct Args {
    /// PostgreSQL server for the PostgreSQL half (default: $HERALD_TEST_POSTGRES_URL).
    #[arg(long)]
    postgres_url: Option<String>,
    /// Events (and jobs) per throughput scenario.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Events in the backlog whose drain is watched for memory.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    #[arg(long)]
    skip_backlog: bool,
    /// Run only the aggregate scenarios.
    #[arg(long)]
    aggregates_only: bool,
    /// Run only one backend.
    #[arg(long, value_parser = ["sqlite", "postgres"])]
    only: Option<String>,
    /// NATS server (with JetStream) for the relay scenarios (default: $HERALD_TEST_NATS_URL;
    /// without one they are skipped).
    #[arg(long)]
    nats_url: Option<String>,
    /// Run only the relay scenarios.
    #[arg(long)]
    relay_only: bool,
    /// ANALYZE the tables once each backlog is filled, as peer queues' benchmark scripts do.
    /// Without it the tables keep the statistics publishers leave them: none on a fresh table
    /// while autovacuum has not run (or is off).
    #[arg(long)]
    analyze: bool,
    /// Run Herald on PostgreSQL beside graphile-worker (installed with npm on first use) and the
    /// database's limits, in alternating rounds, and print the medians and each round's ratios.
    #[arg(long)]
    side_by_side: bool,
    /// Rounds of `--side-by-side`.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// With `--side-by-side`: also one JSON line per figure and per ratio.
    #[arg(long)]
    json: bool,
    /// With `--side-by-side`: run only these parts (e.g. to profile one).
    #[arg(long, value_delimiter = ',', value_parser = ["jobs", "drain", "single"])]
    parts: Vec<String>,
}

/// One line of the report.
struct Row {
    backend: &'static str,
    scenario: String,
    value: String,
    baseline: String,
    ratio: String,
}

#[derive(Default)]
struct Report(Vec<Row>);

impl Report {
    fn add(
        &mut self,
        backend: &'static str,
        scenario: impl Into<String>,
        value: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
    ) {
        let row = Row {
            backend,
            scenario: scenario.into(),
            value: value.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
        };
        println!(
            "  {:<9} {:<52} {:>16} {:>16} {:>9}",
            row.backend, row.scenario, row.value, row.baseline, row.ratio
        );
        self.0.push(row);
    }

    fn print(&self) {
        println!("\n| backend | scenario | Herald | baseline | ratio |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for row in &self.0 {
            println!(
                "| {} | {} | {} | {} | {} |",
                row.backend, row.scenario, row.value, row.baseline, row.ratio
            );
        }
    }
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn per_second(value: f64) -> String {
    format!("{value:.0}/s")
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn created(n: u64) -> ContactCreated {
    ContactCreated {
        contact_id: Uuid::now_v7(),
        account_id: None,
        created_by: Uuid::from_u128(u128::from(n)),
    }
}

/// SQL that differs between the two databases.
trait Dialect: Backend {
    const NAME: &'static str;
    const BARE_TABLE: &'static str;
    const BARE_INSERT: &'static str;
    const LEGACY_TABLE: &'static str;
    const LEGACY_INSERT: &'static str;
    const LEGACY_CLAIM: &'static str;
    const LEGACY_MARK: &'static str;
    const COUNT_COMPLETED: &'static str;
    /// Statistics of Herald's tables (`--analyze`).
    const ANALYZE_HERALD: &'static str;
    /// A bare queue: an id, a status, a payload, and an index of the pending rows in id order.
    const RAW_TABLE: &'static str;
    const RAW_ANALYZE: &'static str;

    fn execute<'a>(
        store: &'a Store<Self>,
        sql: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    fn bare_insert<'a>(
        tx: &'a mut Self::Transaction<'static>,
        id: Uuid,
        payload: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    fn legacy_insert<'a>(
        store: &'a Store<Self>,
        payload: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    /// Claims up to 50 unprocessed rows: (id, payload).
    fn legacy_claim(
        store: &Store<Self>,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, sqlx::Error>> + Send + '_;
    fn legacy_mark(
        store: &Store<Self>,
        id: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;
    fn count<'a>(
        store: &'a Store<Self>,
        sql: &'static str,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send + 'a;
    /// Fills the bare queue with `n` pending rows of `payload`.
    fn raw_fill<'a>(
        store: &'a Store<Self>,
        payload: &'a str,
        n: u64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    /// Claims the bare queue 100 rows per statement, in id order, until it is empty; returns
    /// how many rows it claimed. `as_herald_claims`: on a connection set up as Herald's claims
    /// are (PostgreSQL: `synchronous_commit` off), else with the server's defaults.
    fn raw_claim_all(
        store: &Store<Self>,
        as_herald_claims: bool,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + '_;
}

impl Dialect for SqliteBackend {
    const NAME: &'static str = "SQLite";
    const BARE_TABLE: &'static str =
        "CREATE TABLE bench_bare (id BLOB PRIMARY KEY, payload TEXT NOT NULL)";
    const BARE_INSERT: &'static str = "INSERT INTO bench_bare (id, payload) VALUES (?, ?)";
    const LEGACY_TABLE: &'static str = "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY, \
         payload TEXT NOT NULL, processed INTEGER NOT NULL DEFAULT 0)";
    const LEGACY_INSERT: &'static str = "INSERT INTO legacy_outbox (payload) VALUES (?)";
    const LEGACY_CLAIM: &'static str = "SELECT id, payload FROM legacy_outbox \
         WHERE processed = 0 ORDER BY id LIMIT 50";
    const LEGACY_MARK: &'static str = "UPDATE legacy_outbox SET processed = 1 WHERE id = ?";
    const COUNT_COMPLETED: &'static str =
        "SELECT count(*) FROM herald_jobs WHERE status = 'completed'";
    const ANALYZE_HERALD: &'static str = "ANALYZE";
    const RAW_TABLE: &'static str = "CREATE TABLE bench_claim (id INTEGER PRIMARY KEY, \
         status TEXT NOT NULL DEFAULT 'pending', payload TEXT NOT NULL); \
         CREATE INDEX bench_claim_pending ON bench_claim (id) WHERE status = 'pending'";
    const RAW_ANALYZE: &'static str = "ANALYZE bench_claim";

    async fn execute(store: &Store<Self>, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn raw_fill(store: &Store<Self>, payload: &str, n: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
             INSERT INTO bench_claim (payload) SELECT ?1 FROM n",
        )
        .bind(payload)
        .bind(n as i64)
        .execute(store.backend().pool())
        .await
        .map(drop)
    }
    async fn raw_claim_all(store: &Store<Self>, _: bool) -> Result<u64, sqlx::Error> {
        // One writer and one commit mode on SQLite: Herald's claims run as these do.
        let mut claimed = 0;
        loop {
            let rows = sqlx::query(
                "UPDATE bench_claim SET status = 'claimed' WHERE id IN ( \
                   SELECT id FROM bench_claim WHERE status = 'pending' ORDER BY id LIMIT 100)",
            )
            .execute(store.backend().pool())
            .await?
            .rows_affected();
            if rows == 0 {
                return Ok(claimed);
            }
            claimed += rows;
        }
    }
    async fn bare_insert(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
        payload: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(Self::BARE_INSERT)
            .bind(id)
            .bind(payload)
            .execute(&mut **tx)
            .await
            .map(drop)
    }
    async fn legacy_insert(store: &Store<Self>, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query(Self::LEGACY_INSERT)
            .bind(payload)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn legacy_claim(store: &Store<Self>) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as(Self::LEGACY_CLAIM)
            .fetch_all(store.backend().pool())
            .await
    }
    async fn legacy_mark(store: &Store<Self>, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query(Self::LEGACY_MARK)
            .bind(id)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn count(store: &Store<Self>, sql: &'static str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql)
            .fetch_one(store.backend().pool())
            .await
    }
}

impl Dialect for PostgresBackend {
    const NAME: &'static str = "PostgreSQL";
    const BARE_TABLE: &'static str =
        "CREATE TABLE bench_bare (id UUID PRIMARY KEY, payload JSONB NOT NULL)";
    const BARE_INSERT: &'static str = "INSERT INTO bench_bare (id, payload) VALUES ($1, $2::jsonb)";
    const LEGACY_TABLE: &'static str = "CREATE TABLE legacy_outbox (id BIGSERIAL PRIMARY KEY, \
         payload JSONB NOT NULL, processed BOOLEAN NOT NULL DEFAULT false)";
    const LEGACY_INSERT: &'static str = "INSERT INTO legacy_outbox (payload) VALUES ($1::jsonb)";
    const LEGACY_CLAIM: &'static str = "SELECT id, payload::text FROM legacy_outbox \
         WHERE NOT processed ORDER BY id LIMIT 50";
    const LEGACY_MARK: &'static str = "UPDATE legacy_outbox SET processed = true WHERE id = $1";
    const COUNT_COMPLETED: &'static str =
        "SELECT count(*) FROM herald_jobs WHERE status = 'completed'";
    const ANALYZE_HERALD: &'static str = "ANALYZE herald_events, herald_deliveries, herald_jobs";
    const RAW_TABLE: &'static str = "CREATE TABLE bench_claim (id BIGSERIAL PRIMARY KEY, \
         status TEXT NOT NULL DEFAULT 'pending', payload JSONB NOT NULL); \
         CREATE INDEX bench_claim_pending ON bench_claim (id) WHERE status = 'pending'";
    const RAW_ANALYZE: &'static str = "ANALYZE bench_claim";

    async fn raw_fill(store: &Store<Self>, payload: &str, n: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO bench_claim (payload) SELECT $1::jsonb FROM generate_series(1, $2)",
        )
        .bind(payload)
        .bind(n as i64)
        .execute(store.backend().pool())
        .await
        .map(drop)
    }
    async fn raw_claim_all(
        store: &Store<Self>,
        as_herald_claims: bool,
    ) -> Result<u64, sqlx::Error> {
        let options = store.backend().pool().connect_options().as_ref().clone();
        let options = if as_herald_claims {
            // The settings of Herald's bookkeeping pool, where its claims run.
            options.options([("synchronous_commit", "off"), ("enable_sort", "off")])
        } else {
            options
        };
        let mut connection = sqlx::PgConnection::connect_with(&options).await?;
        let mut claimed = 0;
        loop {
            let rows = sqlx::query(
                "UPDATE bench_claim SET status = 'claimed' WHERE id = ANY(ARRAY( \
                   SELECT id FROM bench_claim WHERE status = 'pending' ORDER BY id LIMIT 100 \
                   FOR UPDATE SKIP LOCKED))",
            )
            .execute(&mut connection)
            .await?
            .rows_affected();
            if rows == 0 {
                return Ok(claimed);
            }
            claimed += rows;
        }
    }

    async fn execute(store: &Store<Self>, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn bare_insert(
        tx: &mut Self::Transaction<'static>,
        id: Uuid,
        payload: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(Self::BARE_INSERT)
            .bind(id)
            .bind(payload)
            .execute(&mut **tx)
            .await
            .map(drop)
    }
    async fn legacy_insert(store: &Store<Self>, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query(Self::LEGACY_INSERT)
            .bind(payload)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn legacy_claim(store: &Store<Self>) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as(Self::LEGACY_CLAIM)
            .fetch_all(store.backend().pool())
            .await
    }
    async fn legacy_mark(store: &Store<Self>, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query(Self::LEGACY_MARK)
            .bind(id)
            .execute(store.backend().pool())
            .await
            .map(drop)
    }
    async fn count(store: &Store<Self>, sql: &'static str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql)
            .fetch_one(store.backend().pool())
            .await
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// A bus whose one subscriber counts deliveries and, when asked, notes when each arrived.
fn counting_bus<B: Dialect>(
    store: &Store<B>,
    delivered: &Arc<AtomicU64>,
    arrivals: &Arc<Mutex<HashMap<Uuid, Instant>>>,
) -> TypedEventBus<B> {
    let bus = TypedEventBus::new(store.clone());
    let (delivered, arrivals) = (delivered.clone(), arrivals.clone());
    bus.subscribe("bench", move |e: Envelope<ContactCreated>| {
        let now = Instant::now();
        delivered.fetch_add(1, Ordering::Relaxed);
        if e.payload.created_by == Uuid::nil() {
            arrivals.lock().unwrap().insert(e.id, now);
        }
        async { Ok::<_, HandlerError>(()) }
    });
    bus
}

/// Events per second that `workers` drains of counting buses deliver, from their start until
/// `delivered` reaches `n`.
async fn timed_drain<B: Dialect>(
    store: &Store<B>,
    delivered: &Arc<AtomicU64>,
    arrivals: &Arc<Mutex<HashMap<Uuid, Instant>>>,
    n: u64,
    workers: usize,
) -> Result<f64, Failure> {
    let drains: Vec<_> = (0..workers)
        .map(|w| {
            counting_bus(store, delivered, arrivals)
                .drain()
                .worker_id(format!("bench-{w}"))
                .spawn()
        })
        .collect();
    let start = Instant::now();
    wait_for(delivered, n, Duration::from_secs(600)).await?;
    let drained = rate(n, start.elapsed());
    for drain in drains {
        drain.shutdown().await;
    }
    Ok(drained)
}

async fn wait_for(counter: &AtomicU64, target: u64, limit: Duration) -> Result<(), Failure> {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) < target {
        if start.elapsed() > limit {
            return Err(format!(
                "gave up after {limit:?}: {} of {target}",
                counter.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

async fn publish_backlog<B: Dialect>(
    bus: &TypedEventBus<B>,
    count: u64,
    per_tx: u64,
) -> Result<(), Failure> {
    let mut n = 0;
    while n < count {
        let take = per_tx.min(count - n);
        let mut tx = bus.store().begin().await?;
        if take == 1 {
            let event = created(n + 1);
            bus.publish(&mut tx, event.contact_id, event).await?;
        } else {
            let events: Vec<_> = (n..n + take)
                .map(|i| {
                    let event = created(i + 1);
                    Publish::new(event.clone()).aggregate_id(event.contact_id)
                })
                .collect();
            bus.publish_many(&mut tx, events).await?;
        }
        bus.store().commit(tx).await?;
        n += take;
    }
    Ok(())
}

/// The replaced design's figures on one backend, for the job rows' ratios.
#[derive(Clone, Copy)]
struct Legacy {
    rate: f64,
    latency_p50: Duration,
    latency_p99: Duration,
}

async fn outbox<B: Dialect>(
    store: Store<B>,
    args: &Args,
    report: &mut Report,
) -> Result<Legacy, Failure> {
    let name = B::NAME;
    let n = args.events;
    B::execute(&store, B::BARE_TABLE).await?;
    B::execute(&store, B::LEGACY_TABLE).await?;
    let payload = r#"{"contact_id":"01a204c1-a31e-7783-9727-da1b7826523d","account_id":null,"created_by":"00000000-0000-0000-0000-000000000001"}"#;

    // 1. Unbatched publish against a bare one-row INSERT + COMMIT.
    let singles = n.min(5_000);
    let start = Instant::now();
    for _ in 0..singles {
        let mut tx = store.begin().await?;
        B::bare_insert(&mut tx, Uuid::now_v7(), payload).await?;
        store.commit(tx).await?;
    }
    let bare = rate(singles, start.elapsed());
    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let bus = counting_bus(&store, &delivered, &arrivals);
    let start = Instant::now();
    publish_backlog(&bus, singles, 1).await?;
    let publish = rate(singles, start.elapsed());
    report.add(
        name,
        "publish, 1 event per transaction (vs bare INSERT+COMMIT)",
        per_second(publish),
        per_second(bare),
        format!("{:.2}", publish / bare),
    );
    // Drain what was just published, so that the next scenarios start from an empty lane.
    let drain = bus.drain().spawn();
    wait_for(&delivered, singles, Duration::from_secs(600)).await?;
    drain.shutdown().await;

    // 2. The design Herald replaces, on a backlog: poll 1 s, claim 50, serial, mark each.
    let legacy_n = n.min(5_000);
    for _ in 0..legacy_n {
        B::legacy_insert(&store, payload).await?;
    }
    let legacy_delivered = AtomicU64::new(0);
    let start = Instant::now();
    legacy_drain(&store, &legacy_delivered, legacy_n, None).await?;
    let legacy_rate = rate(legacy_n, start.elapsed());

    // 3. The ceiling of the claim approach on a backlog as large: claim 100 rows per UPDATE,
    //    with the server's default commit (as `pgbench` measures it) and as Herald claims.
    B::execute(&store, B::RAW_TABLE).await?;
    let mut raw_claim = 0.0;
    for as_herald_claims in [false, true] {
        B::raw_fill(&store, payload, n).await?;
        if args.analyze {
            B::execute(&store, B::RAW_ANALYZE).await?;
        }
        let start = Instant::now();
        let claimed = B::raw_claim_all(&store, as_herald_claims).await?;
        raw_claim = rate(claimed, start.elapsed());
        let settings = if as_herald_claims {
            "Herald's claim settings"
        } else {
            "default commit"
        };
        report.add(
            name,
            format!("raw claim, 100 rows per UPDATE, 1 connection, {settings}"),
            per_second(raw_claim),
            "",
            "",
        );
    }

    // 4. Drain-only throughput on a backlog, 1 and 4 workers.
    let workers_list: &[usize] = if name == "SQLite" { &[1] } else { &[1, 4] };
    for &workers in workers_list {
        delivered.store(0, Ordering::Relaxed);
        publish_backlog(&bus, n, 1_000).await?;
        if args.analyze {
            B::execute(&store, B::ANALYZE_HERALD).await?;
        }
        let drained = timed_drain(&store, &delivered, &arrivals, n, workers).await?;
        report.add(
            name,
            format!("drain a backlog of {n}, {workers} worker(s) (vs legacy poller)"),
            per_second(drained),
            per_second(legacy_rate),
            format!("{:.1}x", drained / legacy_rate),
        );
        report.add(
            name,
            format!("drain a backlog of {n}, {workers} worker(s) (vs raw claim as Herald's)"),
            per_second(drained),
            per_second(raw_claim),
            format!("{:.2}", drained / raw_claim),
        );
    }

    // 5. Publish and drain at once, 1 and 100 events per transaction.
    for per_tx in [1, 100] {
        delivered.store(0, Ordering::Relaxed);
        let count = if per_tx == 1 { n.min(10_000) } else { n };
        let drain = bus.drain().spawn();
        let start = Instant::now();
        publish_backlog(&bus, count, per_tx).await?;
        wait_for(&delivered, count, Duration::from_secs(600)).await?;
        let through = rate(count, start.elapsed());
        drain.shutdown().await;
        // One event per transaction is bounded by the commit rate: compare it with the bare
        // INSERT+COMMIT; batches are compared with the replaced design.
        let (baseline, label) = if per_tx == 1 {
            (bare, "bare INSERT+COMMIT")
        } else {
            (legacy_rate, "legacy poller")
        };
        report.add(
            name,
            format!("publish + drain, {per_tx} event(s) per transaction (vs {label})"),
            per_second(through),
            per_second(baseline),
            format!("{:.2}x", through / baseline),
        );
    }

    // 5. Commit-to-handler latency of an idle system.
    let drain = bus.drain().spawn();
    let committed = publish_spaced(&bus, 2_000).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drain.shutdown().await;
    let latencies = latencies(&committed, &arrivals.lock().unwrap());
    let legacy_latencies = legacy_latency(&store).await?;
    report.add(
        name,
        format!(
            "commit-to-handler latency p50 ({} samples)",
            latencies.len()
        ),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&legacy_latencies, 0.5)),
        format!(
            "{:.0}x faster",
            percentile(&legacy_latencies, 0.5).as_secs_f64()
                / percentile(&latencies, 0.5).as_secs_f64().max(1e-9)
        ),
    );
    report.add(
        name,
        "commit-to-handler latency p99",
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&legacy_latencies, 0.99)),
        format!(
            "{:.0}x faster",
            percentile(&legacy_latencies, 0.99).as_secs_f64()
                / percentile(&latencies, 0.99).as_secs_f64().max(1e-9)
        ),
    );
    Ok(Legacy {
        rate: legacy_rate,
        latency_p50: percentile(&legacy_latencies, 0.5),
        latency_p99: percentile(&legacy_latencies, 0.99),
    })
}

/// Publishes `count` events of one aggregate, one per transaction and 1 ms apart, as an idle
/// system sees them; returns when each committed, by event id.
async fn publish_spaced<B: Backend>(
    bus: &TypedEventBus<B>,
    count: u32,
) -> Result<HashMap<Uuid, Instant>, Failure> {
    let store = bus.store();
    let mut committed = HashMap::new();
    for _ in 0..count {
        let event = ContactCreated {
            created_by: Uuid::nil(),
            ..created(0)
        };
        let mut tx = store.begin().await?;
        let id = bus.publish(&mut tx, event.contact_id, event).await?;
        store.commit(tx).await?;
        committed.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(committed)
}

fn latencies(
    committed: &HashMap<Uuid, Instant>,
    arrivals: &HashMap<Uuid, Instant>,
) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| Some(arrivals.get(id)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    latencies
}

/// The replaced design's loop: until `target` rows are processed.
async fn legacy_drain<B: Dialect>(
    store: &Store<B>,
    delivered: &AtomicU64,
    target: u64,
    arrivals: Option<&Mutex<Vec<Instant>>>,
) -> Result<(), Failure> {
    while delivered.load(Ordering::Relaxed) < target {
        let rows = B::legacy_claim(store).await?;
        for (id, _payload) in &rows {
            // Dispatch to the handler, serially, then mark the row on its own.
            if let Some(arrivals) = arrivals {
                arrivals.lock().unwrap().push(Instant::now());
            }
            delivered.fetch_add(1, Ordering::Relaxed);
            B::legacy_mark(store, *id).await?;
        }
        if rows.len() < 50 && delivered.load(Ordering::Relaxed) < target {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// The replaced design's commit-to-handler latency: 20 events at random moments.
async fn legacy_latency<B: Dialect>(store: &Store<B>) -> Result<Vec<Duration>, Failure> {
    const SAMPLES: u64 = 20;
    let payload = r#"{"sample":true}"#;
    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let (store, delivered, arrivals) = (store.clone(), delivered.clone(), arrivals.clone());
        tokio::spawn(
            async move { legacy_drain(&store, &delivered, SAMPLES, Some(&arrivals)).await },
        )
    };
    let mut committed = Vec::new();
    for n in 0..SAMPLES {
        // Spread over the poll period: 0..950 ms, varied by a cheap deterministic sequence.
        tokio::time::sleep(Duration::from_millis((n * 337) % 950 + 1)).await;
        B::legacy_insert(store, payload).await?;
        committed.push(Instant::now());
    }
    poller.await??;
    let arrivals = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = committed
        .iter()
        .zip(arrivals.iter())
        .map(|(sent, got)| got.saturating_duration_since(*sent))
        .collect();
    latencies.sort();
    Ok(latencies)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoopInput {
    n: u64,
}

/// Started-at instants of benchmark runs, by run id.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<HashMap<Uuid, Instant>>>);

#[job_handler(retries = 0)]
async fn noop_job(ctx: JobContext, _input: NoopInput) -> Result<(), JobError> {
    if let Ok(progress) = ctx.state::<Arc<side_by_side::BurnDown>>() {
        progress.started();
        progress.finished();
    }
    if let Ok(starts) = ctx.state::<Starts>() {
        starts
            .0
            .lock()
            .unwrap()
            .insert(ctx.run_id(), Instant::now());
    }
    Ok(())
}

async fn jobs<B: Dialect>(
    store: Store<B>,
    args: &Args,
    report: &mut Report,
    legacy: Legacy,
) -> Result<(), Failure> {
    let name = B::NAME;
    let n = args.events;
    let workers_list: &[usize] = if name == "SQLite" { &[1] } else { &[1, 4] };
    for &workers in workers_list {
        let start = Instant::now();
        side_by_side::enqueue_noop_jobs(&store, n).await?;
        let enqueue_rate = rate(n, start.elapsed());
        if args.analyze {
            B::execute(&store, B::ANALYZE_HERALD).await?;
        }
        let completed = side_by_side::burn_down(&store, n, workers).await?;
        report.add(
            name,
            "jobs enqueued, 100 per transaction",
            per_second(enqueue_rate),
            "",
            "",
        );
        report.add(
            name,
            format!(
                "no-op jobs completed from a backlog of {n}, {workers} worker(s) (vs legacy poller)"
            ),
            per_second(completed),
            per_second(legacy.rate),
            format!("{:.1}x", completed / legacy.rate),
        );
    }

    // Enqueue-to-start latency of an idle worker.
    let starts = Starts::default();
    let worker = noop_worker(&store).state(starts.clone()).spawn();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut committed = HashMap::new();
    for i in 0..1_000 {
        let mut tx = store.begin().await?;
        let id = store
            .jobs()
            .start::<NoopJob>(&mut tx, NoopInput { n: i })
            .await?;
        store.commit(tx).await?;
        committed.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.shutdown().await;
    let latencies = latencies(&committed, &starts.0.lock().unwrap());
    for (label, p, baseline) in [
        ("p50", 0.5, legacy.latency_p50),
        ("p99", 0.99, legacy.latency_p99),
    ] {
        let herald = percentile(&latencies, p);
        report.add(
            name,
            format!(
                "enqueue-to-start latency {label} ({} samples)",
                latencies.len()
            ),
            ms(herald),
            ms(baseline),
            format!(
                "{:.0}x faster",
                baseline.as_secs_f64() / herald.as_secs_f64().max(1e-9)
            ),
        );
    }
    Ok(())
}

/// Commands per second through `execute`, each on a different aggregate that holds exactly
/// `history` events, with and without snapshots (every 100 events).
async fn aggregates<B: Dialect>(store: Store<B>, report: &mut Report) -> Result<(), Failure> {
    use crm::contact::{Contact, ContactCommand};
    use crm::generated::ContactEvent;
    use crm::generated::events::ContactUpdated;
    use herald::{JobQueue, Loaded};

    let name = B::NAME;
    let bus = TypedEventBus::new(store.clone());
    let rename = |n: u64| ContactCommand::Update {
        email: None,
        name: Some(format!("name {n}")),
        tags: Vec::new(),
        updated_by: Uuid::nil(),
    };
    for (history, per_mode) in [(10u64, 300u64), (1_000, 40)] {
        // Build 2 × per_mode aggregates of `history` events, each in one append; the builder
        // snapshots, so the aggregates have a snapshot at their last multiple of 100.
        let builder = bus.aggregates::<Contact>().snapshot_every(100);
        let mut ids = Vec::new();
        for _ in 0..2 * per_mode {
            let id = Uuid::now_v7();
            builder
                .execute(
                    id,
                    ContactCommand::Create {
                        contact_id: id,
                        account_id: None,
                        created_by: Uuid::nil(),
                    },
                )
                .await?;
            let loaded = builder.load(id).await?;
            let updates: Vec<ContactEvent> = (1..history)
                .map(|n| {
                    ContactUpdated {
                        contact_id: id,
                        email: None,
                        name: Some(format!("name {n}")),
                        tags: Vec::new(),
                        updated_by: Uuid::nil(),
                    }
                    .into()
                })
                .collect();
            builder
                .append(
                    &id.to_string(),
                    Loaded { ..loaded },
                    updates,
                    JobQueue::new(),
                )
                .await?;
            ids.push(id);
        }
        let (plain_ids, snapshot_ids) = ids.split_at(per_mode as usize);
        let plain = bus.aggregates::<Contact>();
        let start = Instant::now();
        for (n, id) in plain_ids.iter().enumerate() {
            plain.execute(id, rename(history + n as u64)).await?;
        }
        let plain_rate = rate(per_mode, start.elapsed());
        report.add(
            name,
            format!("execute on aggregates of {history} events, no snapshots"),
            per_second(plain_rate),
            "",
            "",
        );
        let snapshotted = bus.aggregates::<Contact>().snapshot_every(100);
        let start = Instant::now();
        for (n, id) in snapshot_ids.iter().enumerate() {
            snapshotted.execute(id, rename(history + n as u64)).await?;
        }
        let snapshot_rate = rate(per_mode, start.elapsed());
        report.add(
            name,
            format!("execute on aggregates of {history} events, snapshots every 100"),
            per_second(snapshot_rate),
            per_second(plain_rate),
            format!("{:.2}x", snapshot_rate / plain_rate),
        );
    }
    Ok(())
}

async fn backlog_memory<B: Dialect>(
    store: Store<B>,
    args: &Args,
    report: &mut Report,
) -> Result<(), Failure> {
    let name = B::NAME;
    let n = args.backlog;
    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let bus = counting_bus(&store, &delivered, &arrivals);
    let start = Instant::now();
    publish_backlog(&bus, n, 1_000).await?;
    let published = start.elapsed();
    let before = rss_kib();
    let drain = bus.drain().spawn();
    let start = Instant::now();
    let mut samples = Vec::new();
    while delivered.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(250)).await;
        samples.push((delivered.load(Ordering::Relaxed), rss_kib()));
        if start.elapsed() > Duration::from_secs(1800) {
            return Err("the backlog did not drain within 30 minutes".into());
        }
    }
    let drained = rate(n, start.elapsed());
    drain.shutdown().await;
    let peak = samples.iter().map(|(_, rss)| *rss).max().unwrap_or(before);
    let at = |fraction: f64| {
        samples
            .iter()
            .find(|(done, _)| *done as f64 >= n as f64 * fraction)
            .map_or(0, |(_, rss)| *rss)
    };
    report.add(
        name,
        format!(
            "backlog of {n}: published in {:.1} s, drained",
            published.as_secs_f64()
        ),
        per_second(drained),
        "",
        "",
    );
    report.add(
        name,
        "RSS before drain / at 25% / 50% / 75% / peak (MiB)",
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} / {:.0}",
            before as f64 / 1024.0,
            at(0.25) as f64 / 1024.0,
            at(0.5) as f64 / 1024.0,
            at(0.75) as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        "",
        "",
    );
    Ok(())
}

async fn fresh_sqlite(label: &str) -> Result<(Store<SqliteBackend>, std::path::PathBuf), Failure> {
    let path = std::env::temp_dir().join(format!("herald-bench-{label}-{}.db", Uuid::now_v7()));
    let store = herald::sqlite(&format!("sqlite://{}", path.display())).await?;
    store.migrate().await?;
    Ok((store, path))
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

async fn fresh_postgres(url: &str) -> Result<(Store<PostgresBackend>, String), Failure> {
    let schema = format!("herald_bench_{}", Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(url).await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await?;
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .options([("search_path", schema.as_str())]);
    let store = herald::postgres_with(options, 16).await?;
    store.migrate().await?;
    Ok((store, schema))
}

async fn drop_postgres(url: &str, schema: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(url).await {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = Args::parse();
    if args.postgres_url.is_none() {
        args.postgres_url = std::env::var("HERALD_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty());
    }
    if args.side_by_side {
        let Some(url) = args.postgres_url.clone() else {
            return Err("--side-by-side needs --postgres-url or HERALD_TEST_POSTGRES_URL".into());
        };
        return side_by_side::run(&url, &args).await;
    }
    println!(
        "Herald benchmarks: {} cores, SQLite WAL + synchronous=FULL, PostgreSQL synchronous_commit \
         default (on); {} events per scenario; statistics: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.events,
        if args.analyze {
            "ANALYZE after each backlog is filled"
        } else {
            "as publishers leave them (--analyze to take them)"
        }
    );
    println!(
        "  {:<9} {:<52} {:>16} {:>16} {:>9}",
        "backend", "scenario", "Herald", "baseline", "ratio"
    );
    let mut report = Report::default();
    if args.nats_url.is_none() {
        args.nats_url = std::env::var("HERALD_TEST_NATS_URL")
            .ok()
            .filter(|url| !url.is_empty());
    }
    let sqlite = args.only.as_deref() != Some("postgres");
    let postgres = args.only.as_deref() != Some("sqlite");
    if args.relay_only {
        let Some(nats) = args.nats_url.clone() else {
            return Err("--relay-only needs --nats-url or HERALD_TEST_NATS_URL".into());
        };
        if sqlite {
            let (store, path) = fresh_sqlite("relay").await?;
            relay::run(store, &nats, &args, &mut report).await?;
            remove_sqlite(&path);
        }
        if let (Some(url), true) = (&args.postgres_url, postgres) {
            let (store, schema) = fresh_postgres(url).await?;
            relay::run(store, &nats, &args, &mut report).await?;
            drop_postgres(url, &schema).await;
        }
        report.print();
        return Ok(());
    }
    if args.aggregates_only {
        if sqlite {
            let (store, path) = fresh_sqlite("aggregates").await?;
            aggregates(store, &mut report).await?;
            remove_sqlite(&path);
        }
        if let (Some(url), true) = (&args.postgres_url, postgres) {
            let (store, schema) = fresh_postgres(url).await?;
            aggregates(store, &mut report).await?;
            drop_postgres(url, &schema).await;
        }
        report.print();
        return Ok(());
    }
    if sqlite {
        let (store, path) = fresh_sqlite("outbox").await?;
        let legacy = outbox(store, &args, &mut report).await?;
        remove_sqlite(&path);
        let (store, path) = fresh_sqlite("jobs").await?;
        jobs(store, &args, &mut report, legacy).await?;
        remove_sqlite(&path);
        let (store, path) = fresh_sqlite("aggregates").await?;
        aggregates(store, &mut report).await?;
        remove_sqlite(&path);
        if let Some(nats) = &args.nats_url {
            let (store, path) = fresh_sqlite("relay").await?;
            relay::run(store, nats, &args, &mut report).await?;
            remove_sqlite(&path);
        }
        if !args.skip_backlog {
            let (store, path) = fresh_sqlite("backlog").await?;
            backlog_memory(store, &args, &mut report).await?;
            remove_sqlite(&path);
        }
    }
    match (&args.postgres_url, postgres) {
        (Some(url), true) => {
            let (store, schema) = fresh_postgres(url).await?;
            let legacy = outbox(store, &args, &mut report).await?;
            drop_postgres(url, &schema).await;
            let (store, schema) = fresh_postgres(url).await?;
            jobs(store, &args, &mut report, legacy).await?;
            drop_postgres(url, &schema).await;
            let (store, schema) = fresh_postgres(url).await?;
            aggregates(store, &mut report).await?;
            drop_postgres(url, &schema).await;
            if let Some(nats) = &args.nats_url {
                let (store, schema) = fresh_postgres(url).await?;
                relay::run(store, nats, &args, &mut report).await?;
                drop_postgres(url, &schema).await;
            }
            if !args.skip_backlog {
                let (store, schema) = fresh_postgres(url).await?;
                backlog_memory(store, &args, &mut report).await?;
                drop_postgres(url, &schema).await;
            }
        }
        (None, true) => {
            println!("PostgreSQL skipped: pass --postgres-url or set HERALD_TEST_POSTGRES_URL")
        }
        _ => {}
    }
    report.print();
    Ok(())
}

/// A worker that runs the benchmark's no-op job.
fn noop_worker<B: Backend>(store: &Store<B>) -> Worker<B> {
    TypedEventBus::new(store.clone())
        .with_jobs(JobBindings::new().register::<NoopJob>())
        .worker()
}

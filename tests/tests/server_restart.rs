//! A PostgreSQL server stopped and started again under Herald's background loops: the drain,
//! the job worker, the `LISTEN` task and the projector must come back by themselves once the
//! server does, and nothing published before or after the outage may be lost.
//!
//! Each loop says so once per outage: a warning when it begins and a line when it ends, not
//! one per failed try.
//!
//! The test cannot restart the shared test server, so it runs a private one: a cluster of its
//! own made with `initdb` in a temporary directory, on a free port, started and stopped with
//! `pg_ctl`. It needs the directory of those programs in `HERALD_TEST_POSTGRES_BIN` (`.ci/run`
//! sets it, e.g. `/usr/lib/postgresql/15/bin`) and says plainly that it is skipped without.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::uuid::Uuid;
use herald::{Jobs, PostgresStore};
use integration_tests::domain::TypedEventBus;
use integration_tests::fixtures::{
    Folds, completed_runs, contact_created, count_deliveries_by_contact, quick_retries,
};
use integration_tests::jobs::{Probe, SyncContact};
use integration_tests::support::{POSTGRES_BIN_VAR, eventually};
use tracing_subscriber::layer::SubscriberExt;

/// Long enough that only `LISTEN` can wake the loops in time: a loop that lost its
/// notifications for good would miss every deadline below.
const NEVER: Duration = Duration::from_secs(3_600);

/// A PostgreSQL cluster of this test's own, stopped (immediately) when dropped.
struct PrivateServer {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
    /// PostgreSQL refuses to run as root: the cluster then belongs to `postgres`.
    as_postgres: bool,
}

impl PrivateServer {
    /// A new cluster, started; `None` (with a SKIPPED line) when no PostgreSQL binaries are named.
    fn start(test: &str) -> Option<Self> {
        let bin = match std::env::var(POSTGRES_BIN_VAR) {
            Ok(bin) if !bin.is_empty() => PathBuf::from(bin),
            _ => {
                eprintln!(
                    "SKIPPED {test}: set {POSTGRES_BIN_VAR} to the directory of initdb and pg_ctl \
                     (e.g. /usr/lib/postgresql/15/bin) to run it"
                );
                return None;
            }
        };
        let as_postgres = output(Command::new("id").arg("-u")).trim() == "0";
        let data = tempfile::Builder::new()
            .prefix("herald-restart-")
            .tempdir()
            .expect("temporary directory");
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(data.path()));
        }
        // A free port: the OS picks one, and it is given back just before the server binds it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            bin,
            data,
            port,
            as_postgres,
        };
        let cluster = server.cluster();
        server.program(
            "initdb",
            &[
                "-D",
                &cluster,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.start_again();
        Some(server)
    }

    fn cluster(&self) -> String {
        self.data.path().join("cluster").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.path().display()
        );
        let log = self.data.path().join("server.log").display().to_string();
        self.program(
            "pg_ctl",
            &[
                "-D",
                &self.cluster(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self, mode: &str) {
        self.program("pg_ctl", &["-D", &self.cluster(), "-m", mode, "-w", "stop"]);
    }

    /// Runs one of the server's programs, as the cluster's owner.
    fn program(&self, name: &str, args: &[&str]) {
        run(self.as_owner(name).args(args));
    }

    /// One of the server's programs, to be run as the cluster's owner.
    fn as_owner(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let cluster = self.cluster();
        // Already stopped is fine here; anything else is only noise at the end of a test.
        let _ = self
            .as_owner("pg_ctl")
            .args(["-D", &cluster, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(command: &mut Command) {
    let _ = output(command);
}

fn output(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The warnings and errors Herald logs, as `(task, scope, message)`.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() > tracing::Level::WARN || !metadata.target().starts_with("herald") {
            return;
        }
        #[derive(Default)]
        struct Fields(HashMap<&'static str, String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name(), format!("{value:?}"));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name(), value.to_owned());
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut field = |name| fields.0.remove(name).unwrap_or_default();
        let line = (field("task"), field("scope"), field("message"));
        self.0.lock().unwrap().push(line);
    }
}

async fn store(url: &str, max_connections: u32) -> PostgresStore {
    let options = url.parse().expect("valid URL");
    herald::postgres_with(options, max_connections)
        .await
        .expect("connect to the private server")
}

/// Publishes one event per contact, each in its own transaction, trying again while the
/// server is still coming back (a pooled connection from before the outage fails once).
async fn publish(bus: &TypedEventBus<herald::PostgresBackend>, contacts: &[Uuid]) {
    for contact in contacts {
        let event = contact_created(*contact);
        let mut tries = 0;
        loop {
            let attempt = async {
                let mut tx = bus.store().begin().await?;
                bus.publish(&mut tx, *contact, event.clone()).await?;
                bus.store().commit(tx).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            };
            match attempt.await {
                Ok(()) => break,
                Err(error) if tries < 50 => {
                    tries += 1;
                    eprintln!("publish failed ({error}); trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("publish still fails after the restart: {error}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_loop_comes_back_after_the_server_restarts() {
    let Some(server) = PrivateServer::start("postgres_every_loop_comes_back_after_the_server")
    else {
        return;
    };
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(warnings.clone()))
        .expect("the only subscriber of this binary");
    let url = server.url();
    let loops = store(&url, 6).await;
    loops.migrate().await.expect("migrate");
    let jobs = || Jobs::new().register::<SyncContact>();
    let bus = TypedEventBus::new(loops).with_jobs(jobs());
    // The producer has a pool of its own, as an application's request handlers would.
    let producer = TypedEventBus::new(store(&url, 2).await).with_jobs(jobs());
    let delivered = count_deliveries_by_contact(&bus);
    let quick = quick_retries();
    let drain = bus
        .drain()
        .lease(Duration::from_secs(2))
        .poll_interval(NEVER)
        .retry(quick)
        .spawn();
    let probe = Probe::default();
    let worker = bus
        .worker()
        .state(probe.clone())
        .poll_interval(NEVER)
        .retry(quick)
        .spawn();
    let folds = Folds::default();
    let projector = bus.projector(folds.clone());
    // Reads the same projection's checkpoint, while the spawned one owns its projector.
    let lag = bus.projector(Folds::default());
    let projecting = projector.spawn(NEVER);

    let all_arrive = |contacts: Vec<Uuid>, what: &'static str| {
        let (delivered, producer, lag) = (delivered.clone(), producer.clone(), &lag);
        async move {
            let deadline = Duration::from_secs(30);
            eventually(what, deadline, || async {
                let delivered = delivered.lock().unwrap();
                contacts
                    .iter()
                    .all(|contact| delivered.contains_key(contact))
            })
            .await;
            eventually("every triggered job completes", deadline, || async {
                completed_runs(producer.store()).await >= contacts.len()
            })
            .await;
            eventually("the projection catches up", deadline, || async {
                matches!(lag.lag().await, Ok(lag) if lag.behind == 0)
            })
            .await;
        }
    };

    let before: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    publish(&producer, &before).await;
    all_arrive(before.clone(), "every event before the outage is delivered").await;

    let logged_before = warnings.0.lock().unwrap().len();
    // The outage: every connection is cut and none can be made for a while.
    server.stop("fast");
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.start_again();

    let after: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    publish(&producer, &after).await;
    let everything: Vec<Uuid> = before.iter().chain(&after).copied().collect();
    all_arrive(
        everything.clone(),
        "every event after the outage is delivered",
    )
    .await;

    drain.shutdown().await;
    worker.shutdown().await;
    projecting.shutdown().await;
    let logged = warnings.0.lock().unwrap().clone();
    assert_eq!(logged_before, 0, "warnings before the outage: {logged:#?}");
    assert!(!logged.is_empty(), "the outage went unnoticed");
    let mut seen = std::collections::HashSet::new();
    for line in &logged {
        assert!(
            seen.insert(line),
            "logged more than once in one outage: {line:?}; all: {logged:#?}"
        );
    }
    let stats = producer.store().stats().await.expect("stats");
    assert_eq!(stats.pending_events, 0, "{stats:?}");
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
    assert!(
        *folds.0.lock().unwrap() >= everything.len() as u64,
        "the projection folded every event"
    );
}

//! The `herald` binary run as a person on call runs it, against a real database that an
//! application filled: SQLite always, PostgreSQL when `HERALD_TEST_POSTGRES_URL` names a server
//! (a schema per test).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald::serde_json::{self, Value};
use herald::uuid::Uuid;
use herald::{Backend, Envelope, Jobs, Publish, Store, TraceContext};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::StripePaymentReceived;
use integration_tests::fixtures::{contact_created, drain_until_idle, payment};
use integration_tests::jobs::SyncContact;
use integration_tests::support::PostgresSchema;

/// What one run of the binary printed and how it ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}", self.stdout))
    }

    #[track_caller]
    fn succeeded(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn herald(url: Option<&str>, args: &[&str], stdin: &str) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    let mut child = command.spawn().expect("run herald");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("answer");
    let output = child.wait_with_output().expect("herald ends");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// An application's day: two contacts created (each triggers a `sync_contact` run) and a
/// payment whose `ledger` subscriber fails until it is dead-lettered. Then the person on call
/// finds the dead letter, declines once, re-drives it, and sees it delivered; cancels and
/// retries runs; prunes.
async fn an_operator_finds_redrives_and_cleans_up<B: Backend>(store: Store<B>, url: String) {
    let url = Some(url.as_str());
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    bus.subscribe("ledger", move |_: Envelope<StripePaymentReceived>| {
        let healthy = flag.load(Ordering::SeqCst);
        async move {
            if healthy {
                Ok(())
            } else {
                Err("ledger unavailable".to_owned())
            }
        }
    });
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.unwrap();
    // Published in a request's trace (as its `traceparent` header gave it).
    let request_trace = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        None,
    )
    .unwrap();
    bus.publish_with(
        &mut tx,
        Publish::new(contact_created(first))
            .aggregate_id(first)
            .trace_context(request_trace),
    )
    .await
    .unwrap();
    bus.publish(&mut tx, second, contact_created(second))
        .await
        .unwrap();
    let paid = bus
        .publish_with(&mut tx, Publish::new(payment("cus_1")))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    drain_until_idle(&bus).await;

    let stats = herald(url, &["stats", "--json"], "").succeeded().json();
    let lanes = stats["lanes"].as_array().expect("lanes");
    let dead: u64 = lanes
        .iter()
        .map(|l| l["dead_letters"].as_u64().unwrap())
        .sum();
    assert_eq!(dead, 1, "{stats:#}");
    assert!(lanes.iter().all(|l| l["pending"] == 0), "{stats:#}");
    let sync = &stats["jobs"][0];
    assert_eq!(
        (sync["job"].as_str(), sync["due"].as_u64()),
        (Some("sync_contact"), Some(2)),
        "{stats:#}"
    );
    let human = herald(url, &["stats"], "").succeeded().stdout;
    assert!(
        human.contains("DEAD LETTERS") && human.contains("sync_contact"),
        "{human}"
    );

    let listed = herald(url, &["dead-letters", "list"], "")
        .succeeded()
        .stdout;
    assert!(
        listed.contains("stripe_payment_received")
            && listed.contains("ledger")
            && listed.contains("ledger unavailable"),
        "{listed}"
    );

    let unnamed = herald(url, &["dead-letters", "redrive"], "");
    assert_eq!(unnamed.code, 2, "{}", unnamed.stderr);
    assert!(unnamed.stderr.contains("--all"), "{}", unnamed.stderr);
    let declined = herald(
        url,
        &[
            "dead-letters",
            "redrive",
            "--type",
            "stripe_payment_received",
        ],
        "n\n",
    );
    assert_eq!(declined.code, 4, "{}", declined.stderr);
    assert!(
        declined.stderr.contains("Re-drive 1 dead letter(s)"),
        "{}",
        declined.stderr
    );
    assert_eq!(
        store.stats().await.unwrap().dead_letters,
        1,
        "nothing changed"
    );

    healthy.store(true, Ordering::SeqCst);
    let redriven = herald(
        url,
        &[
            "dead-letters",
            "redrive",
            "--type",
            "stripe_payment_received",
        ],
        "y\n",
    )
    .succeeded();
    assert!(
        redriven.stdout.contains("re-drove 1"),
        "{}",
        redriven.stdout
    );
    drain_until_idle(&bus).await;
    let shown = herald(url, &["events", "show", &paid.to_string(), "--json"], "")
        .succeeded()
        .json();
    assert_eq!(shown["event"]["status"], "processed", "{shown:#}");
    assert_eq!(shown["deliveries"], Value::Array(vec![]), "{shown:#}");
    assert_eq!(shown["payload"]["customer_id"], "cus_1");
    assert!(store.dead_letters(10).await.unwrap().is_empty());

    let contacts = herald(
        url,
        &["events", "list", "--type", "contact_created", "--json"],
        "",
    )
    .succeeded()
    .json();
    assert_eq!(contacts.as_array().map(Vec::len), Some(2), "{contacts:#}");
    assert_eq!(
        contacts[0]["aggregate_id"],
        second.to_string(),
        "newest first"
    );
    let one = herald(
        url,
        &["events", "show", contacts[1]["id"].as_str().unwrap()],
        "",
    )
    .succeeded()
    .stdout;
    assert!(
        one.contains("every subscriber has it") && one.contains("sync_contact"),
        "{one}"
    );
    assert!(
        one.contains("trace       4bf92f3577b34da6a3ce929d0e0e4736"),
        "the trace to look up: {one}"
    );

    let canceled = herald(
        url,
        &["jobs", "cancel", "--job", "sync_contact", "--yes", "--json"],
        "",
    )
    .succeeded()
    .json();
    assert_eq!(canceled["changed"], 2, "{canceled:#}");
    let runs = herald(url, &["jobs", "list", "--status", "canceled", "--json"], "")
        .succeeded()
        .json();
    let run = runs[0]["id"].as_str().expect("a canceled run").to_owned();
    herald(url, &["jobs", "retry", &run, "--yes"], "").succeeded();
    let detail = herald(url, &["jobs", "show", &run, "--json"], "")
        .succeeded()
        .json();
    assert_eq!(detail["run"]["status"], "pending", "{detail:#}");
    let refused = herald(url, &["jobs", "retry", "--status", "pending"], "");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot be retried"),
        "{}",
        refused.stderr
    );

    let missing = herald(url, &["events", "show", &Uuid::now_v7().to_string()], "");
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(missing.stderr.contains("no event"), "{}", missing.stderr);

    let pruned = herald(url, &["prune", "--older-than", "0s", "--yes", "--json"], "")
        .succeeded()
        .json();
    assert_eq!(pruned["events"], 3, "{pruned:#}");
    assert_eq!(
        pruned["runs"], 1,
        "the canceled run left canceled goes; the retried one is live: {pruned:#}"
    );
}

/// `events tail` prints what is there, then what commits while it follows.
async fn tail_follows_new_commits<B: Backend>(store: Store<B>, url: String) {
    let bus = TypedEventBus::new(store.clone());
    let publish = |contact: Uuid| {
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            let mut tx = store.begin().await.unwrap();
            bus.publish(&mut tx, contact, contact_created(contact))
                .await
                .unwrap();
            store.commit(tx).await.unwrap();
        }
    };
    let (before, after) = (Uuid::now_v7(), Uuid::now_v7());
    publish(before).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "events",
            "tail",
            "--from-start",
            "--count",
            "2",
            "--interval-ms",
            "20",
        ])
        .env("DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run herald");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("text");
    assert!(first.contains(&before.to_string()), "{first}");
    publish(after).await;
    let second = lines.next().expect("a line").expect("text");
    assert!(
        second.contains(&after.to_string()) && second.contains("contact_created"),
        "{second}"
    );
    assert!(child.wait().expect("herald ends").success());
}

/// On PostgreSQL a position is taken before its transaction commits: the first transaction to
/// publish can commit last. `events tail` follows commits, so it prints both events, the one at
/// the lower position included, instead of skipping it once it has printed the higher one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tail_prints_an_event_that_commits_after_a_later_position() {
    let Some(schema) = PostgresSchema::create("postgres_tail_out_of_order").await else {
        return;
    };
    let store = schema.store(5).await;
    let bus = TypedEventBus::new(store.clone());
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["events", "tail", "--count", "2", "--interval-ms", "20"])
        .env("DATABASE_URL", schema.url_with_search_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run herald");
    // The tail is following (an empty outbox) before anything is published.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (slow, quick) = (Uuid::now_v7(), Uuid::now_v7());
    let mut slow_tx = store.begin().await.unwrap();
    bus.publish(&mut slow_tx, slow, contact_created(slow))
        .await
        .unwrap();
    let mut quick_tx = store.begin().await.unwrap();
    bus.publish(&mut quick_tx, quick, contact_created(quick))
        .await
        .unwrap();
    store.commit(quick_tx).await.unwrap();
    // Several polls while only the later position is committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.commit(slow_tx).await.unwrap();

    // Read on a thread of its own, so that a tail that never prints its second line fails the
    // test (and is killed) instead of hanging it.
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 2 {
        match lines_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the tail printed {lines:?} and nothing more: an event was skipped");
            }
        }
    }
    assert!(child.wait().expect("herald ends").success());
    assert!(lines[0].contains(&slow.to_string()), "{lines:?}");
    assert!(lines[1].contains(&quick.to_string()), "{lines:?}");
    schema.drop().await;
}

macro_rules! on_sqlite_and_postgres {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("app.db").display());
                    let store = herald::sqlite(&url).await.unwrap();
                    store.migrate().await.unwrap();
                    super::$scenario(store, url).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(schema) = super::PostgresSchema::create(stringify!($scenario)).await
                    else {
                        return;
                    };
                    let store = schema.store(5).await;
                    super::$scenario(store, schema.url_with_search_path()).await;
                    schema.drop().await;
                }
            )*
        }
    };
}

on_sqlite_and_postgres!(
    an_operator_finds_redrives_and_cleans_up,
    tail_follows_new_commits
);

#[test]
fn without_a_database_it_says_how_to_name_one() {
    let ran = herald(None, &["stats"], "");
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("--database-url or set DATABASE_URL"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_missing_sqlite_file_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let ran = herald(
        Some(&format!("sqlite://{}", path.display())),
        &["stats"],
        "",
    );
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("no SQLite database at"),
        "{}",
        ran.stderr
    );
    assert!(!path.exists(), "no empty database is left behind");
}

#[test]
fn an_unmigrated_database_says_to_migrate_and_migrate_makes_it_usable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    herald(Some(&url), &["migrate"], "").succeeded();
    let fresh = herald(Some(&url), &["stats"], "").succeeded().stdout;
    assert!(
        fresh.contains("(nothing pending, owed or processed in the last minute)"),
        "{fresh}"
    );

    let empty = dir.path().join("empty.db");
    std::fs::File::create(&empty).unwrap();
    let ran = herald(
        Some(&format!("sqlite://{}", empty.display())),
        &["stats"],
        "",
    );
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("run `herald migrate`"),
        "{}",
        ran.stderr
    );
}

#[test]
fn unknown_databases_and_bad_values_are_refused_with_the_fix() {
    let ran = herald(Some("mysql://localhost/app"), &["stats"], "");
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("sqlite://path/app.db or postgres://"),
        "{}",
        ran.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    herald(Some(&url), &["migrate"], "").succeeded();
    let since = herald(Some(&url), &["events", "list", "--since", "yesterday"], "");
    assert_eq!(since.code, 2);
    assert!(since.stderr.contains("neither an age"), "{}", since.stderr);
    let scope = herald(Some(&url), &["jobs", "list", "--scope", "contact"], "");
    assert_eq!(scope.code, 2);
    assert!(
        scope.stderr.contains("<aggregate type>:<id>"),
        "{}",
        scope.stderr
    );
    let prune = herald(Some(&url), &["prune", "--older-than", "7"], "");
    assert_eq!(prune.code, 2);
    assert!(
        prune.stderr.contains("e.g. 90s, 15m, 2h, 7d"),
        "{}",
        prune.stderr
    );
    let unanswered = herald(Some(&url), &["prune", "--older-than", "7d"], "");
    assert_eq!(unanswered.code, 4, "no answer is no: {}", unanswered.stderr);
}

/// `herald dashboard` serves the database's gauges at /metrics for Prometheus to scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_the_databases_gauges_to_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let store = herald::sqlite(&url).await.unwrap();
    store.migrate().await.unwrap();
    let bus = TypedEventBus::new(store.clone());
    bus.subscribe("ledger", |_: Envelope<StripePaymentReceived>| async {
        Err::<(), _>("ledger unavailable".to_owned())
    });
    let mut tx = store.begin().await.unwrap();
    bus.publish_with(&mut tx, Publish::new(payment("cus_1")))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    drain_until_idle(&bus).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["dashboard", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run herald dashboard");
    let start = std::time::Instant::now();
    let body = loop {
        if let Ok(body) = http_get(port, "/metrics")
            && body.contains("herald_lane_dead_letters")
        {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no gauges at /metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        body.contains("herald_lane_dead_letters{lane=\"events_inbound\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("herald_lane_pending{lane=\"events_inbound\"} 0"),
        "{body}"
    );
}

/// A GET over a plain HTTP/1.0 connection: the response body, whatever the status.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

#[test]
fn a_dashboard_address_in_use_is_refused_with_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    herald(Some(&url), &["migrate"], "").succeeded();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let ran = herald(Some(&url), &["dashboard", "--listen", &address], "");
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("cannot listen on {address}")),
        "{}",
        ran.stderr
    );
}

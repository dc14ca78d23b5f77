//! The dashboard in a real headless browser (Debian's `chromium` through `chromium-driver`):
//! an application's delivery fails into a dead letter, a person opens the dashboard, follows
//! the links to it, clicks Re-drive, and sees the delivery succeed. Screenshots of each view go
//! to `HERALD_SCREENSHOTS_DIR` when it is set (README's come from `docs/dashboard/`).
//!
//! Needs `chromedriver` (`HERALD_TEST_CHROMEDRIVER`, else `chromedriver` on the PATH): without
//! it the test says SKIPPED and passes, except under `CI=true`, where it fails.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use herald::serde_json::json;
use herald::uuid::Uuid;
use herald::{Envelope, Jobs, Publish, RetryTiming};
use herald_admin::dashboard::{Dashboard, DashboardOptions};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::StripePaymentReceived;
use integration_tests::fixtures::{contact_created, payment};
use integration_tests::jobs::SyncContact;

const DEADLINE: Duration = Duration::from_secs(30);

/// The chromedriver to use, or `None` after saying the test is skipped.
fn chromedriver() -> Option<PathBuf> {
    let named = std::env::var_os("HERALD_TEST_CHROMEDRIVER").map(PathBuf::from);
    let found = named.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromedriver"))
                .find(|candidate| candidate.is_file())
        })
    });
    match found {
        Some(driver) if driver.is_file() => Some(driver),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "chromedriver is missing: install Debian's chromium and chromium-driver (.ci/run \
             does) or set HERALD_TEST_CHROMEDRIVER"
        ),
        _ => {
            eprintln!(
                "SKIPPED the dashboard's browser test: install chromium and chromium-driver \
                 (or set HERALD_TEST_CHROMEDRIVER) to run it"
            );
            None
        }
    }
}

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn start_driver(path: PathBuf) -> Driver {
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", path.display()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(start.elapsed() < DEADLINE, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,860"]
    });
    if let Ok(binary) = std::env::var("HERALD_TEST_CHROMIUM") {
        options["binary"] = json!(binary);
    }
    let mut capabilities = herald::serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(error) if start.elapsed() < DEADLINE => {
                eprintln!("waiting for chromedriver: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no browser session: {error}"),
        }
    }
}

/// Saves the page as `name.png` in `HERALD_SCREENSHOTS_DIR`, and checks it is a PNG either way.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    if let Some(dir) = std::env::var_os("HERALD_SCREENSHOTS_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }
}

/// Waits for the page whose title starts with `title`: a click that navigates may return
/// before the next page is there.
async fn wait_for_page(client: &Client, title: &str) {
    client
        .wait()
        .for_element(Locator::XPath(&format!("//h1[starts-with(., '{title}')]")))
        .await
        .unwrap_or_else(|error| panic!("no page titled {title}: {error}"));
}

/// The message of the page a submitted form leads to, once it is there (not the page it
/// leaves).
async fn flash_after_submit(client: &Client) -> String {
    client
        .wait()
        .for_element(Locator::Css("p.flash"))
        .await
        .expect("the page after the form, with its message")
        .text()
        .await
        .expect("the message")
}

async fn body_text(client: &Client) -> String {
    client
        .find(Locator::Css("main"))
        .await
        .expect("the page's main")
        .text()
        .await
        .expect("its text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_found_redriven_and_delivered_in_the_browser() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let (_dir, store) = integration_tests::support::sqlite().await;
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<SyncContact>());
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    bus.subscribe("ledger", move |_: Envelope<StripePaymentReceived>| {
        let healthy = flag.load(Ordering::SeqCst);
        async move {
            if healthy {
                Ok(())
            } else {
                Err("ledger unavailable: connection refused".to_owned())
            }
        }
    });
    let mut tx = store.begin().await.unwrap();
    for _ in 0..3 {
        let contact = Uuid::now_v7();
        bus.publish(&mut tx, contact, contact_created(contact))
            .await
            .unwrap();
    }
    let payment = payment("cus_1");
    let paid = bus
        .publish_with(&mut tx, Publish::new(payment))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let drain = bus
        .drain()
        .poll_interval(Duration::from_millis(50))
        .retry(RetryTiming {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        })
        .spawn();
    let start = Instant::now();
    while store.dead_letters(10).await.unwrap().is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "the delivery was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    let router = Dashboard::new(
        store.clone(),
        DashboardOptions::default().allow_actions(true),
    )
    .router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let driver = start_driver(driver_path).await;
    let client = browser(&driver).await;

    client.goto(&format!("{site}/")).await.unwrap();
    let overview = body_text(&client).await;
    assert!(
        overview.contains("events_inbound") && overview.contains("sync_contact"),
        "{overview}"
    );
    screenshot(&client, "overview").await;

    client
        .find(Locator::LinkText("Dead letters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_page(&client, "Dead letters").await;
    let letters = body_text(&client).await;
    assert!(
        letters.contains("stripe_payment_received") && letters.contains("ledger unavailable"),
        "{letters}"
    );
    screenshot(&client, "dead-letters").await;

    healthy.store(true, Ordering::SeqCst);
    client
        .find(Locator::Css("td form.inline button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = flash_after_submit(&client).await;
    assert!(flash.contains("Re-drove 1 dead letter(s)"), "{flash}");

    let event_page = format!("{site}/events/{paid}");
    let start = Instant::now();
    loop {
        client.goto(&event_page).await.unwrap();
        if body_text(&client)
            .await
            .contains("None: every subscriber has it.")
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the re-driven delivery never succeeded: {}",
            body_text(&client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&client, "event").await;

    client
        .find(Locator::LinkText("Jobs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_page(&client, "Job runs").await;
    let runs = body_text(&client).await;
    assert_eq!(runs.matches("sync_contact").count(), 3, "{runs}");
    screenshot(&client, "jobs").await;
    client
        .find(Locator::Css("td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_page(&client, "Run of").await;
    client
        .find(Locator::Css("form.inline button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = flash_after_submit(&client).await;
    assert!(flash.contains("Canceled 1 live run(s)"), "{flash}");
    let canceled = body_text(&client).await;
    assert!(canceled.contains("canceled"), "{canceled}");
    screenshot(&client, "run").await;

    client.close().await.unwrap();
    server.abort();
    drain.shutdown().await;
    assert!(store.dead_letters(10).await.unwrap().is_empty());
}

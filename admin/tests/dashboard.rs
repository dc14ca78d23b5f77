//! The dashboard's router called in-process on a SQLite store an application filled: what it
//! shows, what it escapes, and which POSTs it refuses (read-only, a missing or foreign CSRF
//! token, a cross-site request, a redirect out of the dashboard).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use herald::uuid::Uuid;
use herald::{Backend, Envelope, Publish, SqliteStore, Store};
use herald_admin::dashboard::{Dashboard, DashboardOptions};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::StripePaymentReceived;
use integration_tests::fixtures::{drain_until_idle, payment};
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

async fn call(router: &Router, request: Request<Body>) -> Page {
    let response = router.clone().oneshot(request).await.expect("a response");
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|value| value.to_str().expect("ASCII").to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("the body");
    Page {
        status,
        location,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    }
}

async fn get(router: &Router, path: &str) -> Page {
    call(router, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post(router: &Router, path: &str, form: &str, cross_site: bool) -> Page {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if cross_site {
        request = request.header("sec-fetch-site", "cross-site");
    }
    call(router, request.body(Body::from(form.to_owned())).unwrap()).await
}

/// The CSRF token the page's forms carry.
fn token(page: &Page) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.body.find(marker).expect("a form with a token") + marker.len();
    page.body[start..]
        .split('"')
        .next()
        .expect("the token")
        .to_owned()
}

/// A store holding one payment whose `ledger` subscriber was dead-lettered; the customer id is
/// markup, as a hostile webhook could send.
async fn store_with_a_dead_letter() -> (tempfile::TempDir, SqliteStore, Uuid) {
    let (dir, store) = integration_tests::support::sqlite().await;
    let bus = TypedEventBus::new(store.clone());
    bus.subscribe("ledger", |_: Envelope<StripePaymentReceived>| async {
        Err::<(), _>("ledger unavailable".to_owned())
    });
    let mut tx = store.begin().await.unwrap();
    let id = bus
        .publish_with(
            &mut tx,
            Publish::new(payment("<script>alert('owned')</script>")),
        )
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    drain_until_idle(&bus).await;
    assert_eq!(store.dead_letters(10).await.unwrap().len(), 1);
    (dir, store, id)
}

fn dashboard<B: Backend>(store: &Store<B>, options: DashboardOptions) -> Router {
    Dashboard::new(store.clone(), options).router()
}

#[tokio::test]
async fn a_read_only_dashboard_shows_everything_and_changes_nothing() {
    let (_dir, store, id) = store_with_a_dead_letter().await;
    let router = dashboard(&store, DashboardOptions::default());

    let overview = get(&router, "/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("read-only"), "{}", overview.body);
    assert!(
        overview.body.contains("events_inbound"),
        "{}",
        overview.body
    );
    let letters = get(&router, "/dead-letters").await;
    assert!(
        letters.body.contains("ledger unavailable"),
        "{}",
        letters.body
    );
    assert!(
        !letters.body.contains("Re-drive"),
        "no buttons when read-only"
    );

    let refused = post(
        &router,
        "/dead-letters/redrive",
        &format!("csrf=anything&event={id}"),
        false,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("--allow-actions"), "{}", refused.body);
    assert_eq!(store.dead_letters(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn text_from_events_is_shown_as_text() {
    let (_dir, store, id) = store_with_a_dead_letter().await;
    let page = get(
        &dashboard(&store, DashboardOptions::default()),
        &format!("/events/{id}"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(&#39;owned&#39;)"),
        "{}",
        page.body
    );
    let missing = get(
        &dashboard(&store, DashboardOptions::default()),
        &format!("/events/{}", Uuid::now_v7()),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("may have been pruned"),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn actions_need_this_dashboards_token_and_a_same_site_request() {
    let (_dir, store, id) = store_with_a_dead_letter().await;
    let router = dashboard(&store, DashboardOptions::default().allow_actions(true));
    let page = get(&router, "/dead-letters").await;
    let token = token(&page);

    for (form, cross_site) in [
        (format!("event={id}&subscriber=ledger"), false),
        (format!("csrf=forged&event={id}&subscriber=ledger"), false),
        (format!("csrf={token}&event={id}&subscriber=ledger"), true),
    ] {
        let refused = post(&router, "/dead-letters/redrive", &form, cross_site).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form}");
        assert!(refused.body.contains("form token"), "{}", refused.body);
    }
    let unnamed = post(
        &router,
        "/dead-letters/redrive",
        &format!("csrf={token}"),
        false,
    )
    .await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        store.dead_letters(10).await.unwrap().len(),
        1,
        "nothing changed"
    );

    let done = post(
        &router,
        "/dead-letters/redrive",
        &format!("csrf={token}&event={id}&subscriber=ledger&back=//elsewhere.example"),
        false,
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let location = done.location.expect("a redirect");
    assert!(
        location.starts_with("/dead-letters?flash=Re-drove%201"),
        "{location}: never out of the dashboard"
    );
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    let after = get(&router, &location).await;
    assert!(
        after.body.contains("Re-drove 1 dead letter(s)"),
        "{}",
        after.body
    );
}

#[tokio::test]
async fn a_nested_dashboard_links_and_redirects_inside_its_mount() {
    let (_dir, store, id) = store_with_a_dead_letter().await;
    let options = DashboardOptions::default()
        .allow_actions(true)
        .mounted_at("/ops/");
    let app = Router::new().nest("/ops", dashboard(&store, options));
    let page = get(&app, "/ops/dead-letters").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/ops/events\""), "{}", page.body);
    assert!(
        page.body.contains("action=\"/ops/dead-letters/redrive\""),
        "{}",
        page.body
    );
    let done = post(
        &app,
        "/ops/dead-letters/redrive",
        &format!("csrf={}&event={id}&back=/events/{id}", token(&page)),
        false,
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(
        done.location
            .as_deref()
            .is_some_and(|location| location.starts_with(&format!("/ops/events/{id}?flash="))),
        "{:?}",
        done.location
    );
}

#[tokio::test]
async fn job_runs_are_narrowed_to_a_tenant() {
    use herald::Start;
    use integration_tests::jobs::{ContactToSync, SyncContact};
    let (_dir, store) = integration_tests::support::sqlite().await;
    let mut tx = store.begin().await.unwrap();
    for tenant in ["acme", "globex"] {
        let input = ContactToSync {
            contact_id: Uuid::now_v7(),
        };
        store
            .jobs()
            .start_with::<SyncContact>(&mut tx, Start::new(input).tenant(tenant))
            .await
            .unwrap();
    }
    store.commit(tx).await.unwrap();
    let jobs = store.jobs();
    let mut ids = Vec::new();
    for tenant in ["acme", "globex"] {
        let filter = herald::ops::RunFilter::default().tenant(tenant);
        ids.push(jobs.list(&filter).await.unwrap()[0].id.to_string());
    }
    let (acme, globex) = (&ids[0], &ids[1]);
    let router = dashboard(&store, DashboardOptions::default());
    let page = get(&router, "/jobs?tenant=acme&status=&job=").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(acme.as_str()), "{}", page.body);
    assert!(!page.body.contains(globex.as_str()), "{}", page.body);
    assert!(
        page.body.contains("name=\"tenant\" value=\"acme\""),
        "the filter is kept"
    );
}

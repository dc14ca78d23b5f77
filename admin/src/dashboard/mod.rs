//! The web dashboard: the views of `herald stats`, events, dead letters and job runs as
//! server-rendered pages that work without JavaScript, and — only when allowed — re-drive,
//! retry and cancel as form POSTs protected against cross-site requests.
//!
//! ```no_run
//! # async fn mount(store: herald::SqliteStore) {
//! use herald_admin::dashboard::{Dashboard, DashboardOptions};
//! // Behind the application's own authentication, under /ops:
//! let ops = Dashboard::new(store, DashboardOptions::default().mounted_at("/ops")).router();
//! let app: axum::Router = axum::Router::new().nest("/ops", ops);
//! # }
//! ```

mod actions;
mod html;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use herald::{Backend, Store, StoreError};

/// How the dashboard is served.
#[derive(Debug, Clone, Default)]
pub struct DashboardOptions {
    allow_actions: bool,
    mount_path: String,
}

impl DashboardOptions {
    /// Shows the re-drive, retry and cancel buttons and accepts their POSTs. Off by default: a
    /// dashboard is read-only unless whoever serves it decides otherwise.
    pub fn allow_actions(mut self, allow: bool) -> Self {
        self.allow_actions = allow;
        self
    }

    /// The path the router is nested under (`/ops`), so that its links and redirects point
    /// back into it.
    pub fn mounted_at(mut self, path: &str) -> Self {
        self.mount_path = path.trim_end_matches('/').to_owned();
        self
    }
}

/// The dashboard over one store.
pub struct Dashboard<B: Backend> {
    store: Store<B>,
    options: DashboardOptions,
    /// The token every action form carries: another site's page cannot read it (the same-origin
    /// policy), so a POST with it came from a page of this dashboard.
    csrf_token: String,
}

impl<B: Backend> Dashboard<B> {
    /// A dashboard over `store`, with a fresh CSRF token.
    pub fn new(store: Store<B>, options: DashboardOptions) -> Self {
        Self {
            store,
            options,
            csrf_token: herald::uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The routes, ready to serve or to nest in an application's router.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(pages::overview::<B>))
            .route("/events", get(pages::events::<B>))
            .route("/events/{id}", get(pages::event::<B>))
            .route("/dead-letters", get(pages::dead_letters::<B>))
            .route("/dead-letters/redrive", post(actions::redrive::<B>))
            .route("/jobs", get(pages::runs::<B>))
            .route("/jobs/{id}", get(pages::run::<B>))
            .route("/jobs/{id}/retry", post(actions::retry::<B>))
            .route("/jobs/{id}/cancel", post(actions::cancel::<B>))
            .with_state(Arc::new(self))
    }

    fn base(&self) -> &str {
        &self.options.mount_path
    }

    fn page(&self, title: &str, flash: Option<&str>, body: html::Markup) -> Response {
        Html(html::page(
            self.base(),
            title,
            flash,
            !self.options.allow_actions,
            body,
        ))
        .into_response()
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let body = html::Markup::raw(format!("<p>{}</p>", html::text(message).into_string()));
        let mut response = self.page(status.canonical_reason().unwrap_or("Error"), None, body);
        *response.status_mut() = status;
        response
    }

    fn store_error(&self, error: StoreError) -> Response {
        self.error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
    }

    /// Why a POST may not act, as the page to answer with: actions are off, the form's token
    /// does not match, or the browser says the request came from another site.
    fn refusal(&self, headers: &HeaderMap, token: &str) -> Option<Response> {
        if !self.options.allow_actions {
            return Some(self.error(
                StatusCode::FORBIDDEN,
                "This dashboard is read-only: start it with `herald dashboard --allow-actions` \
                 (or DashboardOptions::allow_actions) to re-drive, retry and cancel.",
            ));
        }
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|site| site != "same-origin" && site != "none");
        if cross_site || !constant_time_eq(token.as_bytes(), self.csrf_token.as_bytes()) {
            return Some(self.error(
                StatusCode::FORBIDDEN,
                "This action did not come from a page of this dashboard (its form token is \
                 missing or stale): reload the page and try again.",
            ));
        }
        None
    }
}

/// Compares without stopping at the first difference, so that timing does not reveal how much
/// of a guessed token was right.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (l, r)| difference | (l ^ r))
            == 0
}

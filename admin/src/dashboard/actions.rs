//! The POSTs of the action buttons. Each answers with a redirect (303) to the page it came
//! from, which says what happened, so that reloading that page does not repeat the action.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::ops::Redrive;
use herald::{Backend, uuid::Uuid};
use serde::Deserialize;

use super::Dashboard;
use super::html::query_value;

#[derive(Deserialize)]
pub(super) struct RedriveForm {
    #[serde(default)]
    csrf: String,
    event: Option<Uuid>,
    subscriber: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    tenant: Option<String>,
    /// Set by the "re-drive every dead letter" button: without it a form must name some.
    all: Option<String>,
    back: Option<String>,
}

pub(super) async fn redrive<B: Backend>(
    State(dashboard): State<Arc<Dashboard<B>>>,
    headers: HeaderMap,
    Form(form): Form<RedriveForm>,
) -> Response {
    if let Some(refused) = dashboard.refusal(&headers, &form.csrf) {
        return refused;
    }
    let nonempty = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
    let which = Redrive {
        event_id: form.event,
        subscriber: nonempty(form.subscriber),
        event_type: nonempty(form.event_type),
        tenant: nonempty(form.tenant),
    };
    if !which.is_narrowed() && form.all.is_none() {
        return dashboard.error(
            StatusCode::BAD_REQUEST,
            "Say which dead letters to re-drive (an event, a subscriber or a type), or use the \
             button that re-drives them all.",
        );
    }
    match dashboard.store.redrive(&which).await {
        Ok(count) => back_to(
            &dashboard,
            form.back.as_deref(),
            "/dead-letters",
            &format!("Re-drove {count} dead letter(s): a running drain retries them now."),
        ),
        Err(error) => dashboard.store_error(error),
    }
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn retry<B: Backend>(
    State(dashboard): State<Arc<Dashboard<B>>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = dashboard.refusal(&headers, &form.csrf) {
        return refused;
    }
    match dashboard.store.jobs().retry(id).await {
        Ok(retried) => {
            let said = if retried {
                "Retried: the run is pending with a fresh set of attempts."
            } else {
                "Not retried: only a failed, timed-out or canceled run can be."
            };
            back_to(&dashboard, None, &format!("/jobs/{id}"), said)
        }
        Err(error) => dashboard.store_error(error),
    }
}

pub(super) async fn cancel<B: Backend>(
    State(dashboard): State<Arc<Dashboard<B>>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = dashboard.refusal(&headers, &form.csrf) {
        return refused;
    }
    match dashboard.store.jobs().cancel(id).await {
        Ok(canceled) => back_to(
            &dashboard,
            None,
            &format!("/jobs/{id}"),
            &format!("Canceled {canceled} live run(s): this one and the live runs below it."),
        ),
        Err(error) => dashboard.store_error(error),
    }
}

/// A 303 to `back` (a path inside the dashboard, checked so that a form cannot send the browser
/// elsewhere) or `default`, with `flash` for the page to show.
fn back_to<B: Backend>(
    dashboard: &Dashboard<B>,
    back: Option<&str>,
    default: &str,
    flash: &str,
) -> Response {
    let path = back
        .filter(|back| back.starts_with('/') && !back.starts_with("//") && !back.contains('\\'))
        .unwrap_or(default);
    let separator = if path.contains('?') { '&' } else { '?' };
    let location = format!(
        "{}{path}{separator}flash={}",
        dashboard.base(),
        query_value(flash)
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

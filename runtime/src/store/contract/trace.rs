//! The trace context a row is stored with comes back with it on every path that reads it: the
//! first claim, the retry lane's claim, a run's claim and the operators' views.

use super::{at, claim, event, insert_events, insert_runs, on_every_backend, run, t0};
use crate::store::{Backend, DeliveryState, Lane, NewDelivery, NewEvent, NewRun, Store};
use crate::trace::TraceContext;

fn context(span_id: &str, tracestate: Option<&str>) -> TraceContext {
    TraceContext::parse(
        &format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span_id}-01"),
        tracestate,
    )
    .expect("a valid traceparent")
}

async fn an_events_trace_context_is_read_back_by_every_claim<B: Backend>(store: Store<B>) {
    let traced = context(
        "00f067aa0ba902b7",
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
    let with_trace = NewEvent {
        trace: Some(traced.clone()),
        ..event(Some("a"))
    };
    let without = event(Some("b"));
    insert_events(&store, &[with_trace.clone(), without.clone()]).await;
    let lane = Lane::Pool("events_change".to_owned());
    let claimed = store
        .backend()
        .claim_events(&lane, None, claim("w1", t0()))
        .await
        .expect("claim events");
    let traces: Vec<_> = claimed
        .iter()
        .map(|event| (event.id, event.trace.clone()))
        .collect();
    assert_eq!(
        traces,
        vec![(with_trace.id, Some(traced.clone())), (without.id, None)]
    );

    let owed = NewDelivery {
        event_id: claimed[0].id,
        event_position: claimed[0].position,
        subscriber: "mailer".to_owned(),
        pool: claimed[0].pool.clone(),
        aggregate_type: claimed[0].aggregate_type.clone(),
        aggregate_id: claimed[0].aggregate_id.clone(),
        state: DeliveryState::Retry {
            attempts: 1,
            at: at(1),
            last_error: None,
        },
    };
    let positions: Vec<i64> = claimed.iter().map(|event| event.position).collect();
    store
        .backend()
        .complete_events("w1", &positions, &[owed], t0())
        .await
        .expect("complete events");
    let retried = store
        .backend()
        .claim_deliveries(&lane, claim("r1", at(1)))
        .await
        .expect("claim retries");
    assert_eq!(retried.len(), 1);
    assert_eq!(
        retried[0].event.trace.as_ref(),
        Some(&traced),
        "the retry lane reads it too"
    );

    let detail = store
        .event(with_trace.id)
        .await
        .expect("event")
        .expect("the event exists");
    assert_eq!(detail.event.trace, Some(traced));
}

async fn a_runs_trace_context_is_read_back_by_its_claim<B: Backend>(store: Store<B>) {
    let traced = context("00f067aa0ba902b8", None);
    let with_trace = NewRun {
        trace: Some(traced.clone()),
        ..run("j", t0())
    };
    let without = run("j", t0());
    insert_runs(&store, &[with_trace.clone(), without.clone()]).await;
    let mut claimed = store
        .backend()
        .claim_runs("batch", &["j"], claim("w1", t0()))
        .await
        .expect("claim runs");
    claimed.sort_by_key(|run| run.id != with_trace.id);
    let traces: Vec<_> = claimed
        .iter()
        .map(|run| (run.id, run.trace.clone()))
        .collect();
    assert_eq!(
        traces,
        vec![(with_trace.id, Some(traced.clone())), (without.id, None)]
    );
    let info = store
        .backend()
        .get_run(with_trace.id)
        .await
        .expect("get run")
        .expect("the run exists");
    assert_eq!(info.trace, Some(traced));
}

on_every_backend!(
    an_events_trace_context_is_read_back_by_every_claim,
    a_runs_trace_context_is_read_back_by_its_claim,
);

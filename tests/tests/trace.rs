//! Trace context through the outbox, read back from OpenTelemetry's in-memory exporter: one
//! trace runs from the request that published, through its commit, the subscriber, the job the
//! event triggered and the event that job published, to that event's subscriber — the
//! deliveries and the job run in other tasks, after the request's span has ended, from the
//! `traceparent` stored with each row.
//!
//! One test in its own binary: the tracing subscriber is global, and nothing else runs beside it.

use std::collections::HashMap;

use herald::uuid::Uuid;
use herald::{Envelope, JobContext, JobError, Jobs, SqliteBackend, job_handler};
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::events::{ContactCreated, ContactUpdated};
use integration_tests::fixtures::{contact_created, drain_until_idle};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContactToEnrich {
    contact_id: Uuid,
}

impl From<&ContactCreated> for ContactToEnrich {
    fn from(event: &ContactCreated) -> Self {
        Self {
            contact_id: event.contact_id,
        }
    }
}

/// A job that publishes an event of its own, as enrichment jobs do.
#[job_handler(triggers = [ContactCreated])]
async fn enrich_contact(ctx: JobContext, input: ContactToEnrich) -> Result<(), JobError> {
    let bus = ctx.state::<TypedEventBus<SqliteBackend>>()?;
    let mut tx = bus.store().begin().await.map_err(JobError::msg)?;
    let enriched = ContactUpdated {
        contact_id: input.contact_id,
        email: Some("ada@example.com".to_owned()),
        name: None,
        tags: vec!["enriched".to_owned()],
        updated_by: Uuid::from_u128(7),
    };
    bus.publish(&mut tx, input.contact_id, enriched)
        .await
        .map_err(JobError::msg)?;
    bus.store().commit(tx).await.map_err(JobError::msg)?;
    Ok(())
}

/// The finished spans by name; a name that appears twice is a test mistake.
fn by_name(spans: &[SpanData]) -> HashMap<String, Vec<&SpanData>> {
    let mut named: HashMap<String, Vec<&SpanData>> = HashMap::new();
    for span in spans {
        named.entry(span.name.to_string()).or_default().push(span);
    }
    named
}

/// The one finished span named `name` whose attribute `key` is `value`.
fn span<'s>(
    named: &HashMap<String, Vec<&'s SpanData>>,
    name: &str,
    key: &str,
    value: &str,
) -> &'s SpanData {
    let matching: Vec<_> = named
        .get(name)
        .into_iter()
        .flatten()
        .filter(|span| {
            span.attributes
                .iter()
                .any(|attribute| attribute.key.as_str() == key && attribute.value.as_str() == value)
        })
        .collect();
    match matching.as_slice() {
        [one] => one,
        other => panic!("{} spans `{name}` with {key} = {value}", other.len()),
    }
}

fn parent(span: &SpanData) -> SpanId {
    span.parent_span_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_through_subscribers_and_jobs() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("herald-test")));
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

    let (_dir, store) = integration_tests::support::sqlite().await;
    let bus = TypedEventBus::new(store.clone()).with_jobs(Jobs::new().register::<EnrichContact>());
    bus.subscribe("welcome_mail", |_: Envelope<ContactCreated>| async {
        Ok::<_, String>(())
    });
    bus.subscribe("search_index", |_: Envelope<ContactUpdated>| async {
        Ok::<_, String>(())
    });

    let contact = Uuid::now_v7();
    let request = tracing::info_span!("http.request", route = "POST /contacts");
    let created = async {
        let mut tx = store.begin().await.unwrap();
        let id = bus
            .publish(&mut tx, contact, contact_created(contact))
            .await
            .unwrap();
        store.commit(tx).await.unwrap();
        id
    }
    .instrument(request)
    .await;

    // Outside any span, after the request ended: what links them is the stored context.
    drain_until_idle(&bus).await;
    let worker = bus.worker().state(bus.clone());
    let jobs = worker.run_until_idle().await.unwrap();
    assert_eq!(jobs.completed, 1, "{jobs:?}");
    drain_until_idle(&bus).await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let named = by_name(&spans);
    let request = named["http.request"][0];
    let trace_id = request.span_context.trace_id();
    let publish = span(&named, "herald.publish", "event.type", "contact_created");
    let welcome = span(&named, "herald.deliver", "subscriber", "welcome_mail");
    let job = span(&named, "herald.job", "job", "enrich_contact");
    let job_publish = span(&named, "herald.publish", "event.type", "contact_updated");
    let indexed = span(&named, "herald.deliver", "subscriber", "search_index");

    assert_eq!(parent(request), SpanId::INVALID, "the request is the root");
    assert_eq!(parent(publish), request.span_context.span_id());
    // The subscriber and the triggered job, run later by the drain and the worker, are the
    // publish's children...
    assert_eq!(parent(welcome), publish.span_context.span_id());
    assert_eq!(parent(job), publish.span_context.span_id());
    // ... and the job's own event continues the same trace through its subscriber.
    assert_eq!(parent(job_publish), job.span_context.span_id());
    assert_eq!(parent(indexed), job_publish.span_context.span_id());
    for span in [publish, welcome, job, job_publish, indexed] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert!(
        welcome.parent_span_is_remote,
        "restored from the stored context"
    );

    // The operator's view shows the trace an event belongs to.
    let stored = store.event(created).await.unwrap().expect("the event");
    let trace = stored.event.trace.expect("the stored trace context");
    assert_eq!(trace.trace_id(), trace_id.to_string());
    assert_eq!(trace.span_id(), publish.span_context.span_id().to_string());
    assert!(trace.sampled());
    let [run] = stored.runs.as_slice() else {
        panic!("one triggered run: {:?}", stored.runs);
    };
    assert_eq!(
        run.trace.as_ref().map(|trace| trace.trace_id().to_owned()),
        Some(trace_id.to_string())
    );

    // Published outside any span: the publish span starts a trace of its own, which its
    // deliveries and jobs then join; it is not mistaken for the request's.
    let mut tx = store.begin().await.unwrap();
    let unrelated = bus
        .publish(&mut tx, contact, contact_created(Uuid::now_v7()))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    let unrelated = store.event(unrelated).await.unwrap().expect("the event");
    let own_trace = unrelated.event.trace.expect("the publish span's own trace");
    assert_ne!(own_trace.trace_id(), trace_id.to_string());
}

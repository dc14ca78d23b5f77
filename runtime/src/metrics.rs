//! What Herald records through the [`metrics`](https://docs.rs/metrics) facade: every name and
//! label in one place. Nothing is recorded until the application installs a recorder (for
//! example `metrics-exporter-prometheus`); without one each call is a no-op.
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `herald_events_published_total` | counter | `type` | events stored by a publish (a duplicate id stores nothing and counts nothing) |
//! | `herald_deliveries_total` | counter | `type`, `subscriber`, `outcome` (`delivered`, `retry`, `dead_letter`) | delivery attempts and how they ended |
//! | `herald_delivery_latency_seconds` | histogram | `type` | from an event's storing to the end of its first successful delivery |
//! | `herald_drain_batch_size` | histogram | `lane` | events per claimed batch |
//! | `herald_drain_claim_lag_seconds` | histogram | `lane` | age of the oldest event of each batch when it was claimed |
//! | `herald_jobs_enqueued_total` | counter | `job` | runs enqueued (by hand, a trigger, a decision or a parent) |
//! | `herald_jobs_started_total` | counter | `job` | attempts started |
//! | `herald_jobs_finished_total` | counter | `job`, `outcome` (`completed`, `retry`, `failed`, `timed_out`) | attempts ended |
//! | `herald_job_duration_seconds` | histogram | `job`, `outcome` | how long an attempt ran |
//! | `herald_jobs_rescued_total` | counter | `outcome` (`retried`, `failed`) | runs whose lease expired (their worker died or stalled), put back or failed by a rescuer |
//! | `herald_lane_pending` / `herald_lane_lag_seconds` / `herald_lane_retrying` / `herald_lane_dead_letters` | gauges | `lane` | what [`crate::Store::lane_stats`] reads, set by [`crate::Store::report_metrics`] |
//! | `herald_jobs_due` / `herald_jobs_scheduled` / `herald_jobs_running` | gauges | `pool`, `job` | what [`crate::JobClient::stats`] reads, likewise |
//! | `herald_projection_behind` | gauge | `projection` | what [`crate::Store::projections`] reads, likewise |

use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};

use crate::ops::{JobStats, LaneStats, ProjectionStatus};

pub(crate) fn published(event_type: &'static str, count: u64) {
    counter!("herald_events_published_total", "type" => event_type).increment(count);
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery {
    Delivered,
    Retry,
    DeadLetter,
}

pub(crate) fn delivery(event_type: &str, subscriber: &str, outcome: Delivery) {
    let outcome = match outcome {
        Delivery::Delivered => "delivered",
        Delivery::Retry => "retry",
        Delivery::DeadLetter => "dead_letter",
    };
    counter!(
        "herald_deliveries_total",
        "type" => event_type.to_owned(),
        "subscriber" => subscriber.to_owned(),
        "outcome" => outcome,
    )
    .increment(1);
}

pub(crate) fn delivery_latency(event_type: &str, recorded_at: DateTime<Utc>, now: DateTime<Utc>) {
    histogram!("herald_delivery_latency_seconds", "type" => event_type.to_owned())
        .record(seconds_since(recorded_at, now));
}

pub(crate) fn drain_batch(
    lane: &str,
    size: usize,
    oldest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    histogram!("herald_drain_batch_size", "lane" => lane.to_owned()).record(size as f64);
    if let Some(oldest) = oldest {
        histogram!("herald_drain_claim_lag_seconds", "lane" => lane.to_owned())
            .record(seconds_since(oldest, now));
    }
}

/// Counts the runs of `runs` that `ids` (what the insert returned, in order) shows as new: a
/// run that collapsed onto a live one (dedupe, a child spawned before) enqueued nothing.
pub(crate) fn runs_enqueued(runs: &[crate::store::NewRun], ids: &[uuid::Uuid]) {
    for (run, id) in runs.iter().zip(ids) {
        if run.id == *id {
            counter!("herald_jobs_enqueued_total", "job" => run.job).increment(1);
        }
    }
}

pub(crate) fn job_started(job: &str) {
    counter!("herald_jobs_started_total", "job" => job.to_owned()).increment(1);
}

pub(crate) fn job_finished(job: &str, outcome: &'static str, ran: Duration) {
    counter!("herald_jobs_finished_total", "job" => job.to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!("herald_job_duration_seconds", "job" => job.to_owned(), "outcome" => outcome)
        .record(ran.as_secs_f64());
}

pub(crate) fn runs_rescued(retried: u64, failed: u64) {
    counter!("herald_jobs_rescued_total", "outcome" => "retried").increment(retried);
    counter!("herald_jobs_rescued_total", "outcome" => "failed").increment(failed);
}

/// Sets the gauges of one reading of the operations views.
pub(crate) fn report(
    lanes: &[LaneStats],
    jobs: &[JobStats],
    projections: &[ProjectionStatus],
    now: DateTime<Utc>,
) {
    for lane in lanes {
        let name = lane.lane.clone();
        gauge!("herald_lane_pending", "lane" => name.clone()).set(lane.pending as f64);
        gauge!("herald_lane_lag_seconds", "lane" => name.clone()).set(lane.lag(now).as_secs_f64());
        gauge!("herald_lane_retrying", "lane" => name.clone()).set(lane.retrying as f64);
        gauge!("herald_lane_dead_letters", "lane" => name).set(lane.dead_letters as f64);
    }
    for job in jobs {
        let labels = [("pool", job.pool.clone()), ("job", job.job.clone())];
        gauge!("herald_jobs_due", &labels).set(job.due as f64);
        gauge!("herald_jobs_scheduled", &labels).set(job.scheduled as f64);
        gauge!("herald_jobs_running", &labels).set(job.running as f64);
    }
    for projection in projections {
        gauge!("herald_projection_behind", "projection" => projection.name.clone())
            .set(projection.lag.behind as f64);
    }
}

impl<B: crate::Backend> crate::Store<B> {
    /// Sets the gauges (backlog, lag, retries and dead letters per lane; due, scheduled and
    /// running runs per job; how far each projection is behind) from the operations views
    /// every `every`, until the handle is shut down. One process per database is enough: the
    /// gauges describe the database, not the process.
    pub fn report_metrics(&self, every: Duration) -> crate::ServiceHandle {
        let store = self.clone();
        crate::ServiceHandle::spawn("metrics reporter", move |mut stopped| async move {
            loop {
                match read_views(&store).await {
                    Ok((lanes, jobs, projections)) => {
                        report(&lanes, &jobs, &projections, store.now());
                    }
                    Err(error) => tracing::warn!(%error, "reading the metrics gauges failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        })
    }
}

async fn read_views<B: crate::Backend>(
    store: &crate::Store<B>,
) -> Result<(Vec<LaneStats>, Vec<JobStats>, Vec<ProjectionStatus>), crate::StoreError> {
    Ok((
        store.lane_stats().await?,
        store.jobs().stats().await?,
        store.projections().await?,
    ))
}

fn seconds_since(then: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - then).to_std().unwrap_or_default().as_secs_f64()
}

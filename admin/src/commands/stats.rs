//! `herald stats`: the lanes, the jobs and the projections on one screen.

use std::io::Write;

use chrono::{DateTime, Utc};
use herald::ops::{JobStats, LaneStats, OutboxStats, ProjectionStatus};
use herald::{Backend, Store};
use serde::Serialize;

use crate::Failure;
use crate::render::{Output, Table};
use herald_admin::format::{duration, or_dash, relative};

#[derive(Serialize)]
struct Stats {
    at: DateTime<Utc>,
    totals: OutboxStats,
    lanes: Vec<Lane>,
    jobs: Vec<JobStats>,
    projections: Vec<ProjectionStatus>,
}

/// A lane with its lag worked out, so that a script need not do the arithmetic.
#[derive(Serialize)]
struct Lane {
    #[serde(flatten)]
    stats: LaneStats,
    lag_seconds: f64,
}

pub(super) async fn stats<B: Backend>(store: &Store<B>, output: &Output) -> Result<(), Failure> {
    let at = store.now();
    let stats = Stats {
        at,
        totals: store.stats().await?,
        lanes: store
            .lane_stats()
            .await?
            .into_iter()
            .map(|stats| Lane {
                lag_seconds: stats.lag(at).as_secs_f64(),
                stats,
            })
            .collect(),
        jobs: store.jobs().stats().await?,
        projections: store.projections().await?,
    };
    output.print(&stats, |out| human(&stats, out))?;
    Ok(())
}

fn human(stats: &Stats, out: &mut dyn Write) -> std::io::Result<()> {
    let at = stats.at;
    writeln!(out, "Lanes")?;
    let mut lanes = Table::new(&[
        "LANE",
        "PENDING#",
        "LAG#",
        "PROCESSED/MIN#",
        "RETRYING#",
        "DEAD LETTERS#",
    ]);
    for lane in &stats.lanes {
        let lane = &lane.stats;
        lanes.row(vec![
            lane.lane.clone(),
            lane.pending.to_string(),
            duration(lane.lag(at)),
            lane.processed_last_minute.to_string(),
            lane.retrying.to_string(),
            lane.dead_letters.to_string(),
        ]);
    }
    write_or_none(
        &lanes,
        "nothing pending, owed or processed in the last minute",
        out,
    )?;

    writeln!(out, "\nJobs")?;
    let mut jobs = Table::new(&[
        "POOL",
        "JOB",
        "DUE#",
        "SCHEDULED#",
        "RUNNING#",
        "COMPLETED#",
        "FAILED#",
        "OLDEST DUE",
        "NEXT LEASE EXPIRY",
    ]);
    for job in &stats.jobs {
        jobs.row(vec![
            job.pool.clone(),
            job.job.clone(),
            job.due.to_string(),
            job.scheduled.to_string(),
            job.running.to_string(),
            job.completed.to_string(),
            job.failed.to_string(),
            or_dash(job.oldest_due_at.map(|due| relative(due, at))),
            or_dash(job.earliest_lease_expiry.map(|lease| relative(lease, at))),
        ]);
    }
    write_or_none(&jobs, "no runs yet", out)?;

    writeln!(out, "\nProjections")?;
    let mut projections =
        Table::new(&["PROJECTION", "POSITION#", "BEHIND#", "HELD BACK#", "SAVED"]);
    for projection in &stats.projections {
        projections.row(vec![
            projection.name.clone(),
            projection.position.to_string(),
            projection.lag.behind.to_string(),
            projection.lag.held_back.to_string(),
            relative(projection.updated_at, at),
        ]);
    }
    write_or_none(&projections, "no projections yet", out)
}

fn write_or_none(table: &Table, none: &str, out: &mut dyn Write) -> std::io::Result<()> {
    if table.is_empty() {
        writeln!(out, "  ({none})")
    } else {
        table.write(out)
    }
}

// `events_*` pools belong to event delivery lanes, not to jobs.
use herald::{JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Nothing {}

#[job_handler(pool = "events_change")]
async fn rebuild_index(_ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

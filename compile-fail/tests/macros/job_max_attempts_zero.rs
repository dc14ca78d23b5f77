// `max_attempts` counts every attempt, the first one included, so 0 means nothing would run.
use herald::{JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {
    id: u64,
}

#[job_handler(max_attempts = 0)]
async fn import(_ctx: JobContext, _input: Input) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

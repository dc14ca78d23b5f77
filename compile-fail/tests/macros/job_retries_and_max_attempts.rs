// `retries` and `max_attempts` are one number in two units: a job gives one of them. The job
// type is still generated, so its uses add no errors of their own.
use herald::{Job, JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {
    id: u64,
}

#[job_handler(retries = 3, max_attempts = 5)]
async fn import(_ctx: JobContext, _input: Input) -> Result<(), JobError> {
    Ok(())
}

fn main() {
    let _ = Import::RETRY;
}

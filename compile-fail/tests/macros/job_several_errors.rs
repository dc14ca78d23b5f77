// Every mistake in the attribute is reported at once, each at the token to fix.
use herald::{JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {
    id: u64,
}

#[job_handler(
    retires = 3,
    backoff = "exponentially",
    timeout = "30 seconds",
    concurrency = 0,
    dedupe = "not a field",
    triggers = "ContactCreated",
    pool = "",
)]
async fn import(_ctx: JobContext, _input: Input) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

// A trigger must name an event type that exists.
use herald::{JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Nothing {}

#[job_handler(triggers = [ContactTeleported])]
async fn welcome_back(_ctx: JobContext, _input: Nothing) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

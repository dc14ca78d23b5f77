// A triggered job's input is built from the event: `From<&Event>` must exist.
use herald::{JobContext, JobError, job_handler};
use app::domain::events::ContactCreated;

#[derive(serde::Serialize, serde::Deserialize)]
struct Greeting {
    name: String,
}

#[job_handler(triggers = [ContactCreated])]
async fn greet(_ctx: JobContext, _input: Greeting) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

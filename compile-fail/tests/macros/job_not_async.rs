use herald::{JobContext, JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {}

#[job_handler]
fn import(_ctx: JobContext, _input: Input) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

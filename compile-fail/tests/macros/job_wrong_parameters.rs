use herald::{JobError, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {}

#[job_handler]
async fn import(_input: Input) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

use herald::{JobContext, JobError, job_handler};

#[job_handler]
async fn import<T: serde::de::DeserializeOwned>(_ctx: JobContext, _input: T) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

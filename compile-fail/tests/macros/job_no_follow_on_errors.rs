// A job handler with the wrong shape reports that, and nothing else where its job type is used.
use herald::{Job, JobError, job_handler};

#[job_handler(retries = 2)]
async fn import() -> Result<(), JobError> {
    Ok(())
}

fn main() {
    assert_eq!(Import::NAME, "import");
    assert_eq!(Import::RETRY.attempts, 3);
}

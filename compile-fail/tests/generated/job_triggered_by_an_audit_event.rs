// Audit events record what happened; they never trigger work.
use herald::{JobContext, JobError, job_handler};
use app::domain::events::CrmSyncCompleted;

#[derive(serde::Serialize, serde::Deserialize)]
struct Summary {
    provider: String,
}

impl From<&CrmSyncCompleted> for Summary {
    fn from(event: &CrmSyncCompleted) -> Self {
        Self { provider: event.provider.clone() }
    }
}

#[job_handler(triggers = [CrmSyncCompleted])]
async fn summarize_sync(_ctx: JobContext, _input: Summary) -> Result<(), JobError> {
    Ok(())
}

fn main() {}

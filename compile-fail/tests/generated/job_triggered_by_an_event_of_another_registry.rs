// A job registered with a registry's bus may only be triggered by that registry's events.
use herald::{JobContext, JobError, Jobs, job_handler};
use app::domain::AppEvent;

#[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "invoice_sent", direction = "outbound", destination = "billing")]
struct InvoiceSent {
    invoice_id: u64,
}

#[job_handler(triggers = [InvoiceSent])]
async fn archive_invoice(_ctx: JobContext, _input: InvoiceSent) -> Result<(), JobError> {
    Ok(())
}

fn main() {
    let _jobs = Jobs::<AppEvent>::new().register::<ArchiveInvoice>();
}

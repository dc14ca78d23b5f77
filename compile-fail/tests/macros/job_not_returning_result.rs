use herald::{JobContext, job_handler};

#[derive(serde::Serialize, serde::Deserialize)]
struct Input {}

#[job_handler]
async fn import(_ctx: JobContext, _input: Input) {}

fn main() {}

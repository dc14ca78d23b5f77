//! Durable jobs: the job itself, its triggers, the set an application registers, the client
//! that enqueues and inspects runs, and the worker that runs them.

mod client;
mod job;
mod set;
mod triggers;
pub(crate) mod worker;

pub(crate) use client::new_run;
pub use client::{EnqueueError, JobClient, Start};
pub use job::{DEFAULT_JOB_POOL, Job, JobContext, JobError, RunAt};
pub use set::Jobs;
pub use triggers::{Trigger, TriggerEvent, TriggerEvents, TriggersIn};

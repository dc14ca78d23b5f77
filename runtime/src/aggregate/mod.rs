//! Event-sourced aggregates: state is the fold of an entity's change events; commands are
//! decided purely; side effects are jobs enqueued with the events.

mod store;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::EventMeta;
use crate::jobs::{EnqueueError, Job, RunAt, new_run};
use crate::store::NewRun;

/// The enum of one aggregate's change events, generated per entity (`ContactEvent`, ...).
pub trait AggregateEvents:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The entity whose change events these are.
    const AGGREGATE: &'static str;

    /// The metadata of this event's type.
    fn meta(&self) -> EventMeta;

    /// The payload alone, as stored in the outbox.
    fn payload_json(&self) -> Result<String, serde_json::Error>;

    /// Reads back a stored event; `Ok(None)` when `event_type` is not one of this aggregate's
    /// (an event type the code no longer knows).
    fn decode(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<Option<Self>, serde_json::Error>;
}

/// A struct whose state is the fold of its entity's change events. Implemented by
/// `#[derive(Aggregate)]` with `#[aggregate(entity = "contact", id = contact_id)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "add `#[derive(herald::Aggregate, Default)]` and `#[aggregate(entity = \"...\", id = field)]`"
)]
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The generated enum of the entity's change events.
    type Event: AggregateEvents;

    /// The aggregate type: the entity's name.
    const TYPE: &'static str;

    /// The aggregate's id, as stored in the outbox's `aggregate_id`.
    fn aggregate_id(&self) -> String;
}

/// Pure command handling: no clock, no I/O. What the outside world knows (time, ids,
/// configuration) travels in the command; values only known after a side effect are published
/// by the job that performs it, as a follow-up event.
pub trait Decide: Aggregate {
    /// What the aggregate is asked to do.
    type Command: Send;
    /// Why it refuses a command: returned as [`ExecuteError::Rejected`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events the command produces (none is fine), and the jobs to enqueue with them.
    fn decide(
        &self,
        command: Self::Command,
        jobs: &mut JobQueue,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one of its events into the state; pure, and it cannot fail: an event is a fact.
    fn apply(&mut self, event: &Self::Event);
}

/// The jobs a decision enqueues, atomically with its events.
#[derive(Debug, Default)]
pub struct JobQueue {
    /// Each run with when it is due, resolved against the store's clock when appended (the
    /// decision itself reads no clock).
    runs: Vec<(NewRun, RunAt)>,
    error: Option<EnqueueError>,
}

impl JobQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enqueues a run of `J` with the decision's events.
    pub fn start<J: Job>(&mut self, input: J::Input) {
        self.start_at::<J>(input, RunAt::Now);
    }

    /// Enqueues a run of `J`, due `at`, with the decision's events.
    pub fn start_at<J: Job>(&mut self, input: J::Input, at: RunAt) {
        match new_run::<J>(&input, None, None) {
            Ok(run) => self.runs.push((run, at)),
            Err(error) => {
                self.error.get_or_insert(error);
            }
        }
    }

    /// The names of the queued jobs, in order: what a given/when/then test checks.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.runs.iter().map(|(run, _)| run.job).collect()
    }

    pub(crate) fn into_runs(
        self,
        scope: (&str, &str),
        cause: Option<Uuid>,
        tenant: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewRun>, EnqueueError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self
            .runs
            .into_iter()
            .map(|(mut run, at)| {
                run.run_at = at.resolve(now);
                run.scope_type = Some(scope.0.to_owned());
                run.scope_id = Some(scope.1.to_owned());
                run.event_id = cause;
                run.tenant_id = tenant.map(str::to_owned);
                run
            })
            .collect())
    }

    /// The queued inputs of job `J`, decoded.
    pub fn inputs_of<J: Job>(&self) -> Vec<J::Input> {
        self.runs
            .iter()
            .filter(|(run, _)| run.job == J::NAME)
            .filter_map(|(run, _)| serde_json::from_str(&run.input).ok())
            .collect()
    }
}

pub use store::{AggregateStore, CommandContext, ExecuteError, Executed, Loaded};

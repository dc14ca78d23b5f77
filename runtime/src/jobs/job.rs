//! What a job is (the [`Job`] trait that `#[job_handler]` implements) and what one attempt of
//! it sees (its [`JobContext`]): the two refer to each other, so they live together.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::triggers::{Trigger, TriggerEvents};
use crate::clock::Clock;
use crate::event::RetryPolicy;
use crate::store::{JobStore, NewRun};

/// The pool jobs run in unless they say otherwise.
pub const DEFAULT_JOB_POOL: &str = herald_vocabulary::DEFAULT_JOB_POOL;

/// Durable work: a run is a row, claimed by a worker, retried per `RETRY`, and ended
/// `completed`, `failed`, `timed_out` or `canceled`. Implemented by `#[job_handler]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Herald job",
    label = "not a job",
    note = "put `#[herald::job_handler(...)]` on an `async fn(JobContext, Input) -> Result<Output, Error>`; it generates the job type"
)]
pub trait Job: Send + Sync + Sized + 'static {
    /// Stable name, stored in every run row.
    const NAME: &'static str;
    /// The worker pool that runs it (`batch` by default, or `interactive`, or your own; never
    /// an `events_*` pool, which belong to event delivery).
    const POOL: &'static str;
    /// How many attempts a run gets, and the backoff between them.
    const RETRY: RetryPolicy;
    /// An attempt that runs longer ends the run `timed_out`.
    const TIMEOUT: Duration;
    /// At most this many runs of the job run at once, across all workers (`None`: no cap).
    const CONCURRENCY: Option<u32>;
    /// The events that enqueue a run when published, with how each becomes the input.
    const TRIGGERS: &'static [Trigger];

    /// What a run is started with, stored as JSON in its row.
    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What a completed run returns, stored as JSON in its row.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// What a failed attempt returns; its message is stored as the run's `last_error`.
    type Error: Display + Send + 'static;
    /// The trigger events as a tuple, for compile-time checks against a registry.
    type Triggers: TriggerEvents;

    /// Runs with the same key collapse onto the live one (pending or running).
    fn dedupe_key(input: &Self::Input) -> Option<String>;

    /// One attempt: the job's work. Make it safe to repeat (an attempt may run again after a
    /// crash), with [`JobContext::step`] and [`JobContext::idempotency_key`].
    fn run(
        ctx: JobContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// The error a job returns when it has no error type of its own: any error, or a message.
#[derive(Debug)]
pub struct JobError(Box<dyn std::error::Error + Send + Sync>);

impl JobError {
    /// An error with only this message.
    pub fn msg(message: impl Display) -> Self {
        Self(message.to_string().into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Display::fmt(&self.0, f)
    }
}

/// When a run becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    /// Due at once.
    Now,
    /// Due at this instant.
    At(DateTime<Utc>),
    /// Due this long after enqueueing, by the store's clock.
    In(Duration),
}

impl RunAt {
    /// The due time, from `now` for a delay; `None` for at once.
    pub(crate) fn resolve(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            RunAt::Now => None,
            RunAt::At(at) => Some(at),
            RunAt::In(delay) => {
                Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
            }
        }
    }
}

/// Values a worker hands to every job (a connection pool, an HTTP client, a bus), by type.
pub(crate) type States = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// The context of one attempt of one run.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) run_id: Uuid,
    pub(crate) root_id: Uuid,
    pub(crate) attempt: u32,
    pub(crate) tenant_id: Option<String>,
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) states: Arc<States>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("run_id", &self.run_id)
            .field("root_id", &self.root_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

fn fenced(run: Uuid) -> JobError {
    JobError::msg(format!(
        "this attempt no longer holds run {run}: it was canceled, or its lease expired and the \
         run was rescued"
    ))
}

impl JobContext {
    /// The run this attempt belongs to.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// The top-level run of this run's tree (its own id when it has no parent).
    pub fn root_id(&self) -> Uuid {
        self.root_id
    }

    /// 1 on the first attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The tenant the run belongs to: that of the event that triggered it, of the command that
    /// decided it, or of the run that spawned it. Publish the job's own events with
    /// `Publish::tenant` of it, so that they stay in the tenant.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    /// The value of type `T` given to the worker with [`crate::Worker::state`].
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, JobError> {
        self.states
            .get(&TypeId::of::<T>())
            .and_then(|state| state.downcast_ref::<T>())
            .ok_or_else(|| {
                JobError::msg(format!(
                    "no `{}` was given to the worker: add it with `Worker::state(..)`",
                    std::any::type_name::<T>()
                ))
            })
    }

    /// A UUID that is the same on every attempt of this run, for idempotency keys of side
    /// effects (an event id to publish, a request id for a remote API).
    pub fn idempotency_key(&self, name: &str) -> Uuid {
        Uuid::new_v5(&self.run_id, name.as_bytes())
    }

    /// Runs `work` once per run: its output is stored under (run, `id`) when it succeeds, and a
    /// retried attempt gets the stored output back without running `work` again.
    pub async fn step<T, E, F, Fut>(&self, id: &str, work: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<JobError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(stored) = self
            .store
            .step_output(self.run_id, id)
            .await
            .map_err(JobError::from)?
        {
            tracing::debug!(run = %self.run_id, step = id, "step already done; skipped");
            return serde_json::from_str(&stored).map_err(|error| {
                JobError::msg(format!(
                    "stored output of step `{id}` does not decode: {error}"
                ))
            });
        }
        let output = work().await.map_err(Into::into)?;
        let json = serde_json::to_string(&output)?;
        let saved = self
            .store
            .save_step(self.run_id, self.attempt, id, &json, self.clock.now())
            .await?;
        if !saved {
            return Err(fenced(self.run_id));
        }
        Ok(output)
    }

    /// Enqueues a run of `J` as a child of this run (canceling this run's tree cancels it), in
    /// this run's tenant. Memoized: the child is keyed by its job and input, so a parent retried
    /// after spawning gets the child it spawned before (its id) instead of a second one. Use
    /// [`JobContext::spawn_child_keyed`] for several children of one job with the same input.
    pub async fn spawn_child<J: Job>(&self, input: J::Input, at: RunAt) -> Result<Uuid, JobError> {
        let json = serde_json::to_string(&input)?;
        let key = Uuid::new_v5(&self.run_id, format!("{}\n{json}", J::NAME).as_bytes());
        self.spawn::<J>(key.to_string(), &input, json, at).await
    }

    /// Like [`JobContext::spawn_child`], keyed by `key` (unique among this run's children of
    /// every job): spawning the same key again returns the existing child, whatever the input.
    pub async fn spawn_child_keyed<J: Job>(
        &self,
        key: impl Into<String>,
        input: J::Input,
        at: RunAt,
    ) -> Result<Uuid, JobError> {
        let json = serde_json::to_string(&input)?;
        self.spawn::<J>(key.into(), &input, json, at).await
    }

    async fn spawn<J: Job>(
        &self,
        child_key: String,
        input: &J::Input,
        json: String,
        at: RunAt,
    ) -> Result<Uuid, JobError> {
        let run = NewRun {
            id: Uuid::now_v7(),
            job: J::NAME,
            pool: J::POOL,
            dedupe_key: J::dedupe_key(input),
            input: json,
            max_attempts: J::RETRY.max_attempts().get(),
            run_at: at.resolve(self.clock.now()),
            scope_type: None,
            scope_id: None,
            event_id: None,
            parent_id: Some(self.run_id),
            root_id: self.root_id,
            tenant_id: self.tenant_id.clone(),
            child_key: Some(child_key),
            // The attempt's span: the child's attempts appear under the parent's.
            trace: crate::trace::TraceContext::current(),
        };
        let id = self
            .store
            .insert_run_now(&run, Some(self.attempt), self.clock.now())
            .await?
            .ok_or_else(|| fenced(self.run_id))?;
        crate::metrics::runs_enqueued(std::slice::from_ref(&run), &[id]);
        Ok(id)
    }
}

//! Durable jobs: the `Job` trait that `#[job_handler]` implements, event triggers, and the
//! typed set of jobs a bus enqueues in the publishing transaction.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bus::{Catalog, InCatalog};
use crate::event::{DomainEvent, RetryPolicy};
use crate::job_context::JobContext;

/// The pool jobs run in unless they say otherwise.
pub const DEFAULT_JOB_POOL: &str = "batch";

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
    const RETRY: RetryPolicy;
    /// An attempt that runs longer ends the run `timed_out`.
    const TIMEOUT: Duration;
    /// At most this many runs of the job run at once, across all workers (`None`: no cap).
    const CONCURRENCY: Option<u32>;
    /// The events that enqueue a run when published, with how each becomes the input.
    const TRIGGERS: &'static [Trigger];

    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Output: Serialize + DeserializeOwned + Send + 'static;
    type Error: Display + Send + 'static;
    /// The trigger events as a tuple, for compile-time checks against a registry.
    type Triggers: TriggerEvents;

    /// Runs with the same key collapse onto the live one (pending or running).
    fn dedupe_key(input: &Self::Input) -> Option<String>;

    fn run(
        ctx: JobContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// How an event enqueues a job: the event type, and the input built from its payload.
#[derive(Clone, Copy)]
pub struct Trigger {
    pub event_type: &'static str,
    input: fn(&str) -> Result<String, serde_json::Error>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

impl Trigger {
    /// `E` triggers `J`; its input is `J::Input::from(&event)`. Only domain events may trigger
    /// work.
    pub const fn of<E, J>() -> Self
    where
        E: TriggerEvent,
        J: Job,
        J::Input: for<'a> From<&'a E>,
    {
        Self {
            event_type: E::META.event_type,
            input: trigger_input::<E, J>,
        }
    }

    /// The input (JSON) of a run triggered by an event with this payload (JSON).
    pub fn input_for(&self, payload: &str) -> Result<String, serde_json::Error> {
        (self.input)(payload)
    }
}

fn trigger_input<E, J>(payload: &str) -> Result<String, serde_json::Error>
where
    E: TriggerEvent,
    J: Job,
    J::Input: for<'a> From<&'a E>,
{
    let event: E = serde_json::from_str(payload)?;
    serde_json::to_string(&J::Input::from(&event))
}

/// An event that can trigger work: a domain event. Audit events do not implement it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot trigger a job: only domain events trigger work",
    label = "not a domain event",
    note = "audit-tier events record what happened and never trigger work; trigger the job from a domain event declared in `events/*.yaml`"
)]
pub trait TriggerEvent: DomainEvent {}

impl<E: DomainEvent> TriggerEvent for E {}

/// The tuple of a job's trigger events.
pub trait TriggerEvents {}

/// Every trigger event of a job is an event of the registry `C`.
#[diagnostic::on_unimplemented(
    message = "a trigger of this job is not an event of the registry `{C}`",
    label = "the job's `triggers` must be events generated into `{C}`",
    note = "declare the event in `events/*.yaml` and generate again, or remove it from `triggers`"
)]
pub trait TriggersIn<C: Catalog>: TriggerEvents {}

macro_rules! trigger_tuples {
    ($(($($name:ident),*)),* $(,)?) => {$(
        impl<$($name: TriggerEvent),*> TriggerEvents for ($($name,)*) {}
        impl<C: Catalog, $($name: TriggerEvent + InCatalog<C>),*> TriggersIn<C> for ($($name,)*) {}
    )*};
}

trigger_tuples!(
    (),
    (A),
    (A, B),
    (A, B, C2),
    (A, B, C2, D),
    (A, B, C2, D, E),
    (A, B, C2, D, E, F),
    (A, B, C2, D, E, F, G),
    (A, B, C2, D, E, F, G, H),
);

/// What a registered job needs at enqueue time, without its type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobBinding {
    pub(crate) name: &'static str,
    pub(crate) pool: &'static str,
    pub(crate) max_attempts: u32,
    pub(crate) trigger: Trigger,
    pub(crate) dedupe: fn(&str) -> Option<String>,
}

fn dedupe_from_json<J: Job>(input: &str) -> Option<String> {
    serde_json::from_str::<J::Input>(input)
        .ok()
        .and_then(|input| J::dedupe_key(&input))
}

/// The explicit, typed set of jobs whose triggers a bus of registry `C` honours: publishing an
/// event enqueues, in the same transaction, a run of every job here that it triggers.
pub struct Jobs<C: Catalog> {
    by_event: BTreeMap<&'static str, Vec<JobBinding>>,
    names: Vec<&'static str>,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog> Clone for Jobs<C> {
    fn clone(&self) -> Self {
        Self {
            by_event: self.by_event.clone(),
            names: self.names.clone(),
            catalog: PhantomData,
        }
    }
}

impl<C: Catalog> Default for Jobs<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Catalog> std::fmt::Debug for Jobs<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("jobs", &self.names).finish()
    }
}

impl<C: Catalog> Jobs<C> {
    pub fn new() -> Self {
        Self {
            by_event: BTreeMap::new(),
            names: Vec::new(),
            catalog: PhantomData,
        }
    }

    /// Adds `J`; its triggers must be domain events of the registry `C` (checked at compile
    /// time).
    pub fn register<J>(mut self) -> Self
    where
        J: Job,
        J::Triggers: TriggersIn<C>,
    {
        if self.names.contains(&J::NAME) {
            return self;
        }
        self.names.push(J::NAME);
        for trigger in J::TRIGGERS {
            self.by_event
                .entry(trigger.event_type)
                .or_default()
                .push(JobBinding {
                    name: J::NAME,
                    pool: J::POOL,
                    max_attempts: J::RETRY.attempts.max(1),
                    trigger: *trigger,
                    dedupe: dedupe_from_json::<J>,
                });
        }
        self
    }

    /// The names of the jobs `event_type` triggers, in registration order.
    pub fn triggered_by(&self, event_type: &str) -> Vec<&'static str> {
        self.by_event
            .get(event_type)
            .map(|bindings| bindings.iter().map(|binding| binding.name).collect())
            .unwrap_or_default()
    }

    /// The domain events of the registry that trigger no registered job.
    pub fn untriggered_domain_events(&self) -> Vec<&'static str> {
        C::registry()
            .iter()
            .filter(|descriptor| descriptor.meta.direction().is_some())
            .map(|descriptor| descriptor.meta.event_type)
            .filter(|event_type| !self.by_event.contains_key(event_type))
            .collect()
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    pub(crate) fn bindings_of(&self, event_type: &str) -> &[JobBinding] {
        self.by_event
            .get(event_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

//! Event triggers: which events enqueue a job, how the event becomes the job's input, and the
//! compile-time rules (domain events only, of the bus's own registry).

use super::job::Job;
use crate::event::DomainEvent;
use crate::event::catalog::{Catalog, InCatalog};

/// How an event enqueues a job: the event type, and the input built from its payload.
#[derive(Clone, Copy)]
pub struct Trigger {
    /// The type of the event that enqueues the run.
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

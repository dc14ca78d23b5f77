//! Derive macros for Herald: `#[derive(Event)]` and `#[derive(Entity)]`.
//!
//! Use them through the `herald` crate, which re-exports them next to the traits they
//! implement. Every problem in the attributes is reported at once, each at the token to fix;
//! the impl is still generated (with placeholder metadata) so that no follow-on errors appear.
//!
//! ```ignore
//! #[derive(Clone, Serialize, Deserialize, JsonSchema, herald::Event)]
//! #[event(type = "contact_created", direction = "change", aggregate = "contact")]
//! pub struct ContactCreated { pub contact_id: Uuid }
//!
//! #[derive(herald::Entity)]
//! #[entity(name = "contact", emits = ["contact_created"])]
//! pub struct Contact {
//!     #[entity(max_length = 255, index)]
//!     pub email: String,
//! }
//! ```

mod aggregate;
mod attr;
mod entity;
mod entity_attr;
mod event;
mod event_attr;
mod fallback;
mod job;
mod words;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `herald::Event` (and `herald::DomainEvent` for a domain event) from
/// `#[event(type = "...", version = N, tier = "...", direction = "...", aggregate = "...",
/// source = "...", destination = "...", pool = "...", retry(attempts = N, backoff = "..."),
/// description = "...")]`.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(&input)
        .unwrap_or_else(|error| fallback::event(&input, error))
        .into()
}

/// Implements `herald::Entity` from `#[entity(name = "...", emits = [...], description = "...")]`
/// on the struct and `#[entity(type = "...", max_length = N, index, nullable, optional)]` on
/// its fields.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    entity::expand(&input)
        .unwrap_or_else(|error| fallback::entity(&input, error))
        .into()
}

/// Turns `async fn name(ctx: JobContext, input: Input) -> Result<Output, Error>` into a job:
/// keeps the function and adds the type `Name` (PascalCase) implementing `herald::Job`, from
/// `#[job_handler(name = "...", pool = "batch", retries = N | max_attempts = N, backoff =
/// "exponential" | "linear" | "fixed", timeout = "30s", triggers = [EventType, ...], dedupe =
/// "input_field", concurrency = N)]`, every key optional.
///
/// How often a failing run is attempted is one number, given in either of two units (not
/// both): `retries = N` counts the re-runs after the first attempt, so a run is attempted up
/// to N + 1 times (`retries = 0`: once); `max_attempts = N` counts every attempt, the first
/// one included, as an event's `retry(attempts = N)` does (`max_attempts = 1`: once). Without
/// either, `retries = 10` (11 attempts).
#[proc_macro_attribute]
pub fn job_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(args.into(), item.into()).into()
}

/// Implements `herald::Aggregate` from `#[aggregate(entity = "contact", id = contact_id)]`: the
/// aggregate folds the generated `ContactEvent` enum (or the one named by `events = path`), and
/// its id is the named field.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::expand(&input).into()
}

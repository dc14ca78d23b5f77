//! The registry an application's events belong to, as a type: what lets the compiler refuse an
//! event, a subscriber or a job trigger of another registry.

use crate::event::Event;
use crate::event::registry::Registry;

/// The registry a typed bus is generated for. The generator implements it on the application's
/// `AppEvent` enum.
pub trait Catalog: Send + Sync + 'static {
    /// The registry of every event type of the application.
    fn registry() -> &'static Registry;
}

/// Marks an event type as a member of the registry `C`, so that a bus of `C` accepts it. The
/// generator implements it for every event of the registry, and for nothing else.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of the registry `{C}`",
    label = "only the events generated into `{C}` can be published, subscribed or trigger jobs here",
    note = "declare the event in `events/*.yaml` and generate again; a forwarder that only knows the type name at run time uses `publish_json`"
)]
pub trait InCatalog<C: Catalog>: Event {}

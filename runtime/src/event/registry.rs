use crate::event::upcast::KeptUpcaster;
use crate::event::{Event, EventMeta};

/// Why an untyped payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// No event type of the registry has this name.
    #[error("unknown event type `{event_type}`: it is not in the registry")]
    UnknownType {
        /// The name given.
        event_type: String,
    },
    /// The payload does not deserialize into the event type's payload struct.
    #[error("payload of `{event_type}` does not match its schema: {source}")]
    Invalid {
        /// The event type.
        event_type: &'static str,
        /// What `serde_json` reported.
        #[source]
        source: serde_json::Error,
    },
}

/// A string that names no event type of the application.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(String);

impl UnknownEventType {
    /// The error for the name `event_type`.
    pub fn new(event_type: impl Into<String>) -> Self {
        Self(event_type.into())
    }

    /// The name that matched no event type.
    pub fn event_type(&self) -> &str {
        &self.0
    }
}

/// One event type of a [`Registry`]: its metadata, and its payload checks without its Rust type.
#[derive(Clone, Copy)]
pub struct EventDescriptor {
    /// The event type's metadata.
    pub meta: EventMeta,
    check: fn(&serde_json::Value) -> Result<(), serde_json::Error>,
    schema: fn() -> schemars::Schema,
    kept: &'static [KeptUpcaster],
}

impl EventDescriptor {
    /// The descriptor of `E`; `const`, so that the generated registry is a `static`.
    pub const fn of<E: Event>() -> Self {
        Self {
            meta: E::META,
            check: check_payload::<E>,
            schema: payload_schema::<E>,
            kept: &[],
        }
    }

    /// The descriptor with the typed upcasters of the versions kept beside the event's
    /// declaration (`events/<type>.v<N>.yaml`), one per kept version: every bus built on the
    /// registry applies them, as it applies those registered with [`crate::EventBus::upcast`].
    pub const fn keeping(self, kept: &'static [KeptUpcaster]) -> Self {
        Self { kept, ..self }
    }

    /// The typed upcasters of the event's kept versions.
    pub fn kept(&self) -> &'static [KeptUpcaster] {
        self.kept
    }

    /// Checks that `payload` deserializes into this event's payload type: every required key
    /// present, no unknown key, every value of its declared type.
    pub fn validate(&self, payload: &serde_json::Value) -> Result<(), PayloadError> {
        (self.check)(payload).map_err(|source| PayloadError::Invalid {
            event_type: self.meta.event_type,
            source,
        })
    }

    /// The JSON Schema of the payload.
    pub fn json_schema(&self) -> schemars::Schema {
        (self.schema)()
    }
}

impl std::fmt::Debug for EventDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDescriptor")
            .field("meta", &self.meta)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

fn check_payload<E: Event>(payload: &serde_json::Value) -> Result<(), serde_json::Error> {
    E::deserialize(payload).map(drop)
}

fn payload_schema<E: Event>() -> schemars::Schema {
    schemars::schema_for!(E)
}

/// The static set of event types an application knows, generated from `events/`.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    /// Sorted by event type, so lookups are binary searches.
    events: &'static [EventDescriptor],
}

impl Registry {
    /// `events` must be sorted by type without duplicates; the generator guarantees it.
    pub const fn new(events: &'static [EventDescriptor]) -> Self {
        Self { events }
    }

    /// The descriptor of `event_type`, if the registry has it.
    pub fn get(&self, event_type: &str) -> Option<&'static EventDescriptor> {
        let events: &'static [EventDescriptor] = self.events;
        events
            .binary_search_by(|d| d.meta.event_type.cmp(event_type))
            .ok()
            .map(|i| &events[i])
    }

    /// Looks the type up and validates the payload against it, for untyped publishing.
    pub fn validate(
        &self,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<&'static EventDescriptor, PayloadError> {
        let descriptor = self
            .get(event_type)
            .ok_or_else(|| PayloadError::UnknownType {
                event_type: event_type.to_owned(),
            })?;
        descriptor.validate(payload)?;
        Ok(descriptor)
    }

    /// Every descriptor, sorted by event type.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'static EventDescriptor> {
        let events: &'static [EventDescriptor] = self.events;
        events.iter()
    }

    /// How many event types the registry has.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the registry has no event type.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

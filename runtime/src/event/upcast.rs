//! Upcasters: how a stored payload of an older version of its event type becomes the current
//! one. Typed ones come with the registry (a version kept in `events/<type>.v<N>.yaml`, and the
//! application's [`UpcastFrom`] impl); JSON ones are registered on the bus
//! ([`crate::EventBus::upcast`]). Both are applied on every path that reads stored events —
//! subscribers, aggregate loads, projections — so that events still pending across a deploy
//! that bumped a version reach every consumer in the current shape.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::registry::Registry;

/// Turns a stored payload of version `n` into version `n + 1`, or says why it cannot.
pub type Upcaster = fn(serde_json::Value) -> Result<serde_json::Value, String>;

/// How the payload of an earlier version becomes the next version's: the upcaster an
/// application writes for each version it keeps (`events/contact_updated.v1.yaml` generates
/// `ContactUpdatedV1`, and the application writes
/// `impl UpcastFrom<ContactUpdatedV1> for ContactUpdated`).
///
/// It cannot fail, on purpose: a stored event never changes, so an upcaster that refused one
/// would refuse it again on every retry, and the event would reach no reader. What can be
/// wrong with the stored data is caught before it is called (a payload that does not decode
/// as `Old` fails the delivery, naming serde's reason); what is left is a total function from
/// the old shape to the new one, which the compiler checks. A step that must inspect and may
/// refuse raw JSON stays the JSON form's ([`crate::EventBus::upcast`]).
#[diagnostic::on_unimplemented(
    message = "no upcaster turns `{Old}` into `{Self}`: write `impl herald::UpcastFrom<{Old}> for {Self}`",
    label = "`{Old}` is the shape of events stored at an earlier version: they reach readers as `{Self}` only through this upcaster",
    note = "`{Old}` is generated from the file that keeps that version beside the event's YAML, `events/<type>.v<N>.yaml`: this file's header and `<{Old} as herald::KeptVersion>::FILE` name it",
    note = "write `fn upcast_from(old: {Old}) -> Self`, filling in what the later version added; or delete the kept file and register a JSON upcaster with `bus.upcast(..)`"
)]
pub trait UpcastFrom<Old>: Sized {
    /// The next version's payload for `old`.
    fn upcast_from(old: Old) -> Self;
}

/// An earlier version of an event's payload, kept in `events/<type>.v<N>.yaml`: the generator
/// implements it on the struct of that shape. It names the shape the version upcasts into, so
/// that an application that has not written that [`UpcastFrom`] impl does not compile.
pub trait KeptVersion: DeserializeOwned + Send + Sync + 'static {
    /// The event type the version belongs to.
    const EVENT_TYPE: &'static str;
    /// The version it keeps.
    const VERSION: u32;
    /// The YAML file that keeps it, as the generator read it.
    const FILE: &'static str;
    /// The payload of version `VERSION + 1`: the next kept version's struct, or the event's.
    type Next: UpcastFrom<Self> + Serialize;
}

/// The typed upcaster of one kept version, as the generated registry holds it
/// ([`crate::EventDescriptor::keeping`]): every bus of the registry applies it.
#[derive(Debug, Clone, Copy)]
pub struct KeptUpcaster {
    /// The version it starts from.
    pub from: u32,
    /// The YAML file that keeps that version.
    pub file: &'static str,
    upcast: Upcaster,
}

impl KeptUpcaster {
    /// The upcaster from `K` into `K::Next`; `const`, so that the registry is a `static`.
    pub const fn of<K: KeptVersion>() -> Self {
        Self {
            from: K::VERSION,
            file: K::FILE,
            upcast: typed_step::<K, K::Next>,
        }
    }
}

/// A typed upcaster as the JSON step the chain applies: decode the stored shape, upcast it,
/// encode the next one.
fn typed_step<Old, New>(payload: serde_json::Value) -> Result<serde_json::Value, String>
where
    Old: DeserializeOwned,
    New: UpcastFrom<Old> + Serialize,
{
    let old = serde_json::from_value::<Old>(payload).map_err(|error| {
        format!(
            "the stored payload does not decode as `{}`: {error}",
            std::any::type_name::<Old>()
        )
    })?;
    serde_json::to_value(New::upcast_from(old)).map_err(|error| {
        format!(
            "the upcast payload does not encode as `{}`: {error}",
            std::any::type_name::<New>()
        )
    })
}

/// Why a stored payload could not be brought to the current version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// No upcaster starts from a version on the way.
    #[error(
        "`{event_type}` is stored at version {stored} but this code reads version {current}, and \
         no upcaster from version {missing} is registered: keep that version in \
         `events/{event_type}.v{missing}.yaml` and write its `UpcastFrom` impl, or add \
         `bus.upcast(\"{event_type}\", {missing}, ..)`"
    )]
    Missing {
        /// The event type.
        event_type: String,
        /// The version the payload was stored with.
        stored: u32,
        /// The version no upcaster starts from.
        missing: u32,
        /// The version the code reads.
        current: u32,
    },
    /// An upcaster refused the payload.
    #[error("the upcaster of `{event_type}` from version {from} failed: {reason}")]
    Failed {
        /// The event type.
        event_type: String,
        /// The version the failing upcaster starts from.
        from: u32,
        /// What it returned.
        reason: String,
    },
}

/// One step of the chain, and the file that keeps its version when it is a typed one.
#[derive(Clone, Copy)]
struct Step {
    upcast: Upcaster,
    kept_in: Option<&'static str>,
}

/// The upcasters of one bus, by event type and the version each starts from. Clones share the
/// same set, so that one registered on the bus reaches the drain, aggregates and projectors
/// made from it.
#[derive(Clone, Default)]
pub(crate) struct Upcasters(Arc<RwLock<HashMap<(String, u32), Step>>>);

impl Upcasters {
    /// Adds the typed upcasters of every kept version of `registry`.
    pub(crate) fn keep(&self, registry: &Registry) {
        let mut steps = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for descriptor in registry.iter() {
            for kept in descriptor.kept() {
                let step = Step {
                    upcast: kept.upcast,
                    kept_in: Some(kept.file),
                };
                steps.insert((descriptor.meta.event_type.to_owned(), kept.from), step);
            }
        }
    }

    /// Registers the JSON upcaster `upcast` for `event_type` payloads of `from_version`; a
    /// later registration of the same pair replaces it.
    ///
    /// # Panics
    /// When the registry upcasts that version with a typed upcaster: two upcasters of one
    /// step would make which one runs a matter of order, and the typed one is checked by the
    /// compiler, so the JSON one is refused rather than silently put in its place.
    pub(crate) fn add(&self, event_type: &str, from_version: u32, upcast: Upcaster) {
        let mut steps = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (event_type.to_owned(), from_version);
        if let Some(kept_in) = steps.get(&key).and_then(|step| step.kept_in) {
            drop(steps);
            panic!(
                "cannot register a JSON upcaster of `{event_type}` from version {from_version}: \
                 that version is kept in `{kept_in}`, and its typed upcaster (an \
                 `impl herald::UpcastFrom<..>` of the generated struct) already turns it into \
                 the next one; remove this `upcast(\"{event_type}\", {from_version}, ..)`, or \
                 delete the kept file and generate again to upcast that version as JSON"
            );
        }
        steps.insert(
            key,
            Step {
                upcast,
                kept_in: None,
            },
        );
    }

    /// Applies the upcasters from `stored` up to `current`, one version at a time. A payload
    /// at (or above) the current version is returned as it is.
    pub(crate) fn to_current(
        &self,
        event_type: &str,
        stored: u32,
        current: u32,
        mut payload: serde_json::Value,
    ) -> Result<serde_json::Value, UpcastError> {
        if stored >= current {
            return Ok(payload);
        }
        let upcasters = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for version in stored..current {
            let step = upcasters
                .get(&(event_type.to_owned(), version))
                .ok_or_else(|| UpcastError::Missing {
                    event_type: event_type.to_owned(),
                    stored,
                    missing: version,
                    current,
                })?;
            payload = (step.upcast)(payload).map_err(|reason| UpcastError::Failed {
                event_type: event_type.to_owned(),
                from: version,
                reason,
            })?;
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_name(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        let name = payload
            .as_object_mut()
            .and_then(|fields| fields.remove("name"))
            .ok_or("no `name` field")?;
        payload["full_name"] = name;
        Ok(payload)
    }

    fn add_email(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        payload["email"] = json!(null);
        Ok(payload)
    }

    #[test]
    fn upcasters_chain_from_the_stored_version_to_the_current_one() {
        let upcasters = Upcasters::default();
        upcasters.add("contact_renamed", 1, rename_name);
        upcasters.add("contact_renamed", 2, add_email);
        let current = upcasters
            .to_current("contact_renamed", 1, 3, json!({ "name": "Ada" }))
            .unwrap();
        assert_eq!(current, json!({ "full_name": "Ada", "email": null }));
        let from_two = upcasters
            .to_current("contact_renamed", 2, 3, json!({ "full_name": "Ada" }))
            .unwrap();
        assert_eq!(from_two, json!({ "full_name": "Ada", "email": null }));
    }

    #[test]
    fn a_current_payload_is_left_alone() {
        let payload = json!({ "full_name": "Ada" });
        let same = Upcasters::default()
            .to_current("contact_renamed", 3, 3, payload.clone())
            .unwrap();
        assert_eq!(same, payload);
    }

    #[test]
    fn a_gap_in_the_chain_names_the_missing_upcaster() {
        let upcasters = Upcasters::default();
        upcasters.add("contact_renamed", 1, rename_name);
        let error = upcasters
            .to_current("contact_renamed", 1, 3, json!({ "name": "Ada" }))
            .unwrap_err();
        assert_eq!(
            error,
            UpcastError::Missing {
                event_type: "contact_renamed".to_owned(),
                stored: 1,
                missing: 2,
                current: 3,
            }
        );
        assert!(
            error
                .to_string()
                .contains("bus.upcast(\"contact_renamed\", 2, ..)"),
            "{error}"
        );
    }

    #[test]
    fn a_refusing_upcaster_is_reported_with_its_reason() {
        let upcasters = Upcasters::default();
        upcasters.add("contact_renamed", 1, rename_name);
        let error = upcasters
            .to_current("contact_renamed", 1, 2, json!({ "nickname": "A" }))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the upcaster of `contact_renamed` from version 1 failed: no `name` field"
        );
    }
}

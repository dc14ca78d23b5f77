//! Upcasters: how a stored payload of an older version of its event type becomes the current
//! one. Registered once on the bus ([`crate::EventBus::upcast`]) and applied on every path
//! that reads stored events — subscribers, aggregate loads, projections — so that events still
//! pending across a deploy that bumped a version reach every consumer in the current shape.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Turns a stored payload of version `n` into version `n + 1`, or says why it cannot.
pub type Upcaster = fn(serde_json::Value) -> Result<serde_json::Value, String>;

/// Why a stored payload could not be brought to the current version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// No upcaster starts from a version on the way.
    #[error(
        "`{event_type}` is stored at version {stored} but this code reads version {current}, and \
         no upcaster from version {missing} is registered: add `bus.upcast(\"{event_type}\", \
         {missing}, ..)`"
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

/// The upcasters of one bus, by event type and the version each starts from. Clones share the
/// same set, so that one registered on the bus reaches the drain, aggregates and projectors
/// made from it.
#[derive(Clone, Default)]
pub(crate) struct Upcasters(Arc<RwLock<HashMap<(String, u32), Upcaster>>>);

impl Upcasters {
    /// Registers `upcast` for `event_type` payloads of `from_version`; a later registration of
    /// the same pair replaces it.
    pub(crate) fn add(&self, event_type: &str, from_version: u32, upcast: Upcaster) {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((event_type.to_owned(), from_version), upcast);
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
            let upcast = upcasters
                .get(&(event_type.to_owned(), version))
                .ok_or_else(|| UpcastError::Missing {
                    event_type: event_type.to_owned(),
                    stored,
                    missing: version,
                    current,
                })?;
            payload = upcast(payload).map_err(|reason| UpcastError::Failed {
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

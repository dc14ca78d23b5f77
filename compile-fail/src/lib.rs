//! An application of the repository's example domain, as the compile-fail cases in
//! `tests/ui/` see it: everything generated from `../events` and `../entities`, nothing else.

/// Everything generated from `../events` and `../entities`.
pub mod domain {
    include!(concat!(env!("OUT_DIR"), "/herald.rs"));

    /// Version 1 of `contact_updated` (kept in `events/contact_updated.v1.yaml`) had no `tags`:
    /// the generated code does not compile without this upcaster.
    impl herald::UpcastFrom<events::ContactUpdatedV1> for events::ContactUpdated {
        fn upcast_from(old: events::ContactUpdatedV1) -> Self {
            Self {
                contact_id: old.contact_id,
                email: old.email,
                name: old.name,
                tags: Vec::new(),
                updated_by: old.updated_by,
            }
        }
    }
}

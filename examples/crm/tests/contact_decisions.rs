//! Every command of the `contact` aggregate, accepted and refused, through the given/when/then
//! helper: no database, no clock.

use crm::contact::{Contact, ContactCommand, ContactError};
use crm::generated::ContactEvent;
use crm::generated::events::{ContactArchived, ContactCreated, ContactUpdated};
use crm::jobs::{ArchivedContact, NotifyContactArchived};
use herald::chrono::{DateTime, Utc};
use herald::testing::Given;
use herald::uuid::Uuid;

const CONTACT: Uuid = Uuid::from_u128(1);
const USER: Uuid = Uuid::from_u128(9);

fn noon() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

fn created() -> ContactEvent {
    ContactCreated {
        contact_id: CONTACT,
        account_id: None,
        created_by: USER,
    }
    .into()
}

fn archived() -> ContactEvent {
    ContactArchived {
        contact_id: CONTACT,
        archived_at: noon(),
        reason: Some("left".into()),
    }
    .into()
}

fn update(name: Option<&str>) -> ContactCommand {
    ContactCommand::Update {
        email: None,
        name: name.map(str::to_owned),
        tags: Vec::new(),
        updated_by: USER,
    }
}

#[test]
fn create_a_new_contact() {
    let then = Given::<Contact>::events([])
        .when(ContactCommand::Create {
            contact_id: CONTACT,
            account_id: None,
            created_by: USER,
        })
        .then_events([created()])
        .then_jobs(&[]);
    assert!(then.state.exists);
    assert_eq!(then.state.contact_id, CONTACT);
}

#[test]
fn create_twice_is_refused() {
    Given::<Contact>::events([created()])
        .when(ContactCommand::Create {
            contact_id: CONTACT,
            account_id: None,
            created_by: USER,
        })
        .then_error(|error| *error == ContactError::AlreadyExists(CONTACT));
}

#[test]
fn update_changes_what_it_names() {
    let then = Given::<Contact>::events([created()])
        .when(update(Some("Ada")))
        .then_events([ContactUpdated {
            contact_id: CONTACT,
            email: None,
            name: Some("Ada".into()),
            tags: Vec::new(),
            updated_by: USER,
        }
        .into()]);
    assert_eq!(then.state.name.as_deref(), Some("Ada"));
    assert_eq!(then.state.updates, 1);
}

#[test]
fn update_refusals() {
    Given::<Contact>::events([])
        .when(update(Some("Ada")))
        .then_error(|error| *error == ContactError::NotFound);
    Given::<Contact>::events([created()])
        .when(update(None))
        .then_error(|error| *error == ContactError::EmptyUpdate);
    Given::<Contact>::events([created(), archived()])
        .when(update(Some("Ada")))
        .then_error(|error| *error == ContactError::Archived(CONTACT));
}

#[test]
fn archive_emits_the_event_and_enqueues_the_notification() {
    let then = Given::<Contact>::events([created()])
        .when(ContactCommand::Archive {
            at: noon(),
            reason: Some("left".into()),
        })
        .then_events([archived()])
        .then_jobs(&["notify_contact_archived"]);
    assert!(then.state.archived);
    assert_eq!(
        then.jobs.inputs_of::<NotifyContactArchived>(),
        [ArchivedContact {
            contact_id: CONTACT
        }]
    );
}

#[test]
fn archive_refusals() {
    Given::<Contact>::events([])
        .when(ContactCommand::Archive {
            at: noon(),
            reason: None,
        })
        .then_error(|error| *error == ContactError::NotFound);
    Given::<Contact>::events([created(), archived()])
        .when(ContactCommand::Archive {
            at: noon(),
            reason: None,
        })
        .then_error(|error| *error == ContactError::Archived(CONTACT));
}

#[test]
fn the_aggregate_is_bound_to_its_entity() {
    use herald::{Aggregate, AggregateEvents};
    assert_eq!(Contact::TYPE, "contact");
    assert_eq!(<ContactEvent as AggregateEvents>::AGGREGATE, "contact");
    let contact = Contact {
        contact_id: CONTACT,
        ..Contact::default()
    };
    assert_eq!(contact.aggregate_id(), CONTACT.to_string());
}

//! `#[derive(Event)]`: the generated `EventMeta`, field by field.

use herald::{Backoff, Direction, DomainEvent, Event, RetryPolicy, Routing, Tier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn assert_domain<E: DomainEvent>() {}

#[derive(Clone, Serialize, Deserialize, JsonSchema, herald::Event)]
#[event(type = "contact_created", direction = "change", aggregate = "contact")]
struct ContactCreated {
    contact_id: u64,
}

#[test]
fn change_event_with_defaults() {
    let meta = ContactCreated::META;
    assert_eq!(meta.event_type, "contact_created");
    assert_eq!(meta.version, 1);
    assert_eq!(
        meta.routing,
        Routing::Domain {
            direction: Direction::Change,
            pool: "events_change",
        }
    );
    assert_eq!(meta.tier(), Tier::Domain);
    assert_eq!(meta.aggregate, Some("contact"));
    assert_eq!(meta.source, None);
    assert_eq!(meta.destination, None);
    assert_eq!(meta.retry, RetryPolicy::DEFAULT);
    assert_eq!(meta.description, None);
    assert_domain::<ContactCreated>();
}

#[derive(Clone, Serialize, Deserialize, JsonSchema, herald::Event)]
#[event(
    type = "payment_received",
    version = 3,
    tier = "domain",
    direction = "inbound",
    source = "stripe",
    pool = "events_inbound_priority",
    retry(attempts = 5, backoff = "linear"),
    description = "A payment reported by Stripe's webhook."
)]
struct PaymentReceived {
    amount_cents: i64,
}

#[test]
fn inbound_event_with_source_retry_and_pool() {
    let meta = PaymentReceived::META;
    assert_eq!(meta.event_type, "payment_received");
    assert_eq!(meta.version, 3);
    assert_eq!(
        meta.routing,
        Routing::Domain {
            direction: Direction::Inbound,
            pool: "events_inbound_priority",
        }
    );
    assert_eq!(meta.aggregate, None);
    assert_eq!(meta.source, Some("stripe"));
    assert_eq!(meta.destination, None);
    assert_eq!(
        meta.retry,
        RetryPolicy {
            attempts: 5,
            backoff: Backoff::Linear,
        }
    );
    assert_eq!(
        meta.description,
        Some("A payment reported by Stripe's webhook.")
    );
    assert_domain::<PaymentReceived>();
}

/// Not this doc: the attribute's description wins.
#[derive(Clone, Serialize, Deserialize, JsonSchema, herald::Event)]
#[event(
    retry(backoff = "fixed"),
    destination = "crm",
    direction = "outbound",
    type = "crm_sync_requested",
    description = "Push a contact to the CRM."
)]
struct CrmSyncRequested {
    contact_id: u64,
}

#[test]
fn outbound_event_with_destination_keys_in_any_order() {
    let meta = CrmSyncRequested::META;
    assert_eq!(meta.event_type, "crm_sync_requested");
    assert_eq!(meta.direction(), Some(Direction::Outbound));
    assert_eq!(meta.pool(), Some("events_outbound"));
    assert_eq!(meta.source, None);
    assert_eq!(meta.destination, Some("crm"));
    assert_eq!(
        meta.retry,
        RetryPolicy {
            attempts: 10,
            backoff: Backoff::Fixed,
        }
    );
    assert_eq!(meta.description, Some("Push a contact to the CRM."));
    assert_domain::<CrmSyncRequested>();
}

/// A user signed in.
///
///   Kept for the security audit trail.   
#[derive(Clone, Serialize, Deserialize, JsonSchema, herald::Event)]
#[event(
    type = "user_signed_in",
    tier = "audit",
    aggregate = "user",
    version = 2
)]
struct UserSignedIn {
    user_id: u64,
}

#[test]
fn audit_event_has_audit_routing() {
    let meta = UserSignedIn::META;
    assert_eq!(meta.event_type, "user_signed_in");
    assert_eq!(meta.version, 2);
    assert_eq!(meta.routing, Routing::Audit);
    assert_eq!(meta.tier(), Tier::Audit);
    assert_eq!(meta.direction(), None);
    assert_eq!(meta.pool(), None);
    assert_eq!(meta.aggregate, Some("user"));
    assert_eq!(meta.retry, RetryPolicy::DEFAULT);
}

#[test]
fn description_falls_back_to_the_doc_comment() {
    assert_eq!(
        UserSignedIn::META.description,
        Some("A user signed in.\n\nKept for the security audit trail.")
    );
}

/// Through the re-exports only, as generated code does: no direct serde or schemars names.
#[derive(
    Clone, herald::serde::Serialize, herald::serde::Deserialize, herald::schemars::JsonSchema,
)]
#[serde(crate = "::herald::serde")]
#[schemars(crate = "::herald::schemars")]
#[derive(herald::Event)]
#[event(
    type = "invoice_sent",
    direction = "outbound",
    destination = "mailer",
    pool = "events_outbound"
)]
struct InvoiceSent {
    r#type: String,
}

#[test]
fn works_with_the_reexported_serde_and_schemars() {
    let meta = InvoiceSent::META;
    assert_eq!(meta.event_type, "invoice_sent");
    assert_eq!(meta.pool(), Some("events_outbound"));
    assert_eq!(
        meta.description,
        Some(
            "Through the re-exports only, as generated code does: no direct serde or schemars names."
        )
    );
    let event = InvoiceSent {
        r#type: "reminder".into(),
    };
    assert_eq!(event.clone().r#type, "reminder");
}

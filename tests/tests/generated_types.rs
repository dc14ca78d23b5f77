//! What the generated types promise, checked on the build.rs output of the example domain.

use herald::{Backoff, Direction, DomainEvent, Entity, Event, Routing, Tier};
use integration_tests::domain::entities::{Account, AccountPlan, Contact, ContactStatus};
use integration_tests::domain::events::{
    AccountCreated, ContactArchived, ContactCreated, ContactUpdated, CrmSyncCompleted,
    StripePaymentReceived, WebhookOutboundContactSync,
};
use integration_tests::domain::{AppEvent, ContactEvent, EventType, REGISTRY};
use serde_json::json;

fn uuid(n: u128) -> herald::uuid::Uuid {
    herald::uuid::Uuid::from_u128(n)
}

fn at(rfc3339: &str) -> herald::chrono::DateTime<herald::chrono::Utc> {
    rfc3339.parse().expect("valid timestamp")
}

/// One value of every event type, so that adding an event without extending this test fails.
fn one_of_each() -> Vec<AppEvent> {
    let events = vec![
        AppEvent::from(AccountCreated {
            account_id: uuid(1),
            name: "Acme".into(),
            plan: "team".into(),
        }),
        ContactArchived {
            contact_id: uuid(2),
            archived_at: at("2026-11-01T10:00:00Z"),
            reason: None,
        }
        .into(),
        ContactCreated {
            contact_id: uuid(2),
            account_id: Some(uuid(1)),
            created_by: uuid(3),
        }
        .into(),
        ContactUpdated {
            contact_id: uuid(2),
            email: Some("ada@example.com".into()),
            name: None,
            tags: vec!["vip".into()],
            updated_by: uuid(3),
        }
        .into(),
        CrmSyncCompleted {
            integration_id: uuid(4),
            provider: "hubspot".into(),
            counts: json!({"created": 3, "updated": 1})
                .as_object()
                .cloned()
                .expect("object"),
            duration_ms: 1250.0,
        }
        .into(),
        StripePaymentReceived {
            event_id: "evt_1".into(),
            customer_id: "cus_1".into(),
            amount_cents: 4200.0,
            currency: "eur".into(),
            received_at: at("2026-11-02T09:30:00Z"),
        }
        .into(),
        WebhookOutboundContactSync {
            contact_id: uuid(2),
            operation: "upsert".into(),
            occurred_at: at("2026-11-02T09:31:00Z"),
        }
        .into(),
    ];
    let types: Vec<EventType> = events.iter().map(AppEvent::event_type).collect();
    assert_eq!(
        types,
        EventType::ALL,
        "one value per event type, in registry order"
    );
    events
}

#[test]
fn every_app_event_round_trips_through_json() {
    for event in one_of_each() {
        let wire = serde_json::to_value(&event).expect("serializes");
        assert_eq!(wire["type"], event.event_type().as_str(), "{wire}");
        assert!(wire["payload"].is_object(), "{wire}");
        let back: AppEvent = serde_json::from_value(wire.clone()).expect("deserializes");
        assert_eq!(back, event, "{wire}");
    }
}

#[test]
fn wire_format_uses_the_yaml_keys_and_rfc3339_instants() {
    let event = AppEvent::from(StripePaymentReceived {
        event_id: "evt_1".into(),
        customer_id: "cus_1".into(),
        amount_cents: 4200.0,
        currency: "eur".into(),
        received_at: at("2026-11-02T09:30:00Z"),
    });
    assert_eq!(
        serde_json::to_value(&event).expect("serializes"),
        json!({
            "type": "stripe_payment_received",
            "payload": {
                "event_id": "evt_1",
                "customer_id": "cus_1",
                "amount_cents": 4200.0,
                "currency": "eur",
                "received_at": "2026-11-02T09:30:00Z"
            }
        })
    );
}

#[test]
fn payloads_reject_what_the_yaml_does_not_declare() {
    let unknown_key =
        json!({"contact_id": uuid(1), "account_id": null, "created_by": uuid(2), "extra": 1});
    assert!(serde_json::from_value::<ContactCreated>(unknown_key).is_err());
    let json_array =
        json!({"integration_id": uuid(1), "provider": "x", "counts": [1, 2], "duration_ms": 1.0});
    assert!(
        serde_json::from_value::<CrmSyncCompleted>(json_array).is_err(),
        "`json` fields are objects"
    );
    let missing_nullable = json!({"contact_id": uuid(1), "created_by": uuid(2)});
    let parsed: ContactCreated =
        serde_json::from_value(missing_nullable).expect("nullable may be absent");
    assert_eq!(parsed.account_id, None);
}

#[test]
fn metadata_from_yaml_is_on_the_types() {
    let meta = StripePaymentReceived::META;
    assert_eq!(meta.event_type, "stripe_payment_received");
    assert_eq!(
        meta.routing,
        Routing::Domain {
            direction: Direction::Inbound,
            pool: "events_inbound"
        }
    );
    assert_eq!(meta.source, Some("stripe"));
    assert_eq!(meta.retry.attempts, 5);
    assert_eq!(meta.retry.backoff, Backoff::Exponential);
    assert_eq!(
        meta.description,
        Some("Stripe charge.succeeded webhook, post-signature-verification.")
    );

    let audit = CrmSyncCompleted::META;
    assert_eq!(audit.tier(), Tier::Audit);
    assert_eq!(audit.pool(), None);
    assert_eq!(audit.direction(), None);

    assert_eq!(WebhookOutboundContactSync::META.destination, Some("crm"));
    assert_eq!(ContactArchived::META.aggregate, Some("contact"));
    assert_eq!(ContactCreated::META.retry, herald::RetryPolicy::DEFAULT);
}

fn domain_event<E: DomainEvent>() -> &'static str {
    E::META.event_type
}

#[test]
fn domain_events_implement_the_domain_marker() {
    // `domain_event::<CrmSyncCompleted>()` does not compile: audit events are not DomainEvent.
    assert_eq!(domain_event::<ContactCreated>(), "contact_created");
    assert_eq!(
        domain_event::<StripePaymentReceived>(),
        "stripe_payment_received"
    );
}

#[test]
fn registry_lists_every_event_and_validates_untyped_payloads() {
    let types: Vec<&str> = REGISTRY.iter().map(|d| d.meta.event_type).collect();
    let expected: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, expected);

    let ok = json!({"contact_id": uuid(1), "account_id": null, "created_by": uuid(2)});
    assert_eq!(
        REGISTRY
            .validate("contact_created", &ok)
            .expect("valid")
            .meta,
        ContactCreated::META
    );

    let err = REGISTRY
        .validate("contact_deleted", &ok)
        .expect_err("unknown type");
    assert_eq!(
        err.to_string(),
        "unknown event type `contact_deleted`: it is not in the registry"
    );
    let err = REGISTRY
        .validate(
            "contact_created",
            &json!({"contact_id": "not-a-uuid", "created_by": uuid(2)}),
        )
        .expect_err("bad payload");
    assert!(
        err.to_string()
            .starts_with("payload of `contact_created` does not match its schema"),
        "{err}"
    );

    let schema = REGISTRY
        .get("contact_created")
        .expect("registered")
        .json_schema();
    let schema = serde_json::to_value(schema).expect("JSON");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["contact_id", "created_by"]));
}

#[test]
fn event_type_names_parse_back() {
    for event_type in EventType::ALL {
        assert_eq!(event_type.as_str().parse::<EventType>(), Ok(event_type));
        assert_eq!(event_type.meta().event_type, event_type.to_string());
    }
    let err = "contact_deleted".parse::<EventType>().expect_err("unknown");
    assert_eq!(err.event_type(), "contact_deleted");
}

#[test]
fn aggregate_enums_hold_exactly_their_change_events() {
    assert_eq!(ContactEvent::AGGREGATE, "contact");
    let created = ContactCreated {
        contact_id: uuid(1),
        account_id: None,
        created_by: uuid(2),
    };
    let as_app = AppEvent::from(ContactEvent::from(created.clone()));
    assert_eq!(
        ContactEvent::try_from(as_app),
        Ok(ContactEvent::ContactCreated(created))
    );

    let outbound = AppEvent::from(WebhookOutboundContactSync {
        contact_id: uuid(1),
        operation: "upsert".into(),
        occurred_at: at("2026-11-02T09:31:00Z"),
    });
    assert!(
        ContactEvent::try_from(outbound).is_err(),
        "outbound events are not the aggregate's changes"
    );
}

#[test]
fn entities_carry_fields_from_behaviors_relationships_and_enums() {
    let meta = Contact::META;
    assert_eq!(meta.name, "contact");
    assert_eq!(
        meta.emits,
        ["contact_archived", "contact_created", "contact_updated"]
    );
    let names: Vec<&str> = meta.fields.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "id",
            "email",
            "name",
            "phone",
            "status",
            "lifetime_value",
            "birthday",
            "account_id",
            "created_at",
            "updated_at",
            "deleted_at",
            "created_by",
            "updated_by"
        ]
    );
    let email = meta
        .fields
        .iter()
        .find(|f| f.name == "email")
        .expect("email");
    assert_eq!(
        (
            email.max_length,
            email.index,
            email.required,
            email.nullable
        ),
        (Some(255), true, true, false)
    );
    let phone = meta
        .fields
        .iter()
        .find(|f| f.name == "phone")
        .expect("phone");
    assert_eq!((phone.required, phone.nullable), (false, false));
    let value = meta
        .fields
        .iter()
        .find(|f| f.name == "lifetime_value")
        .expect("lifetime_value");
    assert_eq!((value.field_type, value.nullable), ("decimal", true));

    assert_eq!(
        ContactStatus::ALL.map(ContactStatus::as_str),
        ["active", "archived"]
    );
    assert_eq!(
        serde_json::to_value(AccountPlan::Enterprise).expect("json"),
        json!("enterprise")
    );
    assert_eq!(Account::META.emits, ["account_created"]);
}

#[test]
fn decimals_are_exact_on_the_wire() {
    let contact: Contact = serde_json::from_value(json!({
        "id": uuid(1), "email": "a@example.com", "name": "Ada", "status": "active",
        "lifetime_value": "1234.10", "birthday": "1990-12-10", "account_id": null,
        "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z",
        "deleted_at": null, "created_by": null, "updated_by": null
    }))
    .expect("a contact");
    assert_eq!(
        contact.lifetime_value.map(|v| v.to_string()),
        Some("1234.10".into())
    );
    assert_eq!(contact.phone, None, "optional fields may be absent");
    let wire = serde_json::to_value(&contact).expect("serializes");
    assert_eq!(wire["lifetime_value"], json!("1234.10"));
    assert!(
        wire.get("phone").is_none(),
        "absent optional fields stay absent"
    );
}

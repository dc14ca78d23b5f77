use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_created", direction = "change", aggregate = "contact", pool = "batch")]
struct Other {
    id: u64,
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_updated", direction = "change", aggregate = "contact", pool = "events_inbound_bulk")]
struct ContactCreated {
    contact_id: u64,
}

fn main() {
    let _ = <ContactCreated as herald::Event>::META;
}

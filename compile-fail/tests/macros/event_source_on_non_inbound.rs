use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_created", direction = "change", aggregate = "contact", source = "stripe")]
struct ContactCreated {
    contact_id: u64,
}

fn main() {
    let _ = <ContactCreated as herald::Event>::META;
}

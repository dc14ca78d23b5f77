use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_created", direction = "change", aggregate = "contact")]
struct ContactCreated<T> {
    contact_id: T,
}

fn main() {
    let _ = <ContactCreated<u64> as herald::Event>::META;
}

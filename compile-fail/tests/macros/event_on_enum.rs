use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "contact_changed", direction = "change", aggregate = "contact")]
enum ContactChanged {
    Created { contact_id: u64 },
    Archived { contact_id: u64 },
}

fn main() {
    let _ = <ContactChanged as herald::Event>::META;
}

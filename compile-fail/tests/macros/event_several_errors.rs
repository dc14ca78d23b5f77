use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "Contact-Created", direction = "sideways", aggregate = "contact", retry(attempts = 0), colour = "blue")]
struct ContactCreated {
    contact_id: u64,
}

fn main() {
    fn assert_domain<E: herald::DomainEvent>() {}
    assert_domain::<ContactCreated>();
    let _ = <ContactCreated as herald::Event>::META;
}

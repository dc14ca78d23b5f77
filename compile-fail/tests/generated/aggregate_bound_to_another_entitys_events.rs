// The events enum must be the entity's own.
use herald::uuid::Uuid;
use app::domain::ContactEvent;

#[derive(Default, serde::Serialize, serde::Deserialize, herald::Aggregate)]
#[aggregate(entity = "account", id = account_id, events = ContactEvent)]
struct Account {
    account_id: Uuid,
}

fn main() {}

// A contact decides contact events only: an account's event does not fit its stream.
use herald::uuid::Uuid;
use herald::{Decide, JobQueue};
use app::domain::ContactEvent;
use app::domain::events::AccountCreated;

#[derive(Default, serde::Serialize, serde::Deserialize, herald::Aggregate)]
#[aggregate(entity = "contact", id = contact_id)]
struct Contact {
    contact_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Decide for Contact {
    type Command = ();
    type Error = Never;

    fn decide(&self, _: (), _: &mut JobQueue) -> Result<Vec<ContactEvent>, Never> {
        Ok(vec![
            AccountCreated {
                account_id: Uuid::nil(),
                name: "Acme".into(),
                plan: "team".into(),
            }
            .into(),
        ])
    }

    fn apply(&mut self, _: &ContactEvent) {}
}

fn main() {}

// An aggregate folds the change events of an entity declared in entities/.
use herald::uuid::Uuid;

#[derive(Default, serde::Serialize, serde::Deserialize, herald::Aggregate)]
#[aggregate(entity = "invoice", id = invoice_id)]
struct Invoice {
    invoice_id: Uuid,
}

fn main() {}

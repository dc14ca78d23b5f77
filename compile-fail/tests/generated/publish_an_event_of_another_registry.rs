// A generated bus publishes the events of its registry, each with its own payload type, and
// nothing else.
use app::domain::TypedEventBus;

#[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "invoice_sent", direction = "outbound", destination = "billing")]
struct InvoiceSent {
    invoice_id: u64,
}

async fn send(store: herald::SqliteStore) {
    let bus = TypedEventBus::new(store.clone());
    let mut tx = store.begin().await.unwrap();
    bus.publish(&mut tx, 1, InvoiceSent { invoice_id: 1 }).await.unwrap();
}

fn main() {}

// Subscribers are typed by the payload they receive, which must be an event of the registry.
use app::domain::TypedEventBus;

#[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "invoice_sent", direction = "outbound", destination = "billing")]
struct InvoiceSent {
    invoice_id: u64,
}

fn wire(bus: &TypedEventBus) {
    bus.subscribe("mailer", |_: herald::Envelope<InvoiceSent>| async {
        Ok::<_, herald::HandlerError>(())
    });
}

fn main() {}

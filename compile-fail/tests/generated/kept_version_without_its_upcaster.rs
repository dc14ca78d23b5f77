// A version kept in `events/<type>.v<N>.yaml` generates its payload struct and this impl; until
// the application writes the upcaster into the next version, nothing compiles.
#[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, herald::Event)]
#[event(type = "invoice_sent", direction = "outbound", destination = "billing", version = 2)]
struct InvoiceSent {
    invoice_id: u64,
    currency: String,
}

// As generated from `events/invoice_sent.v1.yaml`.
#[derive(serde::Serialize, serde::Deserialize)]
struct InvoiceSentV1 {
    invoice_id: u64,
}

impl herald::KeptVersion for InvoiceSentV1 {
    const EVENT_TYPE: &'static str = "invoice_sent";
    const VERSION: u32 = 1;
    const FILE: &'static str = "events/invoice_sent.v1.yaml";
    type Next = InvoiceSent;
}

fn main() {}

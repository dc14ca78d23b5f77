// Only types declared in events/ (or deriving herald::Event) are events.
#[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Invoice {
    id: u64,
}

fn registered<E: herald::Event>() {}

fn main() {
    registered::<Invoice>();
}

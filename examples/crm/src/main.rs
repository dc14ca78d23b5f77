//! Lists the events the example CRM declares, with their routing.

use crm::generated::REGISTRY;

fn main() {
    println!(
        "{} event types declared in events/ and entities/:",
        REGISTRY.len()
    );
    for descriptor in REGISTRY.iter() {
        let meta = descriptor.meta;
        let routing = match (meta.direction(), meta.pool()) {
            (Some(direction), Some(pool)) => format!("{} via {pool}", direction.as_str()),
            _ => "audit (never triggers work)".to_owned(),
        };
        println!(
            "  {:<32} v{}  {:<8} {routing}",
            meta.event_type,
            meta.version,
            meta.aggregate.unwrap_or("-")
        );
    }
}

#[derive(Default, herald::Aggregate)]
#[aggregate(entiti = "contact", id = "contact_id")]
struct Contact {
    contact_id: u64,
}

#[derive(Default, herald::Aggregate)]
#[aggregate(entity = "Contact", id = missing_field)]
struct Other {
    contact_id: u64,
}

#[derive(Default, herald::Aggregate)]
struct NoAttribute {
    id: u64,
}

fn main() {}

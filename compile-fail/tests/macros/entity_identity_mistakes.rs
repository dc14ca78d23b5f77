//! `plural` and `table` are snake_case, `pattern` an identifier, `writes` a boolean.

#[derive(herald::Entity)]
#[entity(name = "deal", plural = "Deals", table = "deal-rows", pattern = "not a family", writes = "no")]
struct Deal {
    id: String,
}

fn main() {}

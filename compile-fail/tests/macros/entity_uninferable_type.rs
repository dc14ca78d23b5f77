#[derive(herald::Entity)]
#[entity(name = "contact")]
struct Contact {
    status: Status,
    tags: Vec<String>,
}

fn main() {
    let _ = <Contact as herald::Entity>::META;
}

enum Status {
    Active,
    Archived,
}

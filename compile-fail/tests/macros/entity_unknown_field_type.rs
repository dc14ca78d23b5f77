#[derive(herald::Entity)]
#[entity(name = "contact")]
struct Contact {
    #[entity(type = "text")]
    email: String,
    #[entity(type = "Integer")]
    age: u32,
}

fn main() {
    let _ = <Contact as herald::Entity>::META;
}

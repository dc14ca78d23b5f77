#[derive(herald::Entity)]
#[entity(name = "contact")]
struct Contact {
    #[entity(max_length = 3)]
    age: u32,
}

fn main() {
    let _ = <Contact as herald::Entity>::META;
}

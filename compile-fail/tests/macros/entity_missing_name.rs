#[derive(herald::Entity)]
#[entity(emits = ["contact_created"])]
struct Contact {
    email: String,
}

fn main() {
    let _ = <Contact as herald::Entity>::META;
}

#[derive(herald::Entity)]
struct Company {
    name: String,
}

#[derive(herald::Entity)]
#[entity(name = "contact")]
struct Contact {
    balance: f64,
    score: Option<f32>,
}

fn main() {
    let _ = <Contact as herald::Entity>::META;
}

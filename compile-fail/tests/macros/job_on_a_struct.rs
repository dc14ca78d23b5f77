#[herald::job_handler]
struct Import;

fn main() {}

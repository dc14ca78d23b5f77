// Repositories read and write SQL tables; the in-memory store has none.
use integration_tests::domain::TypedEventBus;
use integration_tests::domain::entities::ContactRepository;

fn repository(bus: &TypedEventBus<herald::MemoryBackend>) {
    let _contacts = ContactRepository::new(bus);
}

fn main() {}

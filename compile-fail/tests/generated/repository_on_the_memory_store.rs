// Repositories read and write SQL tables; the in-memory store has none.
use app::domain::TypedEventBus;
use app::domain::entities::ContactRepository;

fn repository(bus: &TypedEventBus<herald::MemoryBackend>) {
    let _contacts = ContactRepository::new(bus);
}

fn main() {}

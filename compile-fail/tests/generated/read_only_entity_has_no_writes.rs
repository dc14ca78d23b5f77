// `opportunity` is declared `generate: { writes: false }` (the CRM owns it): its repository
// reads, and writing through it does not compile.
use app::domain::TypedEventBus;
use app::domain::entities::OpportunityRepository;

async fn close(store: herald::SqliteStore, id: herald::uuid::Uuid) {
    let bus = TypedEventBus::new(store.clone());
    let mut tx = store.begin().await.unwrap();
    OpportunityRepository::new(&bus).delete(&mut tx, id).await.unwrap();
}

fn main() {}

// Publishing writes into the caller's transaction; a pool (autocommit) is not one, so an event
// can never be stored without the rows it describes.
use app::domain::TypedEventBus;
use app::domain::events::ContactCreated;

async fn create(store: herald::SqliteStore, payload: ContactCreated) {
    let bus = TypedEventBus::new(store.clone());
    let id = payload.contact_id;
    bus.publish(store.backend().pool(), id, payload).await.unwrap();
}

fn main() {}

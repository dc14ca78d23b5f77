// Audit events record what happened; only domain events may trigger work.
use app::domain::events::CrmSyncCompleted;

fn trigger_on<E: herald::DomainEvent>() {}

fn main() {
    trigger_on::<CrmSyncCompleted>();
}

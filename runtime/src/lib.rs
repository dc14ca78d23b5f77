//! Herald: typed domain events made durable.
//!
//! Applications depend on this crate only. It holds the traits that the code generated from
//! `events/*.yaml` and `entities/*.yaml` implements ([`Event`], [`DomainEvent`], [`Entity`]),
//! the [`Registry`] of event metadata, and the runtime that makes events durable: a
//! transactional outbox ([`Store`]) on SQLite, PostgreSQL or memory, the [`EventBus`] that
//! publishes into the caller's transaction, and the drain that delivers to subscribers.

mod aggregate;
mod aggregate_store;
mod bus;
mod drain;
mod entity;
mod event;
mod job;
mod job_context;
mod projection;
mod registry;
mod retry;
mod runs;
mod store;
mod worker;

pub use aggregate::{Aggregate, AggregateEvents, Decide, Given, JobQueue, Then, ThenState};
pub use aggregate_store::{AggregateStore, ExecuteError, Executed, Loaded, Upcaster};
pub use bus::{Catalog, Envelope, EventBus, HandlerError, InCatalog, Publish, PublishError};
pub use drain::{DrainBuilder, DrainConfig, DrainHandle};
pub use entity::{Entity, EntityMeta, FieldMeta};
pub use event::{Backoff, Direction, DomainEvent, Event, EventMeta, RetryPolicy, Routing, Tier};
pub use herald_macros::{Aggregate, Entity, Event, job_handler};
pub use job::{DEFAULT_JOB_POOL, Job, Jobs, Trigger, TriggerEvent, TriggerEvents, TriggersIn};
pub use job_context::{JobContext, JobError, RunAt};
pub use projection::{Projection, ProjectionError, Projector, ProjectorHandle};
pub use registry::{EventDescriptor, PayloadError, Registry, UnknownEventType};
pub use retry::RetryTiming;
pub use runs::{EnqueueError, JobClient, Start};
#[doc(hidden)]
pub use store::{
    AttemptOutcome, AttemptResult, ClaimedRun, JobStore, NewEvent, NewRun, Rescued, StreamEvent,
};
pub use store::{
    Backend, Checkpoint, DeadLetter, Lane, MemoryBackend, MemoryStore, MemoryTransaction,
    OutboxStats, PostgresBackend, PostgresStore, ProjectedEvent, RecordedEvent, Redrive, RunFilter,
    RunInfo, RunStatus, SqliteBackend, SqliteStore, Store, StoreError, memory, postgres,
    postgres_with, sqlite,
};
pub use worker::{Worker, WorkerConfig, WorkerHandle};

// Generated code names these through `::herald::…` so that the application needs no direct
// dependency on them (and cannot pick an incompatible version).
pub use chrono;
pub use futures_util;
pub use rust_decimal;
pub use schemars;
pub use serde;
pub use serde_json;
pub use sqlx;
pub use uuid;

/// Used by generated code; not part of the API.
#[doc(hidden)]
pub mod __private {
    /// `a == b` in const context.
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

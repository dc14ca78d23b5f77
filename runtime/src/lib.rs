//! Herald: typed domain events made durable.
//!
//! Applications depend on this crate only. It holds the traits that the code generated from
//! `events/*.yaml` and `entities/*.yaml` implements ([`Event`], [`DomainEvent`], [`Entity`]),
//! the [`Registry`] of event metadata, and the runtime that makes events durable: a
//! transactional outbox ([`Store`]) on SQLite, PostgreSQL or memory, the [`EventBus`] that
//! publishes into the caller's transaction, the drain that delivers to subscribers, durable
//! [`Job`]s, event-sourced [`Aggregate`]s and [`Projection`]s.
//!
//! The root holds what an application uses; [`ops`] what operators look at (dead letters, run
//! queries, totals); [`testing`] what tests use; `relay` (feature `nats`) the relay to NATS
//! JetStream.

#![warn(missing_docs, unreachable_pub)]

mod aggregate;
mod bus;
mod clock;
mod drain;
mod entity;
mod event;
mod jobs;
pub mod metrics;
pub mod ops;
mod outage;
mod outbox;
mod projection;
#[cfg(feature = "nats")]
pub mod relay;
mod retry;
mod service;
mod store;
pub mod testing;
pub mod trace;

pub use aggregate::{
    Aggregate, AggregateEvents, AggregateStore, CommandContext, Decide, ExecuteError, Executed,
    JobQueue, Loaded,
};
pub use bus::EventBus;
pub use clock::{Clock, SystemClock};
pub use drain::subscribers::HandlerError;
pub use drain::{DrainBuilder, DrainConfig, DrainSummary};
pub use entity::{Entity, EntityMeta, FieldMeta};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use entity::{Page, RepositoryBackend, RepositoryError, Rows, Select};
pub use event::catalog::{Catalog, InCatalog};
pub use event::envelope::Envelope;
pub use event::registry::{EventDescriptor, PayloadError, Registry, UnknownEventType};
pub use event::upcast::{KeptUpcaster, KeptVersion, UpcastError, UpcastFrom, Upcaster};
pub use event::{Backoff, Direction, DomainEvent, Event, EventMeta, RetryPolicy, Routing, Tier};
pub use herald_macros::{Aggregate, Entity, Event, job_handler};
pub use jobs::worker::{Worker, WorkerConfig, WorkerSummary};
pub use jobs::{
    DEFAULT_JOB_POOL, EnqueueError, Job, JobClient, JobContext, JobError, Jobs, RunAt, Start,
    Trigger, TriggerEvent, TriggerEvents, TriggersIn,
};
pub use outbox::{Publish, PublishError};
pub use projection::{Projection, ProjectionError, Projector};
pub use retry::RetryTiming;
pub use service::ServiceHandle;
pub use store::{
    Backend, Checkpoint, MemoryBackend, MemoryStore, MemoryTransaction, ProjectedEvent, Store,
    StoreError, memory,
};
#[cfg(feature = "postgres")]
pub use store::{PostgresBackend, PostgresStore, postgres, postgres_with};
#[cfg(feature = "sqlite")]
pub use store::{SqliteBackend, SqliteStore, sqlite};
pub use trace::TraceContext;

/// The rows and operations between the runtime and a backend. Not part of the API: public only
/// because [`Backend`]'s hidden methods name them.
#[doc(hidden)]
pub mod seam {
    pub use crate::store::seam::*;
}

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

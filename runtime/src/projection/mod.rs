//! Read models: projections fold the outbox's events, in order, into query tables, in the same
//! transaction as their checkpoint, so they can be rebuilt from position 0 at any time.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::drain::subscribers::HandlerError;
use crate::event::upcast::UpcastError;
use crate::ops::ProjectionLag;
use crate::outage::Outage;
use crate::store::{Backend, Checkpoint, ProjectedEvent, Store, StoreError};

/// A read model. `apply` and `reset` write through the transaction they are given, which also
/// moves the checkpoint: the read model and its position commit together.
pub trait Projection<B: Backend>: Send + Sync + 'static {
    /// Stable name: the key of its checkpoint.
    fn name(&self) -> &str;

    /// Folds one event (of any type; ignore the others) into the read model.
    fn apply<'a>(
        &'a self,
        tx: &'a mut B::Transaction<'static>,
        event: &'a ProjectedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;

    /// Empties the read model, before a rebuild from position 0.
    fn reset<'a>(
        &'a self,
        tx: &'a mut B::Transaction<'static>,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// Why a projection stopped. Its transaction was rolled back: read model and checkpoint stay
/// where they were.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The projection's `apply` failed on an event.
    #[error("projection `{projection}` failed on event {event_id} (position {position}): {error}")]
    Apply {
        /// The projection's name.
        projection: String,
        /// The event it failed on.
        event_id: uuid::Uuid,
        /// That event's position in the outbox.
        position: i64,
        /// What `apply` returned.
        error: HandlerError,
    },
    /// An event stored at an older version could not be brought to the current one.
    #[error(
        "projection `{projection}` cannot read event {event_id} (position {position}): {error}"
    )]
    Upcast {
        /// The projection's name.
        projection: String,
        /// The event it could not read.
        event_id: uuid::Uuid,
        /// That event's position in the outbox.
        position: i64,
        /// Why.
        error: UpcastError,
    },
    /// The projection's `reset` failed.
    #[error("projection `{projection}` could not be reset: {error}")]
    Reset {
        /// The projection's name.
        projection: String,
        /// What `reset` returned.
        error: HandlerError,
    },
}

/// Brings an event stored at an older version to its type's current one, in place.
type Upcast = Arc<dyn Fn(&mut ProjectedEvent) -> Result<(), UpcastError> + Send + Sync>;

/// Runs one projection over one store.
pub struct Projector<P: Projection<B>, B: Backend> {
    store: Store<B>,
    projection: P,
    batch_size: u32,
    upcast: Option<Upcast>,
}

impl<P: Projection<B>, B: Backend> Projector<P, B> {
    /// A projector of `projection` over `store`, folding 500 events per transaction. Events
    /// reach it as stored, whatever their version: [`crate::EventBus::projector`] makes one
    /// that upcasts them first.
    pub fn new(store: Store<B>, projection: P) -> Self {
        Self {
            store,
            projection,
            batch_size: 500,
            upcast: None,
        }
    }

    pub(crate) fn upcasting(
        mut self,
        upcast: impl Fn(&mut ProjectedEvent) -> Result<(), UpcastError> + Send + Sync + 'static,
    ) -> Self {
        self.upcast = Some(Arc::new(upcast));
        self
    }

    /// Events folded per transaction, at most (at least 1).
    pub fn batch_size(mut self, size: u32) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// How far the projection is behind the outbox: what it has yet to fold, and what an open
    /// transaction holds back from it (PostgreSQL). For a lag metric or alert.
    pub async fn lag(&self) -> Result<ProjectionLag, StoreError> {
        self.store
            .backend()
            .projection_lag(self.projection.name())
            .await
    }

    /// The projection it runs, e.g. to query its read model.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Folds every event committed since the checkpoint; returns how many.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut folded = 0;
        loop {
            let batch = self.step(false).await?;
            folded += batch;
            if batch < u64::from(self.batch_size) {
                return Ok(folded);
            }
        }
    }

    /// Empties the read model and folds every event from position 0 again.
    pub async fn rebuild(&self) -> Result<u64, ProjectionError> {
        let mut folded = self.step(true).await?;
        if folded == u64::from(self.batch_size) {
            folded += self.catch_up().await?;
        }
        Ok(folded)
    }

    /// One transaction: (reset,) read a batch after the checkpoint, apply it, move the
    /// checkpoint, commit.
    async fn step(&self, reset: bool) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let backend = self.store.backend();
        let mut tx = self.store.begin().await?;
        let mut checkpoint = backend
            .load_checkpoint(&mut tx, name, self.store.now())
            .await?;
        if reset {
            self.projection
                .reset(&mut tx)
                .await
                .map_err(|error| ProjectionError::Reset {
                    projection: name.to_owned(),
                    error,
                })?;
            checkpoint = Checkpoint::default();
        }
        let mut batch = backend
            .read_committed(&mut tx, checkpoint, self.batch_size)
            .await?;
        if let Some(upcast) = &self.upcast {
            for (_, event) in &mut batch {
                upcast(event).map_err(|error| ProjectionError::Upcast {
                    projection: name.to_owned(),
                    event_id: event.id,
                    position: event.position,
                    error,
                })?;
            }
        }
        let count = batch.len() as u64;
        for (at, event) in &batch {
            self.projection
                .apply(&mut tx, event)
                .await
                .map_err(|error| ProjectionError::Apply {
                    projection: name.to_owned(),
                    event_id: event.id,
                    position: event.position,
                    error,
                })?;
            checkpoint = *at;
        }
        if count > 0 || reset {
            backend
                .save_checkpoint(&mut tx, name, checkpoint, self.store.now())
                .await?;
        }
        self.store.commit(tx).await?;
        Ok(count)
    }

    /// Keeps the projection current: catches up whenever events commit (and every
    /// `poll_interval`), until the handle is shut down.
    pub fn spawn(self, poll_interval: Duration) -> ProjectorHandle
    where
        P: Projection<B>,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            self.store.ensure_listening().await;
            let mut woken = self.store.wakes().events.subscribe();
            let mut outage = Outage::new("projector");
            while !*stopped.borrow() {
                woken.borrow_and_update();
                match self.catch_up().await {
                    Ok(_) => outage.succeeded(&self.projection.name()),
                    Err(error) => outage.failed(&self.projection.name(), &error),
                }
                tokio::select! {
                    _ = woken.changed() => {}
                    _ = tokio::time::sleep(poll_interval) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        ProjectorHandle { stop, task }
    }
}

/// A running projector.
#[derive(Debug)]
pub struct ProjectorHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProjectorHandle {
    /// Stops the projector once its current catch-up (if any) ends, and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "projector task failed");
        }
    }
}

//! The transactional outbox: events, and the job runs they trigger, written as rows of the
//! caller's transaction.

mod checks;
mod publish;

use std::sync::Arc;

use tracing::Instrument;
use uuid::Uuid;

pub(crate) use publish::TenantChoice;
pub use publish::{Publish, PublishError};

use crate::event::catalog::Catalog;
use crate::jobs::Jobs;
use crate::store::{Backend, NewEvent, NewRun, Store};

/// Where the events of registry `C` are written: the store, and the jobs their triggers
/// enqueue. Shared by the bus and the aggregate store, so both publish the same way.
pub(crate) struct Outbox<C: Catalog, B: Backend> {
    pub(crate) store: Store<B>,
    pub(crate) jobs: Arc<Jobs<C>>,
}

impl<C: Catalog, B: Backend> Clone for Outbox<C, B> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

impl<C: Catalog, B: Backend> Outbox<C, B> {
    /// Stamps `event` with the metadata of its type, as a row to insert.
    pub(crate) fn row<P>(
        &self,
        meta: &crate::event::EventMeta,
        event: Publish<P>,
        serialize: impl FnOnce(&P) -> Result<String, PublishError>,
    ) -> Result<NewEvent, PublishError> {
        event.into_row(
            meta,
            self.store.is_multi_tenant(),
            self.store.now(),
            serialize,
        )
    }

    /// Inserts the rows, and the runs their triggers enqueue, in the caller's transaction.
    pub(crate) async fn insert(
        &self,
        tx: &mut B::Transaction<'_>,
        rows: Vec<NewEvent>,
    ) -> Result<Vec<Uuid>, PublishError> {
        self.insert_reporting(tx, rows).await.map(|(ids, _)| ids)
    }

    /// [`Outbox::insert`], which also says which of the ids were new: the others were stored
    /// before, and this insert changed nothing for them.
    pub(crate) async fn insert_reporting(
        &self,
        tx: &mut B::Transaction<'_>,
        rows: Vec<NewEvent>,
    ) -> Result<(Vec<Uuid>, Vec<Uuid>), PublishError> {
        for row in &rows {
            checks::check_payload_text(row.event_type, &row.payload)?;
        }
        let span = match rows.as_slice() {
            [row] => tracing::debug_span!(
                "herald.publish",
                event.id = %row.id,
                event.r#type = row.event_type,
            ),
            _ => tracing::debug_span!("herald.publish", events = rows.len()),
        };
        async move {
            // Inside the publish span, so that its deliveries and jobs become its children.
            let mut rows = rows;
            for row in &mut rows {
                row.trace = crate::trace::or_current(row.trace.take());
            }
            let inserted = self
                .store
                .backend()
                .insert_events(tx, &rows, self.store.now())
                .await?;
            tracing::trace!(inserted = inserted.len(), "published");
            for row in rows.iter().filter(|row| inserted.contains(&row.id)) {
                crate::metrics::published(row.event_type, 1);
            }
            let runs = self.triggered_runs(&rows, &inserted)?;
            if !runs.is_empty() {
                let ids = self
                    .store
                    .backend()
                    .insert_runs(tx, &runs, self.store.now())
                    .await?;
                crate::metrics::runs_enqueued(&runs, &ids);
            }
            Ok((rows.into_iter().map(|row| row.id).collect(), inserted))
        }
        .instrument(span)
        .await
    }

    /// The runs that the newly stored events trigger. An event id that was already stored
    /// triggers nothing again: the id is the idempotency key of its jobs too.
    fn triggered_runs(
        &self,
        rows: &[NewEvent],
        inserted: &[Uuid],
    ) -> Result<Vec<NewRun>, PublishError> {
        let mut runs = Vec::new();
        if self.jobs.names().is_empty() {
            return Ok(runs);
        }
        for row in rows {
            if row.tier != "domain" || !inserted.contains(&row.id) {
                continue;
            }
            for binding in self.jobs.bindings_of(row.event_type) {
                let input = binding.trigger.input_for(&row.payload).map_err(|source| {
                    PublishError::TriggerInput {
                        event_type: row.event_type,
                        job: binding.name,
                        source,
                    }
                })?;
                let id = Uuid::now_v7();
                runs.push(NewRun {
                    id,
                    job: binding.name,
                    pool: binding.pool,
                    dedupe_key: (binding.dedupe)(&input),
                    input,
                    max_attempts: binding.max_attempts,
                    run_at: None,
                    scope_type: row.aggregate_type.map(str::to_owned),
                    scope_id: row.aggregate_id.clone(),
                    event_id: Some(row.id),
                    parent_id: None,
                    root_id: id,
                    tenant_id: row.tenant_id.clone(),
                    child_key: None,
                    trace: row.trace.clone(),
                });
            }
        }
        Ok(runs)
    }
}

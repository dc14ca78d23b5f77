//! Enqueueing runs in the caller's transaction, and the query API over runs.

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use super::job::{Job, RunAt};
use crate::ops::JobStats;
use crate::outbox::TenantChoice;
use crate::store::{Backend, DueRuns, NewRun, RunFilter, RunInfo, Store, StoreError};

/// Why a run was not enqueued. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The database refused the insert.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input does not serialize to JSON.
    #[error("input of job `{job}` cannot be serialized: {source}")]
    Serialize {
        /// The job's name.
        job: &'static str,
        /// What `serde_json` reported.
        #[source]
        source: serde_json::Error,
    },
    /// A multi-tenant store got a run with no tenant and no explicit [`Start::without_tenant`].
    #[error(
        "a run of job `{job}` was started without a tenant, but this store is multi-tenant: set \
         `Start::tenant(..)`, or `Start::without_tenant()` for a run that belongs to no tenant"
    )]
    TenantRequired {
        /// The job's name.
        job: &'static str,
    },
}

/// A run to enqueue, with its options.
#[derive(Debug, Clone)]
#[must_use = "a Start does nothing until it is passed to `JobClient::start_with`"]
pub struct Start<I> {
    input: I,
    at: RunAt,
    scope: Option<(String, String)>,
    tenant: TenantChoice,
}

impl<I> Start<I> {
    /// A run with this input, due at once, concerning no aggregate.
    pub fn new(input: I) -> Self {
        Self {
            input,
            at: RunAt::Now,
            scope: None,
            tenant: TenantChoice::Unset,
        }
    }

    /// The tenant the run belongs to (required on a multi-tenant store, unless
    /// [`Start::without_tenant`]); its children inherit it.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = TenantChoice::Some(tenant.into());
        self
    }

    /// Says explicitly that the run belongs to no tenant, which a multi-tenant store accepts.
    pub fn without_tenant(mut self) -> Self {
        self.tenant = TenantChoice::None;
        self
    }

    /// Schedules the run: it stays `pending` until then.
    pub fn at(mut self, at: RunAt) -> Self {
        self.at = at;
        self
    }

    /// The aggregate the run concerns, for `RunFilter::scope`.
    pub fn scope(
        mut self,
        scope_type: impl Into<String>,
        scope_id: impl std::fmt::Display,
    ) -> Self {
        self.scope = Some((scope_type.into(), scope_id.to_string()));
        self
    }
}

/// Enqueues and inspects runs on one store; from [`Store::jobs`].
#[derive(Debug, Clone)]
pub struct JobClient<B: Backend> {
    store: Store<B>,
}

impl<B: Backend> Store<B> {
    /// The job API of this store.
    pub fn jobs(&self) -> JobClient<B> {
        JobClient {
            store: self.clone(),
        }
    }
}

pub(crate) fn new_run<J: Job>(
    input: &J::Input,
    run_at: Option<DateTime<Utc>>,
    scope: Option<(String, String)>,
) -> Result<NewRun, EnqueueError> {
    let id = Uuid::now_v7();
    let (scope_type, scope_id) = scope.unzip();
    Ok(NewRun {
        id,
        job: J::NAME,
        pool: J::POOL,
        input: serde_json::to_string(input).map_err(|source| EnqueueError::Serialize {
            job: J::NAME,
            source,
        })?,
        max_attempts: J::RETRY.max_attempts().get(),
        run_at,
        dedupe_key: J::dedupe_key(input),
        scope_type,
        scope_id,
        event_id: None,
        parent_id: None,
        root_id: id,
        tenant_id: None,
        child_key: None,
        trace: crate::trace::TraceContext::current(),
    })
}

impl<B: Backend> JobClient<B> {
    /// Enqueues a run of `J` in the caller's transaction: it exists if and only if the
    /// transaction commits. Returns its id, or the id of the live run its dedupe key collapses
    /// onto.
    pub async fn start<J: Job>(
        &self,
        tx: &mut B::Transaction<'_>,
        input: J::Input,
    ) -> Result<Uuid, EnqueueError> {
        self.start_with::<J>(tx, Start::new(input)).await
    }

    /// Enqueues a run of `J` with the options of `start`, like [`JobClient::start`].
    pub async fn start_with<J: Job>(
        &self,
        tx: &mut B::Transaction<'_>,
        start: Start<J::Input>,
    ) -> Result<Uuid, EnqueueError> {
        let now = self.store.now();
        let mut run = new_run::<J>(&start.input, start.at.resolve(now), start.scope)?;
        run.tenant_id = start
            .tenant
            .resolve(self.store.is_multi_tenant())
            .ok_or(EnqueueError::TenantRequired { job: J::NAME })?;
        let span = tracing::debug_span!("herald.job.enqueue", job = J::NAME, run.id = %run.id);
        let runs = std::slice::from_ref(&run);
        let ids = self
            .store
            .backend()
            .insert_runs(tx, runs, self.store.now())
            .instrument(span)
            .await?;
        crate::metrics::runs_enqueued(runs, &ids);
        Ok(ids.first().copied().unwrap_or(run.id))
    }

    /// Cancels the run and every run below it; returns how many were still live. A running
    /// attempt of a canceled run is stopped at its next heartbeat and can no longer write.
    pub async fn cancel(&self, run: Uuid) -> Result<u64, StoreError> {
        self.store
            .backend()
            .cancel_tree(run, self.store.now())
            .await
    }

    /// Sends a failed, timed-out or canceled run back to `pending` with a fresh set of attempts.
    pub async fn retry(&self, run: Uuid) -> Result<bool, StoreError> {
        let retried = self
            .store
            .backend()
            .retry_run(run, self.store.now())
            .await?;
        if retried {
            self.store.wakes().jobs.notify();
        }
        Ok(retried)
    }

    /// The run `run`, if it exists.
    pub async fn get(&self, run: Uuid) -> Result<Option<RunInfo>, StoreError> {
        self.store.backend().get_run(run).await
    }

    /// Runs matching `filter`, newest first.
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<RunInfo>, StoreError> {
        self.store.backend().list_runs(filter).await
    }

    /// Runs per pool and job by status: due and scheduled, running (with the earliest lease
    /// expiry), completed and failed, and the oldest due run.
    pub async fn stats(&self) -> Result<Vec<JobStats>, StoreError> {
        self.store.backend().job_stats(self.store.now()).await
    }

    /// Pending runs that have been due for at least `waiting`, per pool and job: what no worker
    /// has taken. A job that shows up here for long has no worker that knows it in its pool.
    pub async fn due(&self, waiting: std::time::Duration) -> Result<Vec<DueRuns>, StoreError> {
        let now = self.store.now();
        let before = chrono::Duration::from_std(waiting)
            .ok()
            .and_then(|waiting| now.checked_sub_signed(waiting))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.store.backend().due_runs(before).await
    }
}

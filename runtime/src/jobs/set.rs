//! The typed set of an application's jobs: registered once, it tells the bus what each event
//! enqueues and the worker how to run each job.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::job::{Job, JobContext};
use super::triggers::{Trigger, TriggersIn};
use crate::event::RetryPolicy;
use crate::event::catalog::Catalog;

/// What a registered job needs at enqueue time, without its type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobBinding {
    pub(crate) name: &'static str,
    pub(crate) pool: &'static str,
    pub(crate) max_attempts: u32,
    pub(crate) trigger: Trigger,
    pub(crate) dedupe: fn(&str) -> Option<String>,
}

/// What a registered job needs at run time, without its type.
pub(crate) struct Runner {
    pub(crate) pool: &'static str,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) concurrency: Option<u32>,
    pub(crate) run: fn(JobContext, String) -> BoxFuture<'static, Result<String, RunFailure>>,
}

/// Why an attempt did not complete.
#[derive(Debug)]
pub(crate) enum RunFailure {
    /// The job returned an error: retried while attempts are left.
    Failed(String),
    /// The stored input can never become the job's input: no attempt would do better, so the
    /// run fails at once.
    Undecodable(String),
}

/// The runners of a job set by job name.
pub(crate) type Runners = HashMap<&'static str, Arc<Runner>>;

fn run_erased<J: Job>(
    ctx: JobContext,
    input: String,
) -> BoxFuture<'static, Result<String, RunFailure>> {
    Box::pin(async move {
        let input: J::Input = serde_json::from_str(&input).map_err(|error| {
            RunFailure::Undecodable(format!(
                "stored input does not decode as the input of `{}`: {error}; failed without \
                 retrying, since no attempt can decode it",
                J::NAME
            ))
        })?;
        let output = J::run(ctx, input)
            .await
            .map_err(|error| RunFailure::Failed(error.to_string()))?;
        serde_json::to_string(&output).map_err(|error| {
            RunFailure::Failed(format!(
                "output of `{}` cannot be serialized: {error}",
                J::NAME
            ))
        })
    })
}

fn dedupe_from_json<J: Job>(input: &str) -> Option<String> {
    serde_json::from_str::<J::Input>(input)
        .ok()
        .and_then(|input| J::dedupe_key(&input))
}

/// The explicit, typed set of an application's jobs, registered once with
/// [`crate::EventBus::with_jobs`]: publishing an event enqueues, in the same transaction, a
/// run of every job here that it triggers, and [`crate::EventBus::worker`] runs them.
pub struct Jobs<C: Catalog> {
    by_event: BTreeMap<&'static str, Vec<JobBinding>>,
    names: Vec<&'static str>,
    runners: Runners,
    catalog: PhantomData<fn() -> C>,
}

impl<C: Catalog> Clone for Jobs<C> {
    fn clone(&self) -> Self {
        Self {
            by_event: self.by_event.clone(),
            names: self.names.clone(),
            runners: self.runners.clone(),
            catalog: PhantomData,
        }
    }
}

impl<C: Catalog> Default for Jobs<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Catalog> std::fmt::Debug for Jobs<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("jobs", &self.names).finish()
    }
}

impl<C: Catalog> Jobs<C> {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            by_event: BTreeMap::new(),
            names: Vec::new(),
            runners: HashMap::new(),
            catalog: PhantomData,
        }
    }

    /// Adds `J`; its triggers must be domain events of the registry `C` (checked at compile
    /// time).
    pub fn register<J>(mut self) -> Self
    where
        J: Job,
        J::Triggers: TriggersIn<C>,
    {
        if self.names.contains(&J::NAME) {
            return self;
        }
        self.names.push(J::NAME);
        self.runners.insert(
            J::NAME,
            Arc::new(Runner {
                pool: J::POOL,
                retry: J::RETRY,
                timeout: J::TIMEOUT,
                concurrency: J::CONCURRENCY,
                run: run_erased::<J>,
            }),
        );
        for trigger in J::TRIGGERS {
            self.by_event
                .entry(trigger.event_type)
                .or_default()
                .push(JobBinding {
                    name: J::NAME,
                    pool: J::POOL,
                    max_attempts: J::RETRY.max_attempts().get(),
                    trigger: *trigger,
                    dedupe: dedupe_from_json::<J>,
                });
        }
        self
    }

    /// The names of the jobs `event_type` triggers, in registration order.
    pub fn triggered_by(&self, event_type: &str) -> Vec<&'static str> {
        self.by_event
            .get(event_type)
            .map(|bindings| bindings.iter().map(|binding| binding.name).collect())
            .unwrap_or_default()
    }

    /// The domain events of the registry that trigger no registered job.
    pub fn untriggered_domain_events(&self) -> Vec<&'static str> {
        C::registry()
            .iter()
            .filter(|descriptor| descriptor.meta.direction().is_some())
            .map(|descriptor| descriptor.meta.event_type)
            .filter(|event_type| !self.by_event.contains_key(event_type))
            .collect()
    }

    /// The registered jobs' names, in registration order.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The pools of the registered jobs, sorted, each once.
    pub fn pools(&self) -> Vec<&'static str> {
        let mut pools: Vec<&'static str> =
            self.runners.values().map(|runner| runner.pool).collect();
        pools.sort_unstable();
        pools.dedup();
        pools
    }

    pub(crate) fn runners(&self) -> Runners {
        self.runners.clone()
    }

    pub(crate) fn bindings_of(&self, event_type: &str) -> &[JobBinding] {
        self.by_event
            .get(event_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

//! What the background services (drain, job worker) share: the handle that stops them, and the
//! rendering of a panic in user code.

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running background service: a drain or a job worker (a projector has its own handle).
/// Dropping it leaves the service running; [`ServiceHandle::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct ServiceHandle {
    service: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServiceHandle {
    /// Starts `run` on the current tokio runtime with a stop signal it must watch.
    pub(crate) fn spawn<F, Fut>(service: &'static str, run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(stopped));
        Self {
            service,
            stop,
            task,
        }
    }

    /// Stops the service: it claims nothing new, lets work in flight finish (up to its
    /// shutdown timeout), records what finished and releases the rest, so that other
    /// processes take it at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(service = self.service, %error, "service task failed");
        }
    }

    /// Whether the service has stopped (after a shutdown, or because its task ended).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The message of a panic caught in a subscriber or a job.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

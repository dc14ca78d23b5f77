//! One module per command group, each generic over the backend so that the same code serves
//! SQLite and PostgreSQL.

mod dead_letters;
mod events;
mod jobs;
mod maintenance;
mod stats;

use herald::{Backend, Store};
use herald_admin::dashboard::{Dashboard, DashboardOptions};

use crate::render::Output;
use crate::{Command, Failure};

pub(crate) async fn execute<B: Backend>(
    store: &Store<B>,
    command: Command,
    output: &Output,
) -> Result<(), Failure> {
    match command {
        Command::Stats => stats::stats(store, output).await,
        Command::Events(command) => events::execute(store, command, output).await,
        Command::DeadLetters(command) => dead_letters::execute(store, command, output).await,
        Command::Jobs(command) => jobs::execute(store, command, output).await,
        Command::Prune(args) => maintenance::prune(store, args, output).await,
        Command::Migrate => maintenance::migrate(store, output).await,
        Command::Dashboard {
            listen,
            allow_actions,
        } => serve(store, listen, allow_actions).await,
    }
}

async fn serve<B: Backend>(
    store: &Store<B>,
    listen: std::net::SocketAddr,
    allow_actions: bool,
) -> Result<(), Failure> {
    let options = DashboardOptions::default().allow_actions(allow_actions);
    // The database's gauges (backlog, lag, dead letters, runs by status, projection lag) for
    // Prometheus to scrape; the applications' own counters come from their own exporters.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| Failure::Usage(format!("cannot record metrics: {error}")))?;
    let reporter = store.report_metrics(std::time::Duration::from_secs(10));
    let router = Dashboard::new(store.clone(), options).router().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(prometheus.render())),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| Failure::Usage(format!("cannot listen on {listen}: {error}")))?;
    let mode = if allow_actions {
        "actions allowed"
    } else {
        "read-only"
    };
    eprintln!(
        "herald dashboard on http://{} ({mode}); Ctrl-C stops it",
        listener.local_addr()?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    reporter.shutdown().await;
    Ok(())
}

//! `dynzero run` and `dynzero migrate`: the services of this process side by
//! side, with the metrics and health endpoint, until SIGTERM or SIGINT.

use crate::config::Config;
use crate::retention::Retention;
use dynzero_reconciler::clock::SystemClock;
use dynzero_reconciler::service::{MIGRATOR, Parts, Reconciler};
use dynzero_runtime::health::{Liveness, Readiness};
use dynzero_runtime::http::{self, Endpoint, Source};
use dynzero_runtime::settings::DatabaseSettings;
use dynzero_runtime::{amqp, database};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

type Services = JoinSet<anyhow::Result<()>>;

/// The parts of `dynzero run` besides the reconciler's.
#[derive(Debug, Clone, Copy)]
pub struct Others {
    pub notifier: bool,
    pub api: bool,
    pub retention: bool,
}

/// Create the database if allowed and missing, and run every service's migrations.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let settings = &config.database;
    database::ensure_exists(settings).await?;
    database::migrate(&MIGRATOR, settings).await?;
    database::migrate(&dynzero_notifier::store::migrator(), settings).await?;
    database::migrate(&dynzero_api::service::migrator(), settings).await?;
    println!("migrations applied");
    Ok(())
}

fn until_stopped(stopped: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stopped = stopped.clone();
    async move {
        let _ = stopped.wait_for(|s| *s).await;
    }
}

pub async fn run(config: Config, parts: Parts, others: Others) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
    }
    // A signal during the start (a database or broker still away) ends it
    // too; the services already started stop as they would after it.
    let mut services: Services = JoinSet::new();
    let started = tokio::select! {
        started = start(&config, parts, others, &stopped, &mut services) => Some(started),
        _ = until_stopped(&stopped) => None,
    };
    match started {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            let _ = stop.send(true);
            while services.join_next().await.is_some() {}
            return Err(e);
        }
        None => {
            info!("stopped before the start was complete");
            while let Some(ended) = services.join_next().await {
                ended??;
            }
            return Ok(());
        }
    }
    tokio::select! {
        _ = until_stopped(&stopped) => {}
        Some(ended) = services.join_next() => {
            // A service that ends after the stop signal is stopping; one that
            // ends before it, by itself, is an error worth stopping for.
            let by_itself = !*stopped.borrow();
            let _ = stop.send(true);
            ended??;
            if by_itself {
                while services.join_next().await.is_some() {}
                anyhow::bail!("a service stopped by itself");
            }
        }
    }
    while let Some(ended) = services.join_next().await {
        ended??;
    }
    Ok(())
}

/// Everything up to serving: the database there (created if allowed), the
/// broker reachable with a configuration that works (a TLS failure is a
/// configuration error, not an outage), then the services and the endpoint.
async fn start(
    config: &Config,
    parts: Parts,
    others: Others,
    stopped: &watch::Receiver<bool>,
    services: &mut Services,
) -> anyhow::Result<()> {
    database::ensure_exists(&config.database).await?;
    let mut shutdown = stopped.clone();
    if let Some(connection) = amqp::connect_at_start(&config.amqp, &mut shutdown).await? {
        amqp::close_connection(&connection, "checked").await;
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut liveness: Vec<Liveness> = Vec::new();
    // Every migration before any service works: the API's lock the hub's tables.
    let api_pool = match others.api {
        true => Some(dynzero_api::service::connect(&config.api()).await?),
        false => None,
    };
    if parts.consumer || parts.relay || parts.sweeper {
        let reconciler = built("reconciler", || {
            Reconciler::build(config.reconciler(), Arc::new(SystemClock))
        })
        .await?;
        let metrics = reconciler.hub().metrics.clone();
        sources.push(Arc::new(move || metrics.render()));
        liveness.push(reconciler.liveness().clone());
        services.spawn(reconciler.run_until(parts, until_stopped(stopped)));
    }
    if others.notifier {
        let notifier = built("notifier", || {
            dynzero_notifier::service::Notifier::build(config.notifier())
        })
        .await?;
        let metrics = notifier.metrics().clone();
        sources.push(Arc::new(move || metrics.render()));
        liveness.push(notifier.liveness().clone());
        services.spawn(notifier.run_until(until_stopped(stopped)));
    }
    if others.retention {
        let retention = built("retention", || {
            Retention::build(&config.database, config.retention.clone())
        })
        .await?;
        services.spawn(retention.run_until(until_stopped(stopped)));
    }
    if let Some(pool) = api_pool {
        let api = built("api", || {
            dynzero_api::service::Api::build(config.api(), pool.clone())
        })
        .await?;
        services.spawn(api.run_until(until_stopped(stopped)));
    }
    if !config.metrics.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.metrics.listen).await?;
        let probes = DatabaseSettings {
            max_connections: 1,
            ..config.database.clone()
        };
        let readiness = Readiness {
            pool: database::pool(&probes, database::options(&probes)?),
            amqp: config.amqp.clone(),
        };
        let endpoint = Endpoint {
            sources,
            liveness,
            readiness,
        };
        services.spawn(http::serve(listener, endpoint, until_stopped(stopped)));
    }
    Ok(())
}

/// Build a service, waiting out a database outage that meets its start (a
/// connection refused or reset mid-start) with backoff, as every service
/// waits one out once running; any other failure ends the start. A stop
/// signal meanwhile ends the wait (`run` races the start against it).
async fn built<T, F, Fut>(what: &str, mut build: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut waits = dynzero_runtime::backoff::Reconnect::new();
    loop {
        match build().await {
            Ok(service) => return Ok(service),
            Err(e) if database_outage(&e) => {
                let wait = waits.next_wait();
                warn!(service = what, error = %format!("{e:#}"), ?wait,
                    "the database went away while starting; waiting for it");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error is, somewhere in its chain, a database outage.
fn database_outage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| dynzero_runtime::fault::database(e) == dynzero_runtime::Fault::Outage)
    })
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

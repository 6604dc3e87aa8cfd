//! The notifier as a service: built from settings, run until a shutdown
//! future resolves.

use crate::consumer;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store;
use crate::subscription::Subscription;
use crate::worker::Worker;
use anyhow::Context;
use dynzero_reconciler::amqp;
use dynzero_reconciler::hub::is_transient;
use dynzero_reconciler::settings::{DatabaseSettings, redact};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// Connect (waiting for PostgreSQL if it is down) and run the notifier's migrations.
pub async fn connect(database: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(database.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&database.url)?;
    let migrator = store::migrator();
    let mut backoff = amqp::backoff();
    loop {
        match migrator.run(&pool).await {
            Ok(()) => return Ok(pool),
            Err(sqlx::migrate::MigrateError::Execute(e)) if is_transient(&e) => {
                let wait = backoff.next().unwrap_or_default();
                warn!(error = %e, url = %redact(&database.url), ?wait, "database unavailable; waiting");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The configuration's subscriptions, checked; an invalid one is an error
/// naming it, not a subscription silently dropped.
pub fn configured(settings: &Settings) -> anyhow::Result<Vec<Subscription>> {
    settings
        .notifier
        .subscriptions
        .iter()
        .cloned()
        .map(|spec| {
            let name = spec.name.clone();
            Subscription::parse(spec).with_context(|| format!("subscription {name:?}"))
        })
        .collect()
}

pub struct Notifier {
    pool: PgPool,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    worker: Arc<Worker>,
}

impl Notifier {
    /// Check the configured subscriptions, connect, migrate, and make the
    /// configuration's subscriptions current in the table.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let subscriptions = configured(&settings)?;
        let pool = connect(&settings.database).await?;
        store::sync_config(&pool, &subscriptions).await?;
        info!(subscriptions = subscriptions.len(), "notifier ready");
        let metrics = Arc::new(Metrics::default());
        let worker = Arc::new(Worker::new(
            pool.clone(),
            settings.notifier.clone(),
            metrics.clone(),
        )?);
        Ok(Self {
            pool,
            settings: Arc::new(settings),
            metrics,
            worker,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Run until `shutdown` resolves; then stop consuming (what is committed
    /// is acked), let the attempts in flight finish, and close.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let consumer = tokio::spawn(consumer::run(
            self.pool.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            wake.clone(),
            stopped.clone(),
        ));
        let worker = tokio::spawn(self.worker.clone().run(wake, stopped));
        shutdown.await;
        info!("notifier shutting down");
        let _ = stop.send(true);
        consumer.await?;
        worker.await?;
        self.pool.close().await;
        Ok(())
    }
}

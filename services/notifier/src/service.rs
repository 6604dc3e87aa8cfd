//! The notifier as a service: built from settings, run until a shutdown
//! future resolves.

use crate::consumer;
use crate::metrics::{DeliveryState, Metrics};
use crate::settings::Settings;
use crate::store;
use crate::subscription::{Subscription, TargetKind};
use crate::worker::Worker;
use anyhow::Context;
use dynzero_runtime::config::ConfigError;
use dynzero_runtime::database as runtime_db;
use dynzero_runtime::health::Liveness;
use dynzero_runtime::settings::DatabaseSettings;
use dynzero_runtime::shutdown::{finish_by, reserve};
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{info, warn};

/// Connect (waiting for PostgreSQL if it is down) and run the notifier's migrations.
pub async fn connect(database: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let pool = runtime_db::pool(database, runtime_db::options(database)?);
    runtime_db::migrate(&store::migrator(), database).await?;
    Ok(pool)
}

/// The configuration's subscriptions, checked, targets included; an
/// invalid or refused one is a configuration error naming it, not a
/// subscription silently dropped.
pub fn configured(settings: &Settings) -> anyhow::Result<Vec<Subscription>> {
    let policy = settings.notifier.target_policy()?;
    settings
        .notifier
        .subscriptions
        .iter()
        .cloned()
        .map(|spec| {
            let name = spec.name.clone();
            let subscription =
                Subscription::parse(spec).with_context(|| format!("subscription {name:?}"))?;
            policy.check(subscription.target()).map_err(|e| {
                ConfigError::new(&format!("notifier.subscriptions {name:?}:"), &e.to_string())
            })?;
            Ok(subscription)
        })
        .collect()
}

pub struct Notifier {
    pool: PgPool,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    worker: Arc<Worker>,
    /// Its loops, for `/healthz`.
    liveness: Liveness,
}

impl Notifier {
    /// Check the configured subscriptions, connect, migrate, and make the
    /// configuration's subscriptions current in the table.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let subscriptions = configured(&settings)?;
        let key = settings.security.sealing_key()?;
        if key.is_none()
            && let Some(s) = subscriptions.iter().find(|s| s.target().url().is_some())
        {
            return Err(store::missing_key(s.name()).into());
        }
        let pool = connect(&settings.database).await?;
        let sealed_now = store::prepare_sealing(&pool, key.as_ref()).await?;
        if sealed_now > 0 {
            info!(
                sealed_now,
                "subscriptions stored in the clear are sealed now"
            );
        }
        store::sync_config(&pool, key.as_ref(), &subscriptions).await?;
        info!(subscriptions = subscriptions.len(), "notifier ready");
        let metrics = Arc::new(Metrics::default());
        metrics.set_parked_rows(store::parked_count(&pool).await?);
        let worker = Arc::new(Worker::new(
            pool.clone(),
            settings.notifier.clone(),
            metrics.clone(),
            key,
        )?);
        Ok(Self {
            pool,
            settings: Arc::new(settings),
            metrics,
            worker,
            liveness: Liveness::default(),
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
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Run until `shutdown` resolves; then stop consuming (what is committed
    /// is acked), let the attempts in flight finish, and close.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let consumer = consumer::run(
            self.pool.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            wake.clone(),
            stopped.clone(),
        );
        let consumer = tokio::spawn(self.liveness.watch("notifier consumer", consumer));
        let worker = self.worker.clone().run(wake, stopped.clone());
        let worker = tokio::spawn(self.liveness.watch("notifier worker", worker));
        let sampler = sample_deliveries(self.pool.clone(), self.metrics.clone(), stopped);
        let sampler = tokio::spawn(self.liveness.watch("notifier delivery sampler", sampler));
        shutdown.await;
        let grace = self.settings.shutdown.grace();
        let deadline = Instant::now() + grace - reserve(grace);
        info!(?grace, "notifier shutting down");
        let _ = stop.send(true);
        finish_by(consumer, deadline, "notifier consumer").await?;
        finish_by(worker, deadline, "notifier worker").await?;
        finish_by(sampler, deadline, "notifier delivery sampler").await?;
        let _ = tokio::time::timeout(reserve(grace), self.pool.close()).await;
        Ok(())
    }
}

/// How often the delivery gauges are sampled, and how long one sample may take.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The deliveries pending and failed per target kind, for the metrics, every
/// [`SAMPLE_EVERY`] until `shutdown` turns true; a failed sample keeps the
/// last values.
async fn sample_deliveries(
    pool: PgPool,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match tokio::time::timeout(SAMPLE_TIMEOUT, store::delivery_counts(&pool)).await {
            Ok(Ok(rows)) => {
                let counts: Vec<_> = rows
                    .iter()
                    .filter_map(|(kind, status, n)| {
                        Some((
                            TargetKind::parse(kind)?,
                            DeliveryState::parse(status)?,
                            (*n).max(0) as u64,
                        ))
                    })
                    .collect();
                metrics.deliveries(&counts);
            }
            Ok(Err(e)) => warn!(error = %e, "could not sample the deliveries"),
            Err(_) => warn!(timeout = ?SAMPLE_TIMEOUT, "sampling the deliveries took too long"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

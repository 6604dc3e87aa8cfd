//! The reconciler as a service: built from settings, run until a shutdown
//! future resolves.

use crate::clock::Clock;
use crate::hub::{Hub, ProcessError};
use crate::metrics::Metrics;
use crate::settings::{Settings, redact};
use crate::{amqp, consumer, relay};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which parts run in this process; each can run alone, for scaling them separately.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub consumer: bool,
    pub relay: bool,
    pub sweeper: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        consumer: true,
        relay: true,
        sweeper: true,
    };
}

pub struct Reconciler {
    hub: Arc<Hub>,
}

impl Reconciler {
    /// Connect to PostgreSQL (waiting for it if it is down) and run the migrations.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let rules = settings.rules.rules()?;
        // Every statement the reconciler runs looks rows up by key (arrays of
        // ids, `= ANY($1)`, `UNNEST`). Custom plans see the arrays' real sizes;
        // and sequential scans are taken off the table, because a fresh or
        // fast-growing database (a city backfill) has statistics from when it
        // was small, which made the planner scan whole fact tables for a few
        // dozen ids: cost per message grew with history (see BENCHMARKS.md).
        let options = PgConnectOptions::from_str(&settings.database.url)?.options([
            ("plan_cache_mode", "force_custom_plan"),
            ("enable_seqscan", "off"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        let mut backoff = amqp::backoff();
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(sqlx::migrate::MigrateError::Execute(e)) if crate::hub::is_transient(&e) => {
                    let wait = backoff.next().unwrap_or_default();
                    warn!(error = %e, url = %redact(&settings.database.url), ?wait, "database unavailable; waiting");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        info!(url = %redact(&settings.database.url), "database ready");
        Ok(Self {
            hub: Arc::new(Hub {
                pool,
                rules,
                settings,
                clock,
                metrics: Arc::new(Metrics::default()),
            }),
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Run until `shutdown` resolves; then stop consuming, finish and ack what
    /// is in flight, flush the relay, and close.
    pub async fn run_until(
        self,
        parts: Parts,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let consumers = if parts.consumer {
            self.hub.settings.amqp.consumers.max(1)
        } else {
            0
        };
        let consumers: Vec<_> = (0..consumers)
            .map(|_| {
                tokio::spawn(consumer::run(
                    self.hub.clone(),
                    wake.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        let sweeper = parts
            .sweeper
            .then(|| tokio::spawn(sweep_loop(self.hub.clone(), wake.clone(), stopped.clone())));
        let (relay_stop, relay_stopped) = watch::channel(false);
        let relay = parts
            .relay
            .then(|| tokio::spawn(relay::run(self.hub.clone(), wake.clone(), relay_stopped)));
        shutdown.await;
        info!("shutting down");
        let _ = stop.send(true);
        for task in consumers.into_iter().chain(sweeper) {
            task.await?;
        }
        // The relay goes last, so what the consumer committed is published.
        let _ = relay_stop.send(true);
        wake.notify_one();
        if let Some(relay) = relay {
            relay.await?;
        }
        self.hub.pool.close().await;
        Ok(())
    }
}

async fn sweep_loop(hub: Arc<Hub>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let interval = hub.settings.sweep.interval();
    while !*stopped.borrow() {
        match sweep_all(&hub).await {
            Ok(0) => {}
            Ok(n) => {
                info!(households = n, "sweep re-evaluated households");
                wake.notify_one();
            }
            Err(e) => warn!(error = %e, "sweep failed; next round will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Sweep until no household is due.
pub async fn sweep_all(hub: &Hub) -> Result<usize, ProcessError> {
    const BATCH: i64 = 500;
    let mut total = 0;
    loop {
        let n = hub.sweep(BATCH).await?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

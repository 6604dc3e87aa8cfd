//! The reconciler as a service: built from settings, run until a shutdown
//! future resolves.

use crate::clock::Clock;
use crate::hub::{Hub, ProcessError};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::{consumer, relay};
use dynzero_runtime::database;
use dynzero_runtime::health::Liveness;
use dynzero_runtime::shutdown::finish_by;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
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
    /// Its loops, for `/healthz`.
    liveness: Liveness,
}

impl Reconciler {
    /// Connect to PostgreSQL (waiting for it if it is down) and run the migrations.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let rules = settings.rules.rules()?;
        // Every statement the reconciler runs looks rows up by key (arrays of
        // ids, `= ANY($1)`, `UNNEST`). Sequential scans are taken off the
        // table, because a fresh or
        // fast-growing database (a city backfill) has statistics from when it
        // was small, which made the planner scan whole fact tables for a few
        // dozen ids: cost per message grew with history (see BENCHMARKS.md).
        // Merge and hash joins go for the same reason: with no statistics
        // (a table never analyzed: autovacuum off, or not yet run) the
        // planner takes each id to match hundreds of rows, and joined an
        // array of 1,500 ids to `employment_fact` by a merge join over the
        // table's whole index: 500 ms at 260,000 rows, growing with it,
        // against 15 ms by nested loop on the index. JIT compilation, which
        // those inflated estimates also triggered, is never worth it for
        // statements of a few milliseconds; nor are parallel workers, which
        // the planner began to start for the members of a batch's
        // households once `registration_member` passed 2 M rows. With those
        // gone, the cached (generic) plans PostgreSQL switches to after five
        // executions are key lookups too, and planning no statement again
        // saves about 2 ms of a 10 ms batch at 1,000 msg/s (it was 2.3 ms
        // of planning per batch with `force_custom_plan`; BENCHMARKS.md). A
        // generic plan that would need a sequential scan (a parameter against
        // a partial index) costs more than the disabled scan's penalty, so
        // such a statement keeps its custom plans.
        let options = database::options(&settings.database)?.options([
            ("plan_cache_mode", "auto"),
            ("enable_seqscan", "off"),
            ("enable_mergejoin", "off"),
            ("enable_hashjoin", "off"),
            ("jit", "off"),
            ("max_parallel_workers_per_gather", "0"),
        ]);
        let pool = database::pool(&settings.database, options);
        database::migrate(&MIGRATOR, &settings.database).await?;
        Ok(Self {
            liveness: Liveness::default(),
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

    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Run until `shutdown` resolves; then stop consuming, finish and ack what
    /// is in flight, flush the relay, and close — all within
    /// `shutdown.grace_secs`, whatever is away: what is still running then
    /// is stopped, and the outbox keeps what was not published.
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
        let live = &self.liveness;
        let consumers: Vec<_> = (0..consumers)
            .map(|_| {
                let run = consumer::run(self.hub.clone(), wake.clone(), stopped.clone());
                tokio::spawn(live.watch("consumer", run))
            })
            .collect();
        let sweeper = parts.sweeper.then(|| {
            let run = sweep_loop(self.hub.clone(), wake.clone(), stopped.clone());
            tokio::spawn(live.watch("sweeper", run))
        });
        let outbox_gauges = parts.relay.then(|| {
            let run = relay::sample_outbox(self.hub.clone(), stopped.clone());
            tokio::spawn(live.watch("outbox sampler", run))
        });
        let (relay_stop, relay_stopped) = watch::channel(false);
        let relay = parts.relay.then(|| {
            let run = relay::run(self.hub.clone(), wake.clone(), relay_stopped);
            tokio::spawn(live.watch("relay", run))
        });
        shutdown.await;
        let grace = self.hub.settings.shutdown.grace();
        let reserve = dynzero_runtime::shutdown::reserve(grace);
        let deadline = Instant::now() + grace - reserve;
        info!(?grace, "shutting down");
        let _ = stop.send(true);
        for task in consumers.into_iter().chain(sweeper).chain(outbox_gauges) {
            finish_by(task, deadline, "consumer, sweeper or outbox sampler").await?;
        }
        // The relay goes last, so what the consumer committed is published.
        let _ = relay_stop.send(true);
        wake.notify_one();
        if let Some(relay) = relay {
            finish_by(relay, deadline, "relay").await?;
        }
        self.report_outbox(reserve / 2).await;
        let _ = tokio::time::timeout(reserve / 2, self.hub.pool.close()).await;
        Ok(())
    }

    /// The last word: how many outputs wait in the outbox for the next start.
    async fn report_outbox(&self, limit: Duration) {
        let count =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox").fetch_one(&self.hub.pool);
        match tokio::time::timeout(limit, count).await {
            Ok(Ok(0)) => info!(outbox_rows_left = 0, "reconciler stopped; outbox empty"),
            Ok(Ok(left)) => warn!(
                outbox_rows_left = left,
                "reconciler stopped; the next start publishes the outbox rows left"
            ),
            _ => warn!(
                outbox_rows_left = "unknown",
                "reconciler stopped with the database away; the next start publishes what the outbox holds"
            ),
        }
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

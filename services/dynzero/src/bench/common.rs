//! What `bench` and `bench-notifier` both do: an isolated run (a fresh
//! database, uniquely named exchanges and queues), services started and
//! stopped around a measurement, paced publishing, and percentiles.

use anyhow::Context;
use dynzero_reconciler::metrics::Metrics;
use dynzero_reconciler::settings::{AmqpSettings, Settings};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, PublisherConfirm};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Points `settings` at a fresh database and at exchanges and queues named
/// for this run only, so a run never touches a deployment's data. Returns
/// the run's name prefix.
pub async fn isolate(settings: &mut Settings) -> anyhow::Result<String> {
    let prefix = format!("bench.{:08x}.", rand::random::<u32>());
    settings.amqp = AmqpSettings {
        urls: settings.amqp.urls.clone(),
        ca_file: settings.amqp.ca_file.clone(),
        ..AmqpSettings::prefixed(&prefix)
    };
    settings.database.url = fresh_database(&settings.database.url).await?;
    Ok(prefix)
}

async fn fresh_database(server_url: &str) -> anyhow::Result<String> {
    let (server, _) = server_url
        .rsplit_once('/')
        .context("database.url has no database name")?;
    let name = format!("dynzero_bench_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    Ok(format!("{server}/{name}"))
}

pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("no database name")?;
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

/// What a service's `run_until` waits on.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service running in a task until [`Running::stop`].
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Spawns `run` (a service's `run_until`) with a shutdown it resolves
    /// when stopped.
    pub fn spawn<F>(run: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        Self { stop, task }
    }

    /// Shuts the service down and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Whether the hub has settled `total` messages (processed, duplicate or
/// rejected) and relayed every output. The outbox is only counted once the
/// messages are settled, so that polling costs the database little.
pub async fn all_settled(
    metrics: &Metrics,
    total: u64,
    db: &mut PgConnection,
) -> anyhow::Result<bool> {
    if settled(metrics) < total {
        return Ok(false);
    }
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(db)
        .await?;
    Ok(outbox == 0)
}

/// Messages the hub is done with: processed, duplicate or rejected.
pub fn settled(metrics: &Metrics) -> u64 {
    metrics.processed_count() + metrics.duplicate_count() + metrics.rejected_total()
}

/// The properties of an inbound CloudEvent: JSON, persistent.
pub fn props() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/cloudevents+json"))
        .with_delivery_mode(2)
}

/// Publishing at a steady rate: message `i` goes out `i` intervals after
/// the start.
pub struct Pace {
    started: Instant,
    interval: Duration,
    /// Confirms of what was published, awaited at the end: waiting for each
    /// one before the next publish would hold the rate below the one asked
    /// for whenever a confirm takes longer than the interval.
    confirms: Vec<PublisherConfirm>,
    /// When the last message was published.
    last: Option<Instant>,
}

impl Pace {
    pub fn per_second(rate: u32) -> Self {
        Self {
            started: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
            confirms: Vec::new(),
            last: None,
        }
    }

    /// Waits until message `i` is due.
    pub async fn until(&self, i: usize) {
        tokio::time::sleep_until((self.started + self.interval * i as u32).into()).await;
    }

    /// Publish one message now, its confirm awaited by [`Pace::finish`].
    pub async fn publish(
        &mut self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<()> {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                Default::default(),
                body,
                properties,
            )
            .await?;
        self.confirms.push(confirm);
        self.last = Some(Instant::now());
        Ok(())
    }

    /// Every confirm, and the rate the messages were published at (the
    /// first was due at the start).
    pub async fn finish(self) -> anyhow::Result<f64> {
        let published = self.confirms.len();
        for confirm in self.confirms {
            anyhow::ensure!(!confirm.await?.is_nack(), "the broker refused a message");
        }
        let took = self
            .last
            .map_or(Duration::ZERO, |last| last - self.started)
            .as_secs_f64();
        Ok(if took > 0.0 {
            (published.max(1) - 1) as f64 / took
        } else {
            0.0
        })
    }
}

/// The `p` quantile of `sorted` (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().max(1) as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

//! Consumes the notifier's queue on `dynzero.alerts`: each batch of alerts
//! becomes delivery rows in one transaction, acknowledged after it commits.
//! Each alert is recorded under its own savepoint: one that keeps failing on
//! its data is parked (`notifier_parked`) with its reason and acknowledged
//! with the rest; an outage holds the whole batch until it is over.

use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::{self, ConsumedAlert};
use dynzero_runtime::amqp::{self, Next, Session, consume, next_batch, open_or_wait};
use dynzero_runtime::backoff::{self, Reconnect};
use dynzero_runtime::fault::{self, Fault};
use dynzero_runtime::is_transient;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use sqlx::{Acquire, PgPool, Postgres, Transaction};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// The alerts exchange (declared as the reconciler declares it) and the
/// notifier's durable quorum queue bound to it with `#`.
pub async fn declare(channel: &Channel, settings: &Settings) -> lapin::Result<()> {
    let exchange = settings.amqp.alerts_exchange.as_str();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = settings.queue();
    let queue = queue.as_str();
    amqp::declare_quorum_queue(channel, queue, FieldTable::default()).await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Consume until `shutdown` turns true, reconnecting as often as it takes.
/// `recorded` is notified after each commit, to wake the delivery worker.
pub async fn run(
    pool: PgPool,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    recorded: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reconnect = Reconnect::new();
    while !*shutdown.borrow() {
        let queue = settings.queue();
        let prefetch = settings.notifier.prefetch;
        let declared: &Settings = &settings;
        let session = consume(&settings.amqp, &queue, prefetch, |c| async move {
            declare(&c, declared).await.map(|()| c)
        });
        let Some(Session {
            connection,
            channel,
            mut consumer,
        }) = open_or_wait(session, &mut reconnect, &mut shutdown, "notifier").await
        else {
            continue;
        };
        info!(queue = %settings.queue(), "notifier consuming");
        loop {
            let (batch, broken) =
                match next_batch(&mut consumer, prefetch.into(), &mut shutdown).await {
                    Next::Batch { deliveries, broken } => (deliveries, broken),
                    Next::Stopped => {
                        let _ = tokio::time::timeout(amqp::CLOSE_TIMEOUT, async {
                            let _ = channel
                                .basic_cancel(
                                    consumer.tag().as_str().into(),
                                    BasicCancelOptions::default(),
                                )
                                .await;
                            let _ = channel.close(200, "OK".into()).await;
                        })
                        .await;
                        amqp::close_connection(&connection, "OK").await;
                        return;
                    }
                    Next::Lost => break,
                };
            if !record(&pool, &metrics, &batch, &mut shutdown).await {
                // Shutdown while the database was down: unacknowledged, redelivered later.
                amqp::close_connection(&connection, "OK").await;
                return;
            }
            recorded.notify_one();
            let last = batch.last().expect("a batch has a first delivery");
            if let Err(e) = last.acker.ack(BasicAckOptions { multiple: true }).await {
                warn!(error = %e, "broker lost while acking; the alerts come again and add nothing");
                break;
            }
            if broken {
                break;
            }
        }
        amqp::close_connection(&connection, "reconnecting").await;
    }
}

/// What one batch came to.
#[derive(Debug, Default, Clone, Copy)]
struct Recorded {
    created: u64,
    parked: u64,
}

/// Write the batch's deliveries in one transaction, waiting out a database
/// outage. `false` if shutdown came first.
async fn record(
    pool: &PgPool,
    metrics: &Metrics,
    batch: &[Delivery],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = backoff::backoff();
    loop {
        match record_once(pool, metrics, batch).await {
            Ok(recorded) => {
                metrics.consumed(batch.len() as u64);
                metrics.created(recorded.created);
                metrics.parked(recorded.parked);
                return true;
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or_default();
                if is_transient(&e) {
                    warn!(error = %e, ?wait, "database unavailable; alerts wait");
                } else {
                    warn!(error = %e, ?wait, "recording alerts failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return false;
                }
            }
        }
    }
}

/// The AMQP header `traceparent`, when valid: an alert's trace context when
/// its attribute is missing.
fn traceparent_header(delivery: &Delivery) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    let value = match headers.inner().get("traceparent")? {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        _ => return None,
    };
    dynzero_runtime::telemetry::is_traceparent(&value).then_some(value)
}

#[tracing::instrument(skip_all, fields(messages = batch.len()))]
async fn record_once(
    pool: &PgPool,
    metrics: &Metrics,
    batch: &[Delivery],
) -> Result<Recorded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut recorded = Recorded::default();
    for delivery in batch {
        match ConsumedAlert::parse(&delivery.data) {
            Some(mut alert) => {
                if alert.traceparent.is_none() {
                    alert.traceparent = traceparent_header(delivery);
                }
                match record_or_park(&mut tx, &alert, delivery.routing_key.as_str()).await? {
                    Some(created) => recorded.created += created,
                    None => recorded.parked += 1,
                }
            }
            None => {
                // Not ours to judge: the hub published it. Kept out of the
                // deliveries, counted, and acknowledged with the batch.
                metrics.malformed();
                warn!(routing_key = %delivery.routing_key, "not an alert CloudEvent; skipped");
            }
        }
    }
    tx.commit().await?;
    Ok(recorded)
}

/// How often an alert's recording is tried, each under its own savepoint,
/// before it is parked.
pub const RECORD_ATTEMPTS: usize = 3;

/// Record one alert under its own savepoint. One that fails on its data
/// `RECORD_ATTEMPTS` times on a healthy connection is parked (`None`), so it
/// never holds up the batch; an outage is the caller's to wait out (`Err`).
pub async fn record_or_park(
    tx: &mut Transaction<'_, Postgres>,
    alert: &ConsumedAlert<'_>,
    routing_key: &str,
) -> Result<Option<u64>, sqlx::Error> {
    let mut reason = String::new();
    for _ in 0..RECORD_ATTEMPTS {
        let mut savepoint = tx.begin().await?;
        match store::record_alert(&mut savepoint, alert).await {
            Ok(created) => {
                savepoint.commit().await?;
                return Ok(Some(created));
            }
            Err(e) if fault::database(&e) == Fault::Defect => {
                savepoint.rollback().await?;
                reason = e.to_string();
            }
            Err(e) => return Err(e),
        }
    }
    warn!(alert_id = %alert.id.replace('\0', "\\0"), reason = %reason, "an alert that cannot be recorded; parked");
    store::park(tx, &alert.id, routing_key, alert.body, &reason).await?;
    Ok(None)
}

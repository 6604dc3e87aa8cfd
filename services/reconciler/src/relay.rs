//! The relay: outbox rows to `dynzero.households` and `dynzero.alerts`, with
//! publisher confirms, deleted only after the broker confirmed them. One relay
//! at a time holds the batch lock, so outputs leave in outbox order — and a
//! household's versions in the order they were written.

use crate::amqp;
use crate::hub::Hub;
use crate::store;
use dynzero_contracts::outbound::Stream;
use dynzero_runtime::backoff::{self, Reconnect};
use dynzero_runtime::is_transient;
use lapin::Channel;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

const BATCH: i64 = 500;
/// Transaction-level advisory lock: one relay publishes at a time.
const RELAY_LOCK: i64 = 0x647a_7265_6c61;
/// How often to look at the outbox when nobody wakes the relay (other processes write to it too).
const POLL: Duration = Duration::from_millis(200);

/// How often the outbox gauges are sampled, and how long one sample may take.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] amqp::PublishError),
}

/// Relay until `shutdown` turns true and the outbox is empty.
pub async fn run(hub: Arc<Hub>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut reconnect = Reconnect::new();
    let mut backoff = backoff::backoff();
    loop {
        let session = async {
            let connection = amqp::connect(&hub.settings.amqp).await?;
            let channel = amqp::confirm_channel(&connection).await?;
            amqp::declare_topology(&channel, &hub.settings.amqp).await?;
            amqp::declare_rejected_queue(&connection, &hub.settings.amqp).await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let (connection, channel) = match session.await {
            Ok(s) => s,
            Err(e) => {
                if *shutdown.borrow() {
                    warn!(error = %e, "shutting down with the broker unreachable; the outbox keeps the rest");
                    return;
                }
                let wait = reconnect.next_wait();
                warn!(error = %e, ?wait, "broker unavailable; the relay will retry");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        reconnect.connected();
        loop {
            match relay_batch(&hub, &channel).await {
                Ok(0) => {
                    backoff = backoff::backoff();
                    if *shutdown.borrow() {
                        amqp::close(&connection, &channel).await;
                        info!("relay stopped with an empty outbox");
                        return;
                    }
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(n) => {
                    backoff = backoff::backoff();
                    hub.metrics.published(n as u64);
                }
                Err(RelayError::Database(e)) if is_transient(&e) => {
                    let wait = backoff.next().unwrap_or_default();
                    warn!(error = %e, ?wait, "database unavailable; the relay waits");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    warn!(error = %e, "relay failed; reconnecting");
                    break;
                }
            }
        }
        amqp::close_connection(&connection, "reconnecting").await;
        tokio::time::sleep(reconnect.next_wait()).await;
    }
}

/// Beside the relay: the outbox's depth and the age of its oldest row for
/// the metrics, every [`SAMPLE_EVERY`] until `shutdown` turns true. A sample
/// that fails or takes too long leaves the last values (the database being
/// away shows elsewhere).
pub async fn sample_outbox(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match tokio::time::timeout(SAMPLE_TIMEOUT, store::outbox::sample(&hub.pool)).await {
            Ok(Ok((rows, oldest_age))) => hub.metrics.outbox(rows.max(0) as u64, oldest_age),
            Ok(Err(e)) => warn!(error = %e, "could not sample the outbox"),
            Err(_) => warn!(timeout = ?SAMPLE_TIMEOUT, "sampling the outbox took too long"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Publish one batch in outbox order, pipelining the confirms. Returns how
/// many were published (0: nothing to do, or another relay holds the lock).
async fn relay_batch(hub: &Hub, channel: &Channel) -> Result<usize, RelayError> {
    let s = &hub.settings.amqp;
    let mut tx = hub.pool.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT seq, stream, routing_key, message_id, body, traceparent FROM outbox ORDER BY seq LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut confirms = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for row in &rows {
        let stream: &str = row.get("stream");
        let exchange = match Stream::parse(stream) {
            Some(Stream::Households) => &s.households_exchange,
            Some(Stream::Alerts) | None => &s.alerts_exchange,
        };
        let routing_key: &str = row.get("routing_key");
        let message_id: &str = row.get("message_id");
        let body: &[u8] = row.get("body");
        let traceparent: Option<&str> = row.get("traceparent");
        let event_type = if stream == "households" {
            dynzero_contracts::outbound::STATE_TYPE.to_string()
        } else {
            format!(
                "dynzero.alert.{}",
                routing_key.split('.').next().unwrap_or_default()
            )
        };
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.into(),
                Default::default(),
                body,
                amqp::output_properties(message_id, Some(&event_type), traceparent),
            )
            .await
            .map_err(amqp::PublishError::from)?;
        confirms.push(confirm);
        seqs.push(row.get::<i64, _>("seq"));
    }
    for confirm in confirms {
        if confirm.await.map_err(amqp::PublishError::from)?.is_nack() {
            return Err(amqp::PublishError::Nacked.into());
        }
    }
    sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(seqs.len())
}

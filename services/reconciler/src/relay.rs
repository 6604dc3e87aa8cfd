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
use futures_util::future;
use lapin::Channel;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

const BATCH: i64 = 500;
/// Session-level advisory lock, held by the relay that publishes for as long
/// as its connection lives: one relay publishes at a time. (Hubs of earlier
/// versions took it per transaction; either kind excludes the other.)
pub const RELAY_LOCK: i64 = 0x647a_7265_6c61;
/// How long closing the relay's own database connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
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
    let mut leader = Leader::default();
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
                // Another relay, which may reach the broker, leads meanwhile.
                leader.release(&hub).await;
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
            match relay_batch(&hub, &channel, &mut leader).await {
                Ok(0) => {
                    backoff = backoff::backoff();
                    if *shutdown.borrow() {
                        leader.release(&hub).await;
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
                    leader.lost(&hub);
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
        leader.release(&hub).await;
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

/// The relay's own connection to the database, outside the pool. It holds
/// the session-level [`RELAY_LOCK`] while this process is the one that
/// relays, so a batch costs two statements (read the rows, delete them once
/// confirmed) instead of five (begin, lock, read, delete, commit). If the
/// connection is lost, so is the lock, and another relay takes it.
#[derive(Default)]
struct Leader {
    connection: Option<PgConnection>,
    leading: bool,
}

impl Leader {
    /// The connection, if this relay holds the lock (taking it if free).
    async fn connection(&mut self, hub: &Hub) -> Result<Option<&mut PgConnection>, sqlx::Error> {
        if self.connection.is_none() {
            self.connection = Some(hub.pool.connect_options().connect().await?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        if !self.leading {
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut *connection)
                .await?;
            self.leading = taken;
            hub.metrics.relay_leading(taken);
            if taken {
                info!("this relay publishes the outbox now");
            }
        }
        Ok(self.leading.then_some(connection))
    }

    /// Let another relay lead: close the connection, which ends the lock
    /// (dropped unclosed if the server does not answer in time: the server
    /// ends the lock when it sees the socket close).
    async fn release(&mut self, hub: &Hub) {
        if let Some(connection) = self.connection.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
        }
        self.leading = false;
        hub.metrics.relay_leading(false);
    }

    /// After an error: the connection, and with it the lock, may be gone.
    /// Start again with a new one.
    fn lost(&mut self, hub: &Hub) {
        self.connection = None;
        self.leading = false;
        hub.metrics.relay_leading(false);
    }
}

/// Publish one batch in outbox order, pipelining the confirms. Returns how
/// many were published (0: nothing to do, or another relay holds the lock).
async fn relay_batch(
    hub: &Hub,
    channel: &Channel,
    leader: &mut Leader,
) -> Result<usize, RelayError> {
    let s = &hub.settings.amqp;
    let Some(connection) = leader.connection(hub).await? else {
        return Ok(0);
    };
    let rows = sqlx::query(
        "SELECT seq, stream, routing_key, message_id, body, traceparent FROM outbox ORDER BY seq LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *connection)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Each publish hands its frames to the connection's I/O thread when it
    // is first polled, then waits until they are written. Polling each
    // once, in outbox order, and waiting for the writes together costs one
    // hand-over a batch instead of one a row.
    let mut sends = Vec::with_capacity(rows.len());
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
        let mut send = Box::pin(future::maybe_done(channel.basic_publish(
            exchange.as_str().into(),
            routing_key.into(),
            Default::default(),
            body,
            amqp::output_properties(message_id, Some(&event_type), traceparent),
        )));
        let _ = futures_util::poll!(send.as_mut());
        sends.push(send);
        seqs.push(row.get::<i64, _>("seq"));
    }
    let mut confirms = Vec::with_capacity(sends.len());
    for mut send in sends {
        send.as_mut().await;
        let sent = send
            .as_mut()
            .take_output()
            .expect("a send awaited to its end has its output");
        confirms.push(sent.map_err(amqp::PublishError::from)?);
    }
    for confirm in confirms {
        if confirm.await.map_err(amqp::PublishError::from)?.is_nack() {
            return Err(amqp::PublishError::Nacked.into());
        }
    }
    sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut *connection)
        .await?;
    Ok(seqs.len())
}

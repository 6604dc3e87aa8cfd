//! The broker alone: the same messages through a throwaway quorum queue,
//! published with confirms and consumed with manual acks, with no
//! processing. What the hub's numbers are compared with.

use super::common::{Pace, props};
use dynzero_reconciler::amqp;
use dynzero_runtime::settings::AmqpSettings;
use dynzero_simulator::Message;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{FieldTable, ShortString};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Publish with confirms, a window of unconfirmed messages in flight, each
/// `(routing key, body)` to `exchange`.
pub async fn publish_all<'a>(
    channel: &Channel,
    exchange: &str,
    messages: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(512);
    for (routing_key, body) in messages {
        pending.push(
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    Default::default(),
                    body,
                    props(),
                )
                .await?,
        );
        if pending.len() >= 512 {
            for confirm in pending.drain(..) {
                anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
            }
        }
    }
    for confirm in pending {
        anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
    }
    Ok(())
}

/// Each message under its own routing key.
pub fn routed(messages: &[Message]) -> impl Iterator<Item = (&str, &[u8])> {
    messages
        .iter()
        .map(|m| (m.routing_key.as_str(), m.body.as_slice()))
}

/// A connection with a confirm channel and a durable quorum queue, for
/// measuring the broker alone.
struct Throwaway {
    connection: lapin::Connection,
    channel: Channel,
    queue: String,
}

impl Throwaway {
    /// The queue, and a consumer on it (manual acks, prefetch 64) over a
    /// second channel that acks every delivery and notes when each arrived.
    async fn open(
        amqp_settings: &AmqpSettings,
        queue: String,
        total: usize,
    ) -> anyhow::Result<(Self, JoinHandle<lapin::Result<Vec<(usize, Instant)>>>)> {
        let connection = amqp::connect(amqp_settings).await?;
        let channel = amqp::confirm_channel(&connection).await?;
        amqp::declare_quorum_queue(&channel, &queue, FieldTable::default()).await?;
        let consumer_channel = connection.create_channel().await?;
        consumer_channel.basic_qos(64, Default::default()).await?;
        let consumer = consumer_channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumed = tokio::spawn(consume(consumer, total));
        Ok((
            Self {
                connection,
                channel,
                queue,
            },
            consumed,
        ))
    }

    /// Deletes the queue and closes the connection.
    async fn close(self) {
        let _ = self
            .channel
            .queue_delete(self.queue.as_str().into(), Default::default())
            .await;
        amqp::close_connection(&self.connection, "OK").await;
    }
}

/// Acks up to `total` deliveries: for each, its message id (the index it
/// was published with, if any) and when it arrived.
async fn consume(
    mut consumer: lapin::Consumer,
    total: usize,
) -> lapin::Result<Vec<(usize, Instant)>> {
    let mut arrived = Vec::with_capacity(total);
    while arrived.len() < total {
        let Some(Ok(d)) = consumer.next().await else {
            break;
        };
        let at = Instant::now();
        let i: usize = d
            .properties
            .message_id()
            .as_ref()
            .and_then(|id| id.as_str().parse().ok())
            .unwrap_or(usize::MAX);
        d.ack(BasicAckOptions::default()).await?;
        arrived.push((i, at));
    }
    Ok(arrived)
}

/// The ceiling: messages per second through the broker alone.
pub async fn limit(
    amqp_settings: &AmqpSettings,
    prefix: &str,
    messages: &[Message],
) -> anyhow::Result<f64> {
    let total = messages.len();
    let (throwaway, consumed) =
        Throwaway::open(amqp_settings, format!("{prefix}broker-limit"), total).await?;
    let started = Instant::now();
    let to_queue = messages
        .iter()
        .map(|m| (throwaway.queue.as_str(), m.body.as_slice()));
    publish_all(&throwaway.channel, "", to_queue).await?;
    let consumed = consumed.await??.len();
    let elapsed = started.elapsed();
    anyhow::ensure!(consumed == total, "consumed {consumed} of {total}");
    throwaway.close().await;
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// The broker's own latency at `rate`, sorted: publish with confirms,
/// consume with acks, no processing.
pub async fn latency(
    amqp_settings: &AmqpSettings,
    prefix: &str,
    stream: &[Message],
    rate: u32,
) -> anyhow::Result<Vec<Duration>> {
    let (throwaway, consumed) = Throwaway::open(
        amqp_settings,
        format!("{prefix}broker-latency"),
        stream.len(),
    )
    .await?;
    let mut pace = Pace::per_second(rate);
    let mut sent = Vec::with_capacity(stream.len());
    for (i, m) in stream.iter().enumerate() {
        pace.until(i).await;
        sent.push(Instant::now());
        pace.publish(
            &throwaway.channel,
            "",
            &throwaway.queue,
            &m.body,
            props().with_message_id(ShortString::from(i.to_string())),
        )
        .await?;
    }
    pace.finish().await?;
    let arrived = tokio::time::timeout(Duration::from_secs(30), consumed).await???;
    let mut latencies: Vec<Duration> = arrived
        .into_iter()
        .filter_map(|(i, at)| sent.get(i).map(|t| at - *t))
        .collect();
    latencies.sort();
    throwaway.close().await;
    Ok(latencies)
}

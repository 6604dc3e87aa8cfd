//! Latency at steady rates: publish -> a household state naming the
//! message in `caused_by`, beside the broker's own publish -> consume
//! latency at the same rate.

use super::broker;
use super::common::{Pace, ms, percentile, props};
use dynzero_reconciler::settings::AmqpSettings;
use dynzero_simulator::Message;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// When an output arrived, and the messages it names in `caused_by`.
pub type Arrivals = UnboundedReceiver<(Instant, Vec<String>)>;

/// The household states the hub publishes, counted as they arrive (to time
/// the end of a run) through an exclusive queue on the households exchange.
pub async fn outputs(
    connection: &Connection,
    prefix: &str,
    amqp: &AmqpSettings,
) -> anyhow::Result<Arrivals> {
    let channel = connection.create_channel().await?;
    let queue = format!("{prefix}outputs");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let no_arguments = FieldTable::default;
    channel
        .queue_declare(queue.as_str().into(), exclusive, no_arguments())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            amqp.households_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            no_arguments(),
        )
        .await?;
    let mut outputs = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            no_arguments(),
        )
        .await?;
    let (arrivals_tx, arrivals) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(d)) = outputs.next().await {
            let at = Instant::now();
            let causes: Vec<String> = serde_json::from_slice::<Value>(&d.data)
                .ok()
                .and_then(|v| v["data"]["caused_by"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect();
            if arrivals_tx.send((at, causes)).is_err() {
                break;
            }
        }
    });
    Ok(arrivals)
}

/// Each `(rate, stream)` in turn: the hub's latency, then the broker's.
pub async fn at_steady_rates(
    channel: &Channel,
    amqp: &AmqpSettings,
    prefix: &str,
    runs: [(u32, &[Message]); 3],
    arrivals: &mut Arrivals,
) -> anyhow::Result<()> {
    for (rate, stream) in runs {
        let (latencies, achieved) =
            paced(channel, &amqp.inbound_exchange, stream, rate, arrivals).await?;
        let broker = broker::latency(amqp, prefix, stream, rate).await?;
        println!(
            "latency at {rate} msg/s (published at {achieved:.0} msg/s), publish -> household state ({} samples): p50 {} p99 {} max {} | broker alone: p50 {} p99 {}",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
            ms(percentile(&broker, 0.5)),
            ms(percentile(&broker, 0.99)),
        );
    }
    Ok(())
}

/// Publish `stream` at `rate` and time each message until a household state
/// naming it (in `caused_by`) arrives: the latencies, sorted, and the rate
/// the stream was published at.
async fn paced(
    channel: &Channel,
    exchange: &str,
    stream: &[Message],
    rate: u32,
    arrivals: &mut Arrivals,
) -> anyhow::Result<(Vec<Duration>, f64)> {
    while arrivals.try_recv().is_ok() {}
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut record = |at: Instant, causes: Vec<String>, sent: &mut HashMap<String, Instant>| {
        for c in causes {
            if let Some(t) = sent.remove(&c) {
                latencies.push(at - t);
            }
        }
    };
    let mut pace = Pace::per_second(rate);
    for (i, m) in stream.iter().enumerate() {
        let body: Value = serde_json::from_slice(&m.body)?;
        let cause = format!(
            "{} {}",
            body["source"].as_str().unwrap_or_default(),
            body["id"].as_str().unwrap_or_default()
        );
        pace.until(i).await;
        sent.insert(cause, Instant::now());
        pace.publish(channel, exchange, &m.routing_key, &m.body, props())
            .await?;
        while let Ok((at, causes)) = arrivals.try_recv() {
            record(at, causes, &mut sent);
        }
    }
    let achieved = pace.finish().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !sent.is_empty() {
        match tokio::time::timeout(Duration::from_millis(500), arrivals.recv()).await {
            Ok(Some((at, causes))) => record(at, causes, &mut sent),
            _ => break,
        }
    }
    latencies.sort();
    Ok((latencies, achieved))
}

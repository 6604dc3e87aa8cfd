//! `dynzero bench`: throughput and latency of the whole hub on this machine,
//! beside what the broker alone allows, in one run.
//!
//! Each run uses a fresh database and uniquely named exchanges and queues,
//! so it never touches a deployment's data.

use anyhow::Context;
use chrono::Utc;
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::{AmqpSettings, Settings};
use dynzero_simulator::{City, CityConfig, Message};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct BenchArgs {
    pub households: usize,
    pub events: usize,
    pub rate: u32,
    pub latency_messages: usize,
}

fn props() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/cloudevents+json"))
        .with_delivery_mode(2)
}

/// Publish with confirms, a window of unconfirmed messages in flight.
async fn publish_all(
    channel: &Channel,
    exchange: &str,
    messages: &[Message],
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(512);
    for m in messages {
        pending.push(
            channel
                .basic_publish(
                    exchange.into(),
                    m.routing_key.as_str().into(),
                    Default::default(),
                    &m.body,
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A durable quorum queue for measuring the broker alone, and a consumer on
/// it (manual acks, prefetch 64) over a second channel.
async fn throwaway_queue(
    connection: &lapin::Connection,
    channel: &Channel,
    queue: &str,
) -> anyhow::Result<lapin::Consumer> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    let consumer_channel = connection.create_channel().await?;
    consumer_channel.basic_qos(64, Default::default()).await?;
    Ok(consumer_channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// The ceiling: the same messages through a throwaway quorum queue, published
/// with confirms and consumed with manual acks, with no processing.
async fn broker_limit(url: &str, prefix: &str, messages: &[Message]) -> anyhow::Result<f64> {
    let connection = amqp::connect(url).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    let queue = format!("{prefix}broker-limit");
    let mut consumer = throwaway_queue(&connection, &channel, &queue).await?;
    let total = messages.len();
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            d.ack(BasicAckOptions::default()).await?;
            n += 1;
        }
        Ok::<usize, lapin::Error>(n)
    });
    let mut pending = Vec::new();
    for m in messages {
        pending.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    Default::default(),
                    &m.body,
                    props(),
                )
                .await?,
        );
        if pending.len() >= 512 {
            for c in pending.drain(..) {
                c.await?;
            }
        }
    }
    for c in pending {
        c.await?;
    }
    let consumed = consume.await??;
    let elapsed = started.elapsed();
    anyhow::ensure!(consumed == total, "consumed {consumed} of {total}");
    let _ = channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    let _ = connection.close(200, "OK".into()).await;
    Ok(total as f64 / elapsed.as_secs_f64())
}

async fn fresh_database(server_url: &str) -> anyhow::Result<String> {
    let (server, _) = server_url
        .rsplit_once('/')
        .context("database.url has no database name")?;
    let name = format!("dynzero_bench_{:08x}", rand::random::<u32>());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    Ok(format!("{server}/{name}"))
}

pub async fn run(mut settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let today = clock.today();
    let prefix = format!("bench.{:08x}.", rand::random::<u32>());
    settings.amqp = AmqpSettings {
        url: settings.amqp.url.clone(),
        prefetch: settings.amqp.prefetch,
        ..AmqpSettings::prefixed(&prefix)
    };
    settings.database.url = fresh_database(&settings.database.url).await?;

    let mut city = City::new(CityConfig::city(42, args.households, args.events, today));
    let mut messages = city.backfill();
    messages.extend(city.events());
    let stream = |seed: u64, tag: &str| {
        let mut more = CityConfig::city(seed, args.households, args.latency_messages, today);
        more.tag = tag.into();
        let mut c = City::new(more);
        let mut m = c.backfill();
        m.extend(c.events());
        m.truncate(args.latency_messages);
        m
    };
    let latency_stream = stream(43, "L");
    let latency_stream_half = stream(44, "M");
    println!(
        "machine: {} cores; messages: {} (mixed stream), {} for latency",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        messages.len(),
        latency_stream.len()
    );

    let limit = broker_limit(&settings.amqp.url, &prefix, &messages).await?;
    println!(
        "broker limit (publish with confirms + consume with acks, quorum queue): {limit:.0} msg/s"
    );

    let reconciler = Reconciler::build(settings.clone(), clock.clone()).await?;
    let hub = reconciler.hub().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reconciler.run_until(Parts::ALL, async {
        let _ = stopped.await;
    }));
    let connection = amqp::connect(&settings.amqp.url).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    // Outputs counted as they arrive, to time the end of the run.
    let outputs_channel = connection.create_channel().await?;
    let queue = format!("{prefix}outputs");
    outputs_channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    outputs_channel
        .queue_bind(
            queue.as_str().into(),
            settings.amqp.households_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut outputs = outputs_channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let (arrivals_tx, mut arrivals) =
        tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<String>)>();
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

    // Throughput: everything as fast as the broker takes it; done when every
    // message is settled and every output confirmed on the output exchanges.
    let started = Instant::now();
    publish_all(&channel, &settings.amqp.inbound_exchange, &messages).await?;
    let total = messages.len() as u64;
    let mut db = PgConnection::connect(&settings.database.url).await?;
    loop {
        let m = &hub.metrics;
        let settled = m.processed_count() + m.duplicate_count() + m.rejected_total();
        if settled >= total {
            let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&mut db)
                .await?;
            if outbox == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let throughput = total as f64 / elapsed.as_secs_f64();
    println!(
        "dynzero sustained (publish -> committed state -> outputs confirmed): {throughput:.0} msg/s ({total} messages in {:.1} s) = {:.2} x broker limit",
        elapsed.as_secs_f64(),
        throughput / limit
    );
    while arrivals.try_recv().is_ok() {}

    // Latency at steady rates: publish -> household state naming the message,
    // beside the broker's own publish -> consume latency at the same rate.
    let half = (throughput / 2.0).round().max(1.0) as u32;
    for (rate, stream) in [(args.rate, &latency_stream), (half, &latency_stream_half)] {
        let latencies = paced_latency(
            &channel,
            &settings.amqp.inbound_exchange,
            stream,
            rate,
            &mut arrivals,
        )
        .await?;
        let broker = broker_latency(&settings.amqp.url, &prefix, stream, rate).await?;
        println!(
            "latency at {rate} msg/s, publish -> household state ({} samples): p50 {} p99 {} max {} | broker alone: p50 {} p99 {}",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
            ms(percentile(&broker, 0.5)),
            ms(percentile(&broker, 0.99)),
        );
    }
    let _ = connection.close(200, "OK".into()).await;
    let _ = stop.send(());
    running.await??;
    println!("finished at {}", Utc::now().to_rfc3339());
    Ok(())
}

/// Publish `stream` at `rate` and time each message until a household state
/// naming it (in `caused_by`) arrives.
async fn paced_latency(
    channel: &Channel,
    exchange: &str,
    stream: &[Message],
    rate: u32,
    arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<String>)>,
) -> anyhow::Result<Vec<Duration>> {
    while arrivals.try_recv().is_ok() {}
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut record = |at: Instant, causes: Vec<String>, sent: &mut HashMap<String, Instant>| {
        for c in causes {
            if let Some(t) = sent.remove(&c) {
                latencies.push(at - t);
            }
        }
    };
    let started = Instant::now();
    for (i, m) in stream.iter().enumerate() {
        let body: Value = serde_json::from_slice(&m.body)?;
        let cause = format!(
            "{} {}",
            body["source"].as_str().unwrap_or_default(),
            body["id"].as_str().unwrap_or_default()
        );
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        sent.insert(cause, Instant::now());
        amqp::publish_confirmed(channel, exchange, &m.routing_key, &m.body, props()).await?;
        while let Ok((at, causes)) = arrivals.try_recv() {
            record(at, causes, &mut sent);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !sent.is_empty() {
        match tokio::time::timeout(Duration::from_millis(500), arrivals.recv()).await {
            Ok(Some((at, causes))) => record(at, causes, &mut sent),
            _ => break,
        }
    }
    latencies.sort();
    Ok(latencies)
}

/// The broker's own latency at `rate`: publish with confirms to a throwaway
/// quorum queue, consume with acks, no processing.
async fn broker_latency(
    url: &str,
    prefix: &str,
    stream: &[Message],
    rate: u32,
) -> anyhow::Result<Vec<Duration>> {
    let connection = amqp::connect(url).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    let queue = format!("{prefix}broker-latency");
    let mut consumer = throwaway_queue(&connection, &channel, &queue).await?;
    let total = stream.len();
    let consume = tokio::spawn(async move {
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
        Ok::<_, lapin::Error>(arrived)
    });
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let mut sent = Vec::with_capacity(total);
    for (i, m) in stream.iter().enumerate() {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        sent.push(Instant::now());
        amqp::publish_confirmed(
            &channel,
            "",
            &queue,
            &m.body,
            props().with_message_id(ShortString::from(i.to_string())),
        )
        .await?;
    }
    let arrived = tokio::time::timeout(Duration::from_secs(30), consume).await???;
    let mut latencies: Vec<Duration> = arrived
        .into_iter()
        .filter_map(|(i, at)| sent.get(i).map(|t| at - *t))
        .collect();
    latencies.sort();
    let _ = channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    amqp::close_connection(&connection, "OK").await;
    Ok(latencies)
}

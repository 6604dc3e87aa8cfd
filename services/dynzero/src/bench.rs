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
use lapin::types::{FieldTable, ShortString};
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
    pub backlog: usize,
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
    amqp::declare_quorum_queue(channel, queue, FieldTable::default()).await?;
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
async fn broker_limit(
    amqp_settings: &AmqpSettings,
    prefix: &str,
    messages: &[Message],
) -> anyhow::Result<f64> {
    let connection = amqp::connect(amqp_settings).await?;
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

async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("no database name")?;
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

pub async fn run(mut settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let today = clock.today();
    let prefix = format!("bench.{:08x}.", rand::random::<u32>());
    settings.amqp = AmqpSettings {
        urls: settings.amqp.urls.clone(),
        ca_file: settings.amqp.ca_file.clone(),
        prefetch: settings.amqp.prefetch,
        consumers: settings.amqp.consumers,
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

    let limit = broker_limit(&settings.amqp, &prefix, &messages).await?;
    println!(
        "broker limit (publish with confirms + consume with acks, quorum queue): {limit:.0} msg/s"
    );

    let reconciler = Reconciler::build(settings.clone(), clock.clone()).await?;
    let hub = reconciler.hub().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reconciler.run_until(Parts::ALL, async {
        let _ = stopped.await;
    }));
    let connection = amqp::connect(&settings.amqp).await?;
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
        let broker = broker_latency(&settings.amqp, &prefix, stream, rate).await?;
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
    let _ = stop.send(());
    running.await??;
    if args.backlog > 0 {
        backlog(&settings, &channel, args.backlog, today).await?;
    }
    // Leave nothing behind: the run's queues and its database.
    for queue in [&settings.amqp.queue, &settings.amqp.rejected_queue] {
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "OK".into()).await;
    drop(db);
    drop_database(&settings.database.url).await?;
    println!("finished at {}", Utc::now().to_rfc3339());
    Ok(())
}

/// A process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Scale and memory: `n` messages (a city's backfill, then its events) wait
/// in the queue; then a separate `dynzero run` process drains them. Prints
/// its peak RSS, the drain rate per tenth of the backlog (the first tenth
/// into an almost empty database, the last after everything before it is
/// stored), and PostgreSQL bytes per household at the end.
async fn backlog(
    settings: &Settings,
    channel: &Channel,
    n: usize,
    today: chrono::NaiveDate,
) -> anyhow::Result<()> {
    // About 2.3 messages per household in the backfill; events for the rest.
    let households = (n / 3).max(1);
    let mut config = CityConfig::city(45, households, 0, today);
    config.tag = "B".into();
    let mut city = City::new(config);
    let mut messages = city.backfill();
    messages.truncate(n);
    let backfill = messages.len();
    city.set_events(n - backfill);
    messages.extend(city.events());
    messages.truncate(n);
    let mut db = PgConnection::connect(&settings.database.url).await?;
    // Progress is the last arrival number: counting the inbox itself costs
    // PostgreSQL more and more as it grows, and would slow what it measures.
    let before: i64 = sqlx::query_scalar("SELECT coalesce(max(arrival), 0) FROM inbox")
        .fetch_one(&mut db)
        .await?;
    let started = Instant::now();
    publish_all(channel, &settings.amqp.inbound_exchange, &messages).await?;
    println!(
        "backlog: {n} messages ({backfill} of them the backfill of {households} households) queued in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(messages);

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["run", "--only", "consumer,relay,sweeper"])
        .envs(settings.environment())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("dynzero run has no pid")?;
    let started = Instant::now();
    let target = before + n as i64;
    let tenth = (n as i64 / 10).max(1);
    let mut mark = (started, before);
    let mut rates = Vec::new();
    let mut peak = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(hwm) = peak_rss_kib(pid) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("dynzero run exited early: {status}");
        }
        let stored: i64 = sqlx::query_scalar("SELECT coalesce(max(arrival), 0) FROM inbox")
            .fetch_one(&mut db)
            .await?;
        if stored - mark.1 >= tenth || stored >= target {
            let rate = (stored - mark.1) as f64 / mark.0.elapsed().as_secs_f64();
            // Only windows of backfill messages are compared with each other:
            // the events after it are another mix.
            if stored <= before + backfill as i64 {
                rates.push(rate);
            }
            println!(
                "  {:>3} % of the backlog stored ({stored} facts in all): {rate:.0} msg/s, dynzero RSS peak so far {:.0} MiB",
                (stored - before) * 100 / n as i64,
                peak as f64 / 1024.0
            );
            mark = (Instant::now(), stored);
        }
        if stored >= target {
            break;
        }
    }
    let elapsed = started.elapsed();
    // SIGTERM: a graceful stop.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    let (bytes, households): (i64, i64) = sqlx::query_as(
        "SELECT pg_database_size(current_database()), (SELECT count(*) FROM household)",
    )
    .fetch_one(&mut db)
    .await?;
    let (first, last) = (
        rates.first().copied().unwrap_or_default(),
        rates.last().copied().unwrap_or_default(),
    );
    println!(
        "backlog drained by a separate dynzero process: {n} messages in {:.1} s = {:.0} msg/s; backfill: first tenth {first:.0} msg/s, last full tenth {last:.0} msg/s ({:+.0} %)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        (last / first.max(1.0) - 1.0) * 100.0
    );
    println!(
        "dynzero peak RSS with a backlog of {n} messages: {:.0} MiB",
        peak as f64 / 1024.0
    );
    println!(
        "PostgreSQL: {:.0} MiB for {households} households = {:.0} bytes per household (all facts, indexes and outputs included)",
        bytes as f64 / 1048576.0,
        bytes as f64 / households.max(1) as f64
    );
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
    amqp_settings: &AmqpSettings,
    prefix: &str,
    stream: &[Message],
    rate: u32,
) -> anyhow::Result<Vec<Duration>> {
    let connection = amqp::connect(amqp_settings).await?;
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

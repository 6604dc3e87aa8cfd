//! `dynzero bench`: throughput and latency of the whole hub on this machine,
//! beside what the broker alone allows, in one run.
//!
//! Each run uses a fresh database and uniquely named exchanges and queues,
//! so it never touches a deployment's data.

mod backlog;
mod broker;
pub mod common;
mod latency;

use broker::{publish_all, routed};
use chrono::Utc;
use common::{Running, all_settled};
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::metrics::Metrics;
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::Settings;
use dynzero_simulator::{City, CityConfig, Message};
use lapin::Channel;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct BenchArgs {
    pub households: usize,
    pub events: usize,
    pub rate: u32,
    pub latency_messages: usize,
    pub backlog: usize,
}

pub async fn run(mut settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let today = clock.today();
    // The run gets its own names; the hub keeps the tuning it is given.
    let (prefetch, consumers) = (settings.amqp.prefetch, settings.amqp.consumers);
    let prefix = common::isolate(&mut settings).await?;
    settings.amqp.prefetch = prefetch;
    settings.amqp.consumers = consumers;

    let streams = Streams::new(&args, today);
    println!(
        "machine: {} cores; messages: {} (mixed stream), {} for latency",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        streams.mixed.len(),
        streams.latency.len()
    );
    let limit = broker::limit(&settings.amqp, &prefix, &streams.mixed).await?;
    println!(
        "broker limit (publish with confirms + consume with acks, quorum queue): {limit:.0} msg/s"
    );

    let reconciler = Reconciler::build(settings.clone(), clock.clone()).await?;
    let metrics = reconciler.hub().metrics.clone();
    let running = Running::spawn(|shutdown| reconciler.run_until(Parts::ALL, shutdown));
    let connection = amqp::connect(&settings.amqp).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    amqp::declare_rejected_queue(&connection, &settings.amqp).await?;
    let mut arrivals = latency::outputs(&connection, &prefix, &settings.amqp).await?;

    let throughput = throughput(&settings, &channel, &metrics, &streams.mixed, limit).await?;
    while arrivals.try_recv().is_ok() {}
    let half = (throughput / 2.0).round().max(1.0) as u32;
    let four_fifths = (throughput * 0.8).round().max(1.0) as u32;
    let runs = [
        (args.rate, streams.latency.as_slice()),
        (half, streams.latency_half.as_slice()),
        (four_fifths, streams.latency_four_fifths.as_slice()),
    ];
    latency::at_steady_rates(&channel, &settings.amqp, &prefix, runs, &mut arrivals).await?;
    running.stop().await?;

    if args.backlog > 0 {
        backlog::run(&settings, &channel, args.backlog, today).await?;
    }
    // Leave nothing behind: the run's queues and its database.
    for queue in [&settings.amqp.queue, &settings.amqp.rejected_queue] {
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "OK".into()).await;
    common::drop_database(&settings.database.url).await?;
    println!("finished at {}", Utc::now().to_rfc3339());
    Ok(())
}

/// The messages of a run: a mixed stream for throughput, and three more
/// (other seeds, other ids) for latency at three rates: the one asked, half
/// and four fifths of the measured sustained rate.
struct Streams {
    mixed: Vec<Message>,
    latency: Vec<Message>,
    latency_half: Vec<Message>,
    latency_four_fifths: Vec<Message>,
}

impl Streams {
    fn new(args: &BenchArgs, today: chrono::NaiveDate) -> Self {
        let mut city = City::new(CityConfig::city(42, args.households, args.events, today));
        let mut mixed = city.backfill();
        mixed.extend(city.events());
        let stream = |seed: u64, tag: &str| {
            let mut more = CityConfig::city(seed, args.households, args.latency_messages, today);
            more.tag = tag.into();
            let mut c = City::new(more);
            let mut m = c.backfill();
            m.extend(c.events());
            m.truncate(args.latency_messages);
            m
        };
        Self {
            mixed,
            latency: stream(43, "L"),
            latency_half: stream(44, "M"),
            latency_four_fifths: stream(45, "N"),
        }
    }
}

/// Throughput: everything as fast as the broker takes it; done when every
/// message is settled and every output confirmed on the output exchanges.
/// Prints it beside the broker's `limit` and returns it, in messages per
/// second.
async fn throughput(
    settings: &Settings,
    channel: &Channel,
    metrics: &Metrics,
    messages: &[Message],
    limit: f64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    publish_all(channel, &settings.amqp.inbound_exchange, routed(messages)).await?;
    let total = messages.len() as u64;
    let mut db = PgConnection::connect(&settings.database.url).await?;
    while !all_settled(metrics, total, &mut db).await? {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let throughput = total as f64 / elapsed.as_secs_f64();
    println!(
        "dynzero sustained (publish -> committed state -> outputs confirmed): {throughput:.0} msg/s ({total} messages in {:.1} s) = {:.2} x broker limit",
        elapsed.as_secs_f64(),
        throughput / limit
    );
    Ok(throughput)
}

//! `dynzero simulate`: a seeded synthetic city published to the inbound
//! exchange with publisher confirms, as fast as the broker takes it or at a
//! target rate.

use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::settings::Settings;
use dynzero_simulator::{City, CityConfig};
use lapin::BasicProperties;
use lapin::types::ShortString;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub struct SimulateArgs {
    pub households: usize,
    pub events: usize,
    /// Messages per second; 0: as fast as the broker accepts.
    pub rate: u32,
    pub seed: u64,
    /// Deliberately bad messages spread evenly through the stream, each
    /// refused with its reason (a fault run checks every one is recorded).
    pub invalid: usize,
}

/// Unconfirmed messages in flight at most.
const WINDOW: usize = 512;

pub async fn run(settings: Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let today = SystemClock.today();
    let mut config = CityConfig::city(args.seed, args.households, args.events, today);
    // Spread a larger city over more divisions: 4 counties × 5 streets × 6 communities.
    if args.households > 1_000 {
        config.counties = ["210302", "210303", "210304", "210311"]
            .map(String::from)
            .to_vec();
        config.streets_per_county = 5;
        config.communities_per_street = 6;
    }
    let mut city = City::new(config);
    let mut messages = city.backfill();
    messages.extend(city.events());
    let bad = city.bad_messages(args.invalid);
    let every = messages.len() / (bad.len() + 1);
    for (i, m) in bad.into_iter().enumerate() {
        messages.insert((i + 1) * every + i, m);
    }

    let connection = amqp::connect(&settings.amqp).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    amqp::declare_rejected_queue(&connection, &settings.amqp).await?;
    let props = BasicProperties::default()
        .with_content_type(ShortString::from("application/cloudevents+json"))
        .with_delivery_mode(2);
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(1);
    let mut pending = Vec::with_capacity(WINDOW);
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        if let Some(interval) = interval {
            tokio::time::sleep_until((started + interval * i as u32).into()).await;
        }
        pending.push(
            channel
                .basic_publish(
                    settings.amqp.inbound_exchange.as_str().into(),
                    m.routing_key.as_str().into(),
                    Default::default(),
                    &m.body,
                    // Each publish named, as a careful publisher does: two
                    // publishes of the same bytes stay two messages.
                    props
                        .clone()
                        .with_message_id(ShortString::from(format!("simulate-{}-{i}", args.seed))),
                )
                .await?,
        );
        *by_type.entry(m.routing_key.as_str()).or_default() += 1;
        if pending.len() >= WINDOW || interval.is_some() {
            for confirm in pending.drain(..) {
                anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
            }
        }
        if Instant::now() >= next_report {
            let rate = (i + 1) as f64 / started.elapsed().as_secs_f64();
            eprint!(
                "\rpublished {}/{} ({rate:.0} msg/s)   ",
                i + 1,
                messages.len()
            );
            let _ = std::io::stderr().flush();
            next_report += Duration::from_secs(1);
        }
    }
    for confirm in pending {
        anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
    }
    let elapsed = started.elapsed();
    amqp::close_connection(&connection, "OK").await;
    eprintln!();
    println!(
        "published {} messages for {} households in {:.1} s ({:.0} msg/s, confirmed)",
        messages.len(),
        args.households,
        elapsed.as_secs_f64(),
        messages.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    for (event_type, n) in by_type {
        println!("  {event_type}: {n}");
    }
    Ok(())
}

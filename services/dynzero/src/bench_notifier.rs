//! `dynzero bench-notifier`: alerts delivered per second to a local webhook
//! receiver, and the delay from a household turning zero-employment (its
//! registration published) to its community's webhook receiving the alert.
//!
//! Fresh database and uniquely named exchanges and queues, like `bench`.

use crate::bench::common::{self, Pace, Running, ms, percentile, props};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{NaiveDate, Utc};
use dynzero_notifier::seal::{SealingKey, SecuritySettings};
use dynzero_notifier::service::Notifier;
use dynzero_notifier::settings::{NotifierSettings, Settings as NotifierConfig};
use dynzero_notifier::subscription::{SubscriptionSpec, Target};
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::SystemClock;
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::Settings;
use lapin::Channel;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The community every alert of the run is for, and its routing key.
const COMMUNITY: &str = "210302001002";
const PLACEMENT_OVERDUE_KEY: &str = "placement_overdue.21.03.02.001.002";

pub struct NotifierBenchArgs {
    pub alerts: usize,
    pub households: usize,
    pub rate: u32,
}

/// When each alert (by household, or by id when it has none) reached the receiver.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

impl Arrivals {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until `n` alerts have arrived, or fails after `limit`.
    async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + limit;
        while self.len() < n {
            anyhow::ensure!(
                Instant::now() < until,
                "only {} of {n} arrived within {limit:?}",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// For each household published at a time, how long its alert took (sorted).
    fn delays(&self, published: &HashMap<String, Instant>) -> Vec<Duration> {
        let arrived = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut delays: Vec<Duration> = published
            .iter()
            .filter_map(|(h, at)| arrived.get(h).map(|got| got.saturating_duration_since(*at)))
            .collect();
        delays.sort();
        delays
    }
}

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let now = Instant::now();
    if let Ok(event) = serde_json::from_slice::<Value>(&body) {
        let key = event["data"]["household_id"]
            .as_str()
            .or(event["id"].as_str())
            .unwrap_or_default()
            .to_string();
        arrivals
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(now);
    }
    "ok"
}

/// A local webhook receiver noting when each alert arrives.
async fn receiver() -> anyhow::Result<(Arrivals, SocketAddr)> {
    let arrivals = Arrivals::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(receive).with_state(arrivals.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((arrivals, addr))
}

/// The notifier on the run's broker and database, with one subscription:
/// the community's webhook at `addr`.
fn notifier_settings(
    settings: &Settings,
    notifier: NotifierSettings,
    addr: SocketAddr,
) -> NotifierConfig {
    NotifierConfig {
        amqp: settings.amqp.clone(),
        database: settings.database.clone(),
        notifier: NotifierSettings {
            subscriptions: vec![SubscriptionSpec {
                name: "bench".into(),
                division: COMMUNITY.into(),
                kinds: vec![],
                target: Target::Webhook {
                    url: format!("http://{addr}/hook"),
                    secret: "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==".into(),
                },
                pii: Default::default(),
            }],
            // The receiver is on this machine, over plain HTTP.
            allow_insecure_targets: true,
            allowed_targets: vec![addr.to_string()],
            ..notifier
        },
        shutdown: settings.shutdown.clone(),
        // A throwaway key: the bench's secret is sealed like any other.
        security: SecuritySettings {
            key: SealingKey::generate(),
            key_file: String::new(),
        },
    }
}

pub async fn run(
    mut settings: Settings,
    notifier: NotifierSettings,
    args: NotifierBenchArgs,
) -> anyhow::Result<()> {
    common::isolate(&mut settings).await?;
    let (arrivals, addr) = receiver().await?;
    let notifier_settings = notifier_settings(&settings, notifier, addr);
    let connection = amqp::connect(&settings.amqp).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    amqp::declare_rejected_queue(&connection, &settings.amqp).await?;
    dynzero_notifier::consumer::declare(&channel, &notifier_settings).await?;

    let today = dynzero_domain::alerts::shanghai_date(Utc::now());
    let notifier = throughput(
        &settings,
        &channel,
        notifier_settings,
        &arrivals,
        &args,
        today,
    )
    .await?;
    let hub = latency(&settings, &channel, &arrivals, &args, today).await?;
    hub.stop().await?;
    notifier.stop().await?;
    amqp::close_connection(&connection, "bench done").await;
    Ok(())
}

/// Throughput: alerts waiting on the queue, then the notifier started.
/// Returns the notifier, still running.
async fn throughput(
    settings: &Settings,
    channel: &Channel,
    notifier_settings: NotifierConfig,
    arrivals: &Arrivals,
    args: &NotifierBenchArgs,
    today: NaiveDate,
) -> anyhow::Result<Running> {
    for i in 0..args.alerts {
        let body = json!({
            "specversion": "1.0", "id": format!("alert/bench/{i}"), "source": "dynzero",
            "type": "dynzero.alert.placement_overdue", "subject": format!("T-{i}"),
            "time": Utc::now().to_rfc3339(), "datacontenttype": "application/json",
            "data": {"kind": "placement_overdue", "division_code": COMMUNITY,
                     "raised_at": Utc::now().to_rfc3339(), "summary": "bench",
                     "household_id": format!("T-{i}"), "zero_since": today.to_string(), "days": 31},
        });
        publish(
            channel,
            &settings.amqp.alerts_exchange,
            PLACEMENT_OVERDUE_KEY,
            &body,
        )
        .await?;
    }
    let notifier = Notifier::build(notifier_settings).await?;
    let started = Instant::now();
    let running = Running::spawn(|shutdown| notifier.run_until(shutdown));
    arrivals
        .wait_for(args.alerts, Duration::from_secs(600))
        .await?;
    let elapsed = started.elapsed();
    println!(
        "notifier throughput: {} alerts delivered to a local webhook in {:.2} s: {:.0} alerts/s",
        args.alerts,
        elapsed.as_secs_f64(),
        args.alerts as f64 / elapsed.as_secs_f64()
    );
    Ok(running)
}

/// Latency: registrations that make zero-employment households, paced.
/// Returns the hub, still running.
async fn latency(
    settings: &Settings,
    channel: &Channel,
    arrivals: &Arrivals,
    args: &NotifierBenchArgs,
    today: NaiveDate,
) -> anyhow::Result<Running> {
    let reconciler = Reconciler::build(settings.clone(), Arc::new(SystemClock)).await?;
    let hub = Running::spawn(|shutdown| reconciler.run_until(Parts::ALL, shutdown));
    let pace = Pace::per_second(args.rate);
    let mut published = HashMap::new();
    for i in 0..args.households {
        let household = format!("BN-{i}");
        let body = registration(i, &household, today);
        pace.until(i).await;
        published.insert(household, Instant::now());
        publish(
            channel,
            &settings.amqp.inbound_exchange,
            "household.registered",
            &body,
        )
        .await?;
    }
    arrivals
        .wait_for(args.alerts + args.households, Duration::from_secs(300))
        .await?;
    let delays = arrivals.delays(&published);
    println!(
        "latency at {} registrations/s, inbound publish → community webhook: p50 {}, p99 {}, max {} ({} households)",
        args.rate,
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(delays.last().copied().unwrap_or_default()),
        delays.len()
    );
    Ok(hub)
}

/// The `i`th registration: one head of household with nobody employed.
fn registration(i: usize, household: &str, today: NaiveDate) -> Value {
    let birth =
        NaiveDate::from_ymd_opt(1975, 1, 1).expect("a date") + chrono::Duration::days(i as i64);
    let id_number = dynzero_simulator::id_number("210302", birth, i.is_multiple_of(2), i as u32);
    json!({
        "specversion": "1.0", "id": format!("bench-reg-{i}"), "source": "bench/notifier",
        "type": "household.registered", "time": Utc::now().to_rfc3339(),
        "data": {"household_id": household, "division_code": COMMUNITY,
                 "effective_date": today.to_string(),
                 "members": [{"id_number": id_number, "name": "测试", "relation": "head"}]},
    })
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &Value,
) -> anyhow::Result<()> {
    amqp::publish_confirmed(
        channel,
        exchange,
        routing_key,
        body.to_string().as_bytes(),
        props(),
    )
    .await?;
    Ok(())
}

//! `dynzero bench-notifier`: alerts delivered per second to a local webhook
//! receiver, and the delay from a household turning zero-employment (its
//! registration published) to its community's webhook receiving the alert.
//!
//! Fresh database and uniquely named exchanges and queues, like `bench`.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use chrono::Utc;
use dynzero_notifier::service::Notifier;
use dynzero_notifier::settings::{NotifierSettings, Settings as NotifierConfig};
use dynzero_notifier::subscription::{SubscriptionSpec, Target};
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::SystemClock;
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::{AmqpSettings, Settings};
use lapin::BasicProperties;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

async fn fresh_database(server_url: &str) -> anyhow::Result<String> {
    let (server, _) = server_url
        .rsplit_once('/')
        .context("database.url has no database name")?;
    let name = format!("dynzero_bench_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    Ok(format!("{server}/{name}"))
}

async fn wait_for(arrivals: &Arrivals, n: usize, limit: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    while arrivals.len() < n {
        anyhow::ensure!(
            Instant::now() < until,
            "only {} of {n} arrived within {limit:?}",
            arrivals.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().max(1) as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn props() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2)
}

pub async fn run(
    mut settings: Settings,
    notifier: NotifierSettings,
    args: NotifierBenchArgs,
) -> anyhow::Result<()> {
    let prefix = format!("bench.{:08x}.", rand::random::<u32>());
    settings.amqp = AmqpSettings {
        urls: settings.amqp.urls.clone(),
        ca_file: settings.amqp.ca_file.clone(),
        ..AmqpSettings::prefixed(&prefix)
    };
    settings.database.url = fresh_database(&settings.database.url).await?;

    let arrivals = Arrivals::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(receive).with_state(arrivals.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let notifier_settings = NotifierConfig {
        amqp: settings.amqp.clone(),
        database: settings.database.clone(),
        notifier: NotifierSettings {
            subscriptions: vec![SubscriptionSpec {
                name: "bench".into(),
                division: "210302001002".into(),
                kinds: vec![],
                target: Target::Webhook {
                    url: format!("http://{addr}/hook"),
                    secret: "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==".into(),
                },
                pii: Default::default(),
            }],
            ..notifier
        },
        shutdown: settings.shutdown.clone(),
    };
    let connection = amqp::connect(&settings.amqp).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    dynzero_notifier::consumer::declare(&channel, &notifier_settings).await?;

    // Throughput: alerts waiting on the queue, then the notifier started.
    let today = dynzero_domain::alerts::shanghai_date(Utc::now());
    for i in 0..args.alerts {
        let body = json!({
            "specversion": "1.0", "id": format!("alert/bench/{i}"), "source": "dynzero",
            "type": "dynzero.alert.placement_overdue", "subject": format!("T-{i}"),
            "time": Utc::now().to_rfc3339(), "datacontenttype": "application/json",
            "data": {"kind": "placement_overdue", "division_code": "210302001002",
                     "raised_at": Utc::now().to_rfc3339(), "summary": "bench",
                     "household_id": format!("T-{i}"), "zero_since": today.to_string(), "days": 31},
        });
        amqp::publish_confirmed(
            &channel,
            &settings.amqp.alerts_exchange,
            "placement_overdue.21.03.02.001.002",
            body.to_string().as_bytes(),
            props(),
        )
        .await?;
    }
    let notifier = Notifier::build(notifier_settings).await?;
    let (stop_notifier, notifier_stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let notifier_task = tokio::spawn(notifier.run_until(async {
        let _ = notifier_stopped.await;
    }));
    wait_for(&arrivals, args.alerts, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    println!(
        "notifier throughput: {} alerts delivered to a local webhook in {:.2} s: {:.0} alerts/s",
        args.alerts,
        elapsed.as_secs_f64(),
        args.alerts as f64 / elapsed.as_secs_f64()
    );

    // Latency: registrations that make zero-employment households, paced.
    let reconciler = Reconciler::build(settings.clone(), Arc::new(SystemClock)).await?;
    let (stop_hub, hub_stopped) = tokio::sync::oneshot::channel::<()>();
    let hub_task = tokio::spawn(reconciler.run_until(Parts::ALL, async {
        let _ = hub_stopped.await;
    }));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut published = HashMap::new();
    let mut next = Instant::now();
    for i in 0..args.households {
        let household = format!("BN-{i}");
        let birth = chrono::NaiveDate::from_ymd_opt(1975, 1, 1).expect("a date")
            + chrono::Duration::days(i as i64);
        let body = json!({
            "specversion": "1.0", "id": format!("bench-reg-{i}"), "source": "bench/notifier",
            "type": "household.registered", "time": Utc::now().to_rfc3339(),
            "data": {"household_id": household, "division_code": "210302001002",
                     "effective_date": today.to_string(),
                     "members": [{"id_number": dynzero_simulator::id_number("210302", birth, i % 2 == 0, i as u32),
                                  "name": "测试", "relation": "head"}]},
        });
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
        next += interval;
        published.insert(household, Instant::now());
        amqp::publish_confirmed(
            &channel,
            &settings.amqp.inbound_exchange,
            "household.registered",
            body.to_string().as_bytes(),
            props(),
        )
        .await?;
    }
    wait_for(
        &arrivals,
        args.alerts + args.households,
        Duration::from_secs(300),
    )
    .await?;
    let mut delays: Vec<Duration> = {
        let arrived = arrivals.0.lock().unwrap_or_else(|e| e.into_inner());
        published
            .iter()
            .filter_map(|(h, at)| arrived.get(h).map(|got| got.saturating_duration_since(*at)))
            .collect()
    };
    delays.sort();
    println!(
        "latency at {} registrations/s, inbound publish → community webhook: p50 {}, p99 {}, max {} ({} households)",
        args.rate,
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(delays.last().copied().unwrap_or_default()),
        delays.len()
    );
    let _ = stop_hub.send(());
    hub_task.await??;
    let _ = stop_notifier.send(());
    notifier_task.await??;
    amqp::close_connection(&connection, "bench done").await;
    Ok(())
}

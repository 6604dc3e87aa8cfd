//! The hub under test: the real reconciler, in this process or as a child
//! process of the `dynzero` binary, on a fresh database and uniquely named
//! exchanges and queues.

use crate::{TestBroker, TestDatabase, amqp_url, fresh_database, unique_name};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dynzero_contracts::inbound;
use dynzero_domain::reconcile::{HouseholdFacts, reconcile};
use dynzero_domain::rules::Rules;
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, ManualClock};
use dynzero_reconciler::hub::Hub;
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::{AmqpSettings, DatabaseSettings, Settings};
use lapin::message::Delivery;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A seeded city's registrations and initial employments, then later
/// events, as of `today`: (routing key, body) in publishing order.
pub fn scenario(
    seed: u64,
    households: usize,
    events: usize,
    today: NaiveDate,
) -> Vec<(String, Vec<u8>)> {
    let mut city = dynzero_simulator::City::new(dynzero_simulator::CityConfig::small(
        seed, households, events, today,
    ));
    let mut messages = city.backfill();
    messages.extend(city.events());
    messages
        .into_iter()
        .map(|m| (m.routing_key, m.body))
        .collect()
}

/// Noon in Asia/Shanghai on `day`: a fixed "now" for a test.
pub fn noon(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(4, 0, 0).expect("04:00 exists"))
}

/// A day to run scenarios on, so results never depend on the real date.
pub fn scenario_today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).expect("a real date")
}

/// Settings for a test: its own database, prefixed exchange and queue names.
pub fn test_settings(db_url: &str, amqp: &str) -> Settings {
    let prefix = format!("{}.", unique_name("hub"));
    Settings {
        amqp: AmqpSettings {
            poison_after: 3,
            ..AmqpSettings::prefixed(&prefix).with_url(amqp)
        },
        database: DatabaseSettings {
            url: db_url.to_string(),
            max_connections: 4,
            ..DatabaseSettings::defaults()
        },
        ..Settings::defaults()
    }
}

/// Everything a test needs around one hub: database, settings, clock, and
/// capture queues bound to the output exchanges before the hub starts.
pub struct Fixture {
    pub db: TestDatabase,
    pub settings: Settings,
    pub clock: ManualClock,
    pub broker: TestBroker,
    /// Bound to the households exchange with `#`.
    pub states: String,
    /// Bound to the alerts exchange with `#`.
    pub alerts: String,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let db = fresh_database().await;
        let settings = test_settings(db.url(), &amqp_url());
        Fixture::with(db, settings).await
    }

    pub async fn with(db: TestDatabase, settings: Settings) -> Fixture {
        let broker = TestBroker::connect().await;
        amqp::declare_topology(broker.channel(), &settings.amqp)
            .await
            .expect("declaring the hub's topology");
        amqp::declare_rejected_queue(broker.connection(), &settings.amqp)
            .await
            .expect("declaring the rejected queue");
        let states = broker
            .capture(&settings.amqp.households_exchange, "#")
            .await;
        let alerts = broker.capture(&settings.amqp.alerts_exchange, "#").await;
        Fixture {
            db,
            settings,
            clock: ManualClock::new(noon(scenario_today())),
            broker,
            states,
            alerts,
        }
    }

    /// Start the reconciler in this process.
    pub async fn start(&self) -> RunningHub {
        RunningHub::start(self.settings.clone(), Arc::new(self.clock.clone())).await
    }

    /// Publish inbound messages with confirms.
    pub async fn publish(&self, messages: &[(String, Vec<u8>)]) {
        for (key, body) in messages {
            self.broker
                .publish(
                    &self.settings.amqp.inbound_exchange,
                    key,
                    body,
                    lapin::BasicProperties::default()
                        .with_content_type("application/cloudevents+json".into())
                        .with_delivery_mode(2),
                )
                .await;
        }
    }

    /// Wait until the latest state per household (highest version seen so far
    /// on `states`) satisfies `done`; returns them.
    pub async fn latest_states(
        &self,
        seen: &mut BTreeMap<String, Value>,
        deadline: Duration,
        done: impl Fn(&BTreeMap<String, Value>) -> bool,
    ) {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let batch = self
                .broker
                .drain(&self.states, |_| false, Duration::from_millis(300))
                .await;
            merge_latest(seen, &batch);
            if done(seen) || tokio::time::Instant::now() >= until {
                return;
            }
        }
    }
}

/// Keep the highest `version` per household.
pub fn merge_latest(seen: &mut BTreeMap<String, Value>, deliveries: &[Delivery]) {
    for d in deliveries {
        let event: Value = serde_json::from_slice(&d.data).expect("outputs are JSON");
        let data = event["data"].clone();
        let household = data["household_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let version = data["version"].as_i64().unwrap_or_default();
        let newer = seen
            .get(&household)
            .is_none_or(|old| old["version"].as_i64().unwrap_or_default() < version);
        if newer {
            seen.insert(household, data);
        }
    }
}

/// A state's content: without `version` and `caused_by`.
pub fn content(state: &Value) -> Value {
    let mut state = state.clone();
    if let Some(map) = state.as_object_mut() {
        map.remove("version");
        map.remove("caused_by");
    }
    state
}

/// What the domain core computes for these message bodies applied in the
/// given order, as of `today`: household_id → state content.
pub fn expected_states(
    bodies: &[&[u8]],
    today: NaiveDate,
    rules: &Rules,
) -> BTreeMap<String, Value> {
    let mut registrations = Vec::new();
    let mut employment = Vec::new();
    let mut visits = Vec::new();
    let mut subsidy_changes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (arrival, body) in bodies.iter().enumerate() {
        let Ok(mut m) = inbound::parse(body, inbound::DEFAULT_MAX_BODY_BYTES, today) else {
            continue;
        };
        if !seen.insert((m.source.clone(), m.id.clone())) {
            continue;
        }
        m.fact.set_arrival(arrival as i64 + 1);
        match m.fact {
            inbound::InboundFact::Registration(r) => registrations.push(r),
            inbound::InboundFact::Visit {
                visit, findings, ..
            } => {
                visits.push(visit);
                employment.extend(findings);
            }
            inbound::InboundFact::Layoff(n) => {
                if n.stage == dynzero_domain::facts::LayoffStage::Effective {
                    employment.extend(n.employment_ends());
                }
            }
            inbound::InboundFact::Employment(f) => employment.push(f),
            inbound::InboundFact::Subsidy { change, .. } => subsidy_changes.push(change),
            inbound::InboundFact::Posting(_) => {}
        }
    }
    let households: std::collections::BTreeSet<_> = registrations
        .iter()
        .map(|r| r.household_id.clone())
        .collect();
    let mut out = BTreeMap::new();
    for h in households {
        let facts = HouseholdFacts {
            household_id: h.clone(),
            registrations: registrations.clone(),
            employment: employment.clone(),
            visits: visits
                .iter()
                .filter(|v| v.household_id == h)
                .cloned()
                .collect(),
            subsidy_changes: subsidy_changes.clone(),
        };
        if let Some(r) = reconcile(&facts, today, rules) {
            out.insert(
                h.to_string(),
                content(&dynzero_contracts::outbound::state_data(&r.state, 0, &[])),
            );
        }
    }
    out
}

/// The reconciler running in this process.
pub struct RunningHub {
    pub hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningHub {
    pub async fn start(settings: Settings, clock: Arc<dyn Clock>) -> RunningHub {
        let reconciler = Reconciler::build(settings, clock)
            .await
            .expect("building the reconciler");
        let hub = reconciler.hub().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(reconciler.run_until(Parts::ALL, async {
            let _ = stopped.await;
        }));
        RunningHub {
            hub,
            stop: Some(stop),
            task,
        }
    }

    /// Messages settled so far: applied, duplicate or rejected.
    pub fn settled(&self) -> u64 {
        let m = &self.hub.metrics;
        m.processed_count() + m.duplicate_count() + m.rejected_total()
    }

    /// Graceful stop: finish in-flight work, flush the relay.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), &mut self.task)
            .await
            .expect("the hub stops within a minute")
            .expect("the hub task did not panic")
            .expect("the hub stopped cleanly");
    }
}

/// The `dynzero` binary cargo built beside this test.
pub fn dynzero_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join(format!("dynzero{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// The `dynzero` binary as [`dynzero_command`] makes it, with its notifier
/// allowed to deliver to a receiver on this machine (plain HTTP on
/// 127.0.0.1, which the target policy refuses otherwise) and a throwaway key
/// sealing the subscriptions' secrets.
pub fn dynzero_command_with_local_targets(settings: &Settings) -> tokio::process::Command {
    let mut command = dynzero_command(settings);
    command
        .env("DYNZERO__NOTIFIER__ALLOW_INSECURE_TARGETS", "true")
        .env("DYNZERO__NOTIFIER__ALLOWED_TARGETS", "127.0.0.1")
        .env(
            "DYNZERO__SECURITY__KEY",
            "dGVzdHMtbG9jYWwtdGFyZ2V0cy1zZWFsaW5nLWtleSE=",
        );
    command
}

/// The `dynzero` binary with these settings in its environment, the way a
/// deployment passes them; add the subcommand.
pub fn dynzero_command(settings: &Settings) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(dynzero_binary());
    command
        .envs(settings.environment())
        // `run` includes the read API: any free port, so tests never collide.
        .env("DYNZERO__API__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    command
}

/// `dynzero run` as a child process with these settings.
pub fn spawn_dynzero(settings: &Settings) -> tokio::process::Child {
    dynzero_command(settings)
        .arg("run")
        .spawn()
        .expect("starting dynzero run")
}

//! A simulated city through real `dynzero run` processes, once without
//! faults (the reference) and once with them, and the two outcomes compared:
//! the failover run (a broker node dies) and the chaos run (hubs killed, the
//! broker stopped, the database refusing connections, a failing webhook).
//!
//! Sizes come from the caller, so CI runs a smoke of each and the scripts in
//! `tests/faultruns/` run the long ones (RELIABILITY.md records them).

use crate::hub::{dynzero_command, test_settings};
use crate::{TestDatabase, amqp_url, eventually, fresh_database};
use dynzero_reconciler::amqp;
use dynzero_reconciler::settings::Settings;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// The city a run publishes (`dynzero simulate` with these arguments).
#[derive(Debug, Clone, Copy)]
pub struct City {
    pub households: usize,
    pub events: usize,
    pub invalid: usize,
    pub seed: u64,
}

/// What a run left behind, everything a fault could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Per household: its last version and its state (`content`).
    pub households: BTreeMap<String, (i64, String)>,
    /// Every alert id the hub raised.
    pub alerts: BTreeSet<String>,
    /// How many alerts of each kind each household (or division, for the
    /// alerts about no household) got.
    pub alerts_per_kind: BTreeMap<(String, String), i64>,
    /// Every rejection: reason, routing key and an MD5 of the body.
    pub rejections: Vec<(String, String, String)>,
}

/// What went over the wire, which faults may repeat but never lose.
#[derive(Debug, Default, Clone)]
pub struct Wire {
    pub alert_messages: usize,
    pub alert_ids: BTreeSet<String>,
    pub state_messages: usize,
    /// (household id, version) of every state message.
    pub states: BTreeSet<(String, i64)>,
}

impl Wire {
    pub fn duplicate_alerts(&self) -> usize {
        self.alert_messages - self.alert_ids.len()
    }
    pub fn duplicate_states(&self) -> usize {
        self.state_messages - self.states.len()
    }
}

/// One hub deployment under test: its database, settings and processes.
pub struct Deployment {
    pub db: TestDatabase,
    pub pool: PgPool,
    pub settings: Settings,
    pub hubs: Vec<Option<Child>>,
    capture_states: String,
    capture_alerts: String,
    pub published: usize,
    started: Instant,
    /// More queues of the run (a notifier's) to delete at [`Deployment::stop`].
    pub queues: Vec<String>,
}

impl Deployment {
    /// A fresh database and uniquely named topology on the brokers at
    /// `urls` (failover between them), with durable capture queues bound to
    /// the outputs before any hub starts; no hub runs yet.
    pub async fn new(urls: &[String]) -> Deployment {
        let db = fresh_database().await;
        let mut settings = test_settings(db.url(), &urls[0]);
        settings.amqp.urls = urls.to_vec();
        // Under faults a message may be redelivered a few times; poison must
        // stay what it is (a message that fails on its data).
        settings.amqp.poison_after = 5;
        let connection = amqp::connect(&settings.amqp).await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        amqp::declare_topology(&channel, &settings.amqp)
            .await
            .expect("topology");
        let capture_states = format!("{}.capture.states", settings.amqp.queue);
        let capture_alerts = format!("{}.capture.alerts", settings.amqp.queue);
        for (queue, exchange) in [
            (&capture_states, &settings.amqp.households_exchange),
            (&capture_alerts, &settings.amqp.alerts_exchange),
        ] {
            dynzero_runtime::amqp::declare_quorum_queue(&channel, queue, FieldTable::default())
                .await
                .expect("capture queue");
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("binding the capture queue");
        }
        amqp::declare_rejected_queue(&connection, &settings.amqp)
            .await
            .expect("rejected queue");
        dynzero_runtime::amqp::close_connection(&connection, "declared").await;
        let pool = db.pool().await;
        Deployment {
            db,
            pool,
            settings,
            hubs: Vec::new(),
            capture_states,
            capture_alerts,
            published: 0,
            started: Instant::now(),
            queues: Vec::new(),
        }
    }

    /// Start hub process number `i` (consumer, relay and sweeper).
    pub fn start_hub(&mut self, i: usize) {
        let child = dynzero_command(&self.settings)
            .args(["run", "--only", "consumer,relay,sweeper"])
            .env("RUST_LOG", "error")
            .spawn()
            .expect("spawning dynzero run");
        if self.hubs.len() <= i {
            self.hubs.resize_with(i + 1, || None);
        }
        self.hubs[i] = Some(child);
    }

    /// SIGKILL hub `i`, as an OOM killer or a lost machine would.
    pub async fn kill_hub(&mut self, i: usize) {
        if let Some(mut child) = self.hubs[i].take() {
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("reaping the hub");
        }
    }

    /// Publish the city with `dynzero simulate` (confirmed); returns the count.
    pub async fn publish(&mut self, city: City) -> usize {
        let out = dynzero_command(&self.settings)
            .args([
                "simulate",
                "--households",
                &city.households.to_string(),
                "--events",
                &city.events.to_string(),
                "--invalid",
                &city.invalid.to_string(),
                "--seed",
                &city.seed.to_string(),
            ])
            .output()
            .await
            .expect("running dynzero simulate");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "dynzero simulate failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let count: usize = stdout
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {stdout:?}"));
        self.published += count;
        count
    }

    /// Messages the hub has taken in so far (stored or rejected). Answers
    /// `None` while the database refuses connections.
    pub async fn processed(&self) -> Option<usize> {
        sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM rejection)",
        )
        .fetch_one(&self.pool)
        .await
        .ok()
        .map(|n| n as usize)
    }

    /// Wait until `n` messages are taken in.
    pub async fn until_processed(&self, n: usize, deadline: Duration) {
        eventually(deadline, &format!("{n} messages processed"), || async {
            self.processed().await.filter(|&p| p >= n).map(|_| ())
        })
        .await;
    }

    /// Wait until every published message is taken in and the outbox is empty.
    pub async fn until_settled(&self, deadline: Duration) -> Duration {
        let published = self.published;
        eventually(
            deadline,
            "every message processed, the outbox empty",
            || async {
                let processed = self.processed().await?;
                let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                    .fetch_one(&self.pool)
                    .await
                    .ok()?;
                (processed >= published && outbox == 0).then_some(())
            },
        )
        .await;
        self.started.elapsed()
    }

    pub async fn outcome(&self) -> Outcome {
        let households = sqlx::query_as::<_, (String, i64, String)>(
            "SELECT household_id, version, coalesce(content::text, '') FROM household",
        )
        .fetch_all(&self.pool)
        .await
        .expect("households")
        .into_iter()
        .map(|(id, version, content)| (id, (version, content)))
        .collect();
        let alerts = sqlx::query_scalar::<_, String>("SELECT id FROM alert")
            .fetch_all(&self.pool)
            .await
            .expect("alerts")
            .into_iter()
            .collect();
        let alerts_per_kind = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT kind, coalesce(household_id, division_code), count(*) FROM alert GROUP BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await
        .expect("alerts per kind")
        .into_iter()
        .map(|(kind, about, n)| ((kind, about), n))
        .collect();
        let rejections = sqlx::query_as::<_, (String, String, String)>(
            "SELECT reason, routing_key, md5(coalesce(body, ''::bytea)) FROM rejection
             ORDER BY 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await
        .expect("rejections");
        Outcome {
            households,
            alerts,
            alerts_per_kind,
            rejections,
        }
    }

    /// Everything the capture queues hold (the outbox is empty by now, so
    /// every output has been confirmed by the broker).
    pub async fn wire(&self, expected: &Outcome) -> Wire {
        let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM household_version")
            .fetch_one(&self.pool)
            .await
            .expect("versions");
        let connection = amqp::connect(&self.settings.amqp).await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut wire = Wire::default();
        let deadline = Duration::from_secs(60);
        take(&channel, &self.capture_alerts, deadline, |body| {
            wire.alert_messages += 1;
            if let Some(id) = body["id"].as_str() {
                wire.alert_ids.insert(id.to_owned());
            }
            wire.alert_ids.len() >= expected.alerts.len()
        })
        .await;
        take(&channel, &self.capture_states, deadline, |body| {
            wire.state_messages += 1;
            let id = body["data"]["household_id"].as_str().unwrap_or_default();
            let version = body["data"]["version"].as_i64().unwrap_or_default();
            wire.states.insert((id.to_owned(), version));
            wire.states.len() as i64 >= versions
        })
        .await;
        dynzero_runtime::amqp::close_connection(&connection, "drained").await;
        wire
    }

    pub async fn stop(mut self) {
        for i in 0..self.hubs.len() {
            self.kill_hub(i).await;
        }
        // The run's queues are durable: left behind, every run would add
        // four to the broker.
        if let Ok(connection) = amqp::connect(&self.settings.amqp).await {
            if let Ok(channel) = connection.create_channel().await {
                let a = &self.settings.amqp;
                let named = [
                    &a.queue,
                    &a.rejected_queue,
                    &self.capture_states,
                    &self.capture_alerts,
                ];
                for queue in named.into_iter().chain(&self.queues) {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                }
            }
            dynzero_runtime::amqp::close_connection(&connection, "stopped").await;
        }
        self.pool.close().await;
        self.db.drop_database().await;
    }
}

/// Take messages off `queue` until `enough` says so (then whatever else is
/// already there, to count repeats) or `deadline` passes.
async fn take(
    channel: &lapin::Channel,
    queue: &str,
    deadline: Duration,
    mut enough: impl FnMut(&Value) -> bool,
) {
    let until = Instant::now() + deadline;
    let mut done = false;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get");
        match got {
            Some(message) => {
                let body: Value =
                    serde_json::from_slice(&message.delivery.data).unwrap_or_default();
                message
                    .delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                done |= enough(&body);
            }
            // Everything that was confirmed is in the queue: once it is
            // empty after enough arrived, nothing more is coming.
            None if done || Instant::now() >= until => return,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The reference: the same city through one hub on the machine's broker, no faults.
pub async fn reference(city: City) -> (Outcome, Wire, Duration) {
    let mut deployment = Deployment::new(&[amqp_url()]).await;
    deployment.start_hub(0);
    deployment.publish(city).await;
    let took = deployment.until_settled(Duration::from_secs(1800)).await;
    let outcome = deployment.outcome().await;
    let wire = deployment.wire(&outcome).await;
    deployment.stop().await;
    (outcome, wire, took)
}

/// How a faulty run differs from the reference; empty when it does not.
pub struct Differences(pub Vec<String>);

/// How the alerts raised differ from the reference's: ids only one side
/// has, and alerts (by kind and household) only one side has. Like
/// versions, these follow batching: a spell is named by the version that
/// began it, and a state that lasts only inside one batch is never
/// published, so it raises nothing (RELIABILITY.md, "What faults change").
pub fn alert_differences(reference: &Outcome, run: &Outcome) -> String {
    let missing = reference.alerts.difference(&run.alerts).count();
    let extra = run.alerts.difference(&reference.alerts).count();
    let keys: BTreeSet<_> = reference
        .alerts_per_kind
        .keys()
        .chain(run.alerts_per_kind.keys())
        .collect();
    let (mut fewer, mut more) = (0, 0);
    for key in keys {
        let r = reference.alerts_per_kind.get(key).copied().unwrap_or(0);
        let n = run.alerts_per_kind.get(key).copied().unwrap_or(0);
        fewer += (r - n).max(0);
        more += (n - r).max(0);
    }
    format!(
        "alert ids: {missing} of the reference's not raised, {extra} others raised; \
         by kind and household: {fewer} fewer, {more} more"
    )
}

/// Households whose last version number differs from the reference's.
/// Not a fault: a version is one published change, and how many changes a
/// household goes through depends on how its facts were batched, which
/// differs between two fault-free runs too (a batch folds all it holds).
pub fn versions_differ(reference: &Outcome, run: &Outcome) -> usize {
    reference
        .households
        .iter()
        .filter(|(id, (version, _))| run.households.get(*id).map(|(v, _)| v) != Some(version))
        .count()
}

impl Differences {
    pub fn between(reference: &Outcome, run: &Outcome, wire: &Wire) -> Differences {
        let mut out = Vec::new();
        let states_differ = reference
            .households
            .iter()
            .filter(|(id, (_, content))| run.households.get(*id).map(|(_, c)| c) != Some(content))
            .count();
        if states_differ > 0 || reference.households.len() != run.households.len() {
            out.push(format!(
                "{states_differ} household states differ ({} vs {} households)",
                reference.households.len(),
                run.households.len()
            ));
        }
        let gaps = run
            .households
            .iter()
            .filter(|(id, (version, _))| {
                (1..=*version).any(|v| !wire.states.contains(&((*id).clone(), v)))
            })
            .count();
        if gaps > 0 {
            out.push(format!("{gaps} households miss a published version"));
        }
        if reference.rejections != run.rejections {
            out.push(format!(
                "rejections differ: reference {:?}…, run {:?}…",
                reference.rejections.iter().take(5).collect::<Vec<_>>(),
                run.rejections.iter().take(5).collect::<Vec<_>>()
            ));
        }
        let unseen: Vec<_> = run.alerts.difference(&wire.alert_ids).collect();
        if !unseen.is_empty() {
            out.push(format!("{} alert ids never published", unseen.len()));
        }
        Differences(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "none");
        }
        write!(f, "{}", self.0.join("; "))
    }
}

/// A size from the environment (the long runs), or the smoke's default.
pub fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

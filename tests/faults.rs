//! The reconciler under faults, against the real RabbitMQ and PostgreSQL:
//! killed mid-run, its database or its broker out of reach for a while, two
//! of them on one queue. Each ends where an uninterrupted run ends — the
//! states the domain core computes for the same facts — with nothing rejected
//! and no output published twice with different contents (contract §8).

use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::metrics::TRANSIENT_ERRORS;
use dynzero_tests::hub::{
    Fixture, RunningHub, content, expected_states, scenario, scenario_today, spawn_dynzero,
    test_settings,
};
use dynzero_tests::{
    TcpProxy, amqp_addr, amqp_url, amqp_url_via, eventually, fresh_database, pg_addr, pg_server_url,
};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;
use sqlx::{Connection, PgPool};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

type Messages = Vec<(String, Vec<u8>)>;

fn shuffled(messages: &Messages, seed: u64) -> Messages {
    let mut shuffled = messages.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(seed));
    shuffled
}

fn bodies(messages: &Messages) -> Vec<&[u8]> {
    messages.iter().map(|(_, b)| b.as_slice()).collect()
}

/// Distinct (source, id): the inbox rows once every message is applied.
fn distinct_ids(messages: &Messages) -> i64 {
    let ids: BTreeSet<(String, String)> = messages
        .iter()
        .map(|(_, body)| {
            let event: Value = serde_json::from_slice(body).expect("scenario messages are JSON");
            (
                event["source"].as_str().unwrap_or_default().to_string(),
                event["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    ids.len() as i64
}

/// Publish with confirms, many in flight at a time: the scenarios here are
/// large, and one round trip per message would make publishing the slow part.
async fn publish_pipelined(fixture: &Fixture, messages: &[(String, Vec<u8>)]) {
    let channel = fixture.broker.channel();
    let exchange = fixture.settings.amqp.inbound_exchange.as_str();
    let properties = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2);
    for chunk in messages.chunks(500) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (key, body) in chunk {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties.clone(),
                )
                .await
                .unwrap_or_else(|e| panic!("cannot publish to {exchange}: {e}"));
            confirms.push(confirm);
        }
        for confirm in confirms {
            match confirm.await.expect("a confirm for every publish") {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                other => panic!("the broker did not take a scenario message: {other:?}"),
            }
        }
    }
}

/// A count from the test's own connection; `None` while the service has not
/// yet created the table (or the query fails for any other reason).
async fn count(pool: &PgPool, sql: &'static str) -> Option<i64> {
    sqlx::query_scalar(sql).fetch_one(pool).await.ok()
}

/// Wait until every distinct message is applied (inbox) and every output
/// they caused is confirmed by the broker (outbox empty).
async fn wait_until_applied_and_published(pool: &PgPool, distinct: i64, deadline: Duration) {
    eventually(
        deadline,
        "every message applied and every output published",
        || async {
            let inbox = count(pool, "SELECT count(*) FROM inbox").await?;
            let outbox = count(pool, "SELECT count(*) FROM outbox").await?;
            (inbox == distinct && outbox == 0).then_some(())
        },
    )
    .await;
}

/// Everything on a capture queue: drained until a pass finds it empty. Only
/// meaningful once the outbox is empty, when every output is confirmed and
/// therefore already on the queue.
async fn drain_everything(fixture: &Fixture, queue: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let batch = fixture
            .broker
            .drain(queue, |_| false, Duration::from_millis(300))
            .await;
        if batch.is_empty() {
            return events;
        }
        events.extend(
            batch
                .iter()
                .map(|d| serde_json::from_slice::<Value>(&d.data).expect("outputs are JSON")),
        );
    }
}

/// Outputs may be published more than once (at least once, stable id), but a
/// second copy must be the same output: keyed by `key`, the full events must agree.
fn assert_copies_identical(events: &[Value], what: &str, key: impl Fn(&Value) -> String) {
    let mut by_key: BTreeMap<String, &Value> = BTreeMap::new();
    for event in events {
        let k = key(event);
        if let Some(first) = by_key.insert(k.clone(), event) {
            assert_eq!(
                first, event,
                "{what} {k} published with two different contents"
            );
        }
    }
}

/// Every published state and alert so far; checks that repeated outputs are
/// copies, and returns the latest state (highest version) per household.
async fn published_outputs(fixture: &Fixture) -> BTreeMap<String, Value> {
    let states = drain_everything(fixture, &fixture.states).await;
    let alerts = drain_everything(fixture, &fixture.alerts).await;
    assert_copies_identical(&states, "household version", |e| {
        format!("{} v{}", e["data"]["household_id"], e["data"]["version"])
    });
    assert_copies_identical(&states, "state id", |e| e["id"].to_string());
    assert_copies_identical(&alerts, "alert id", |e| e["id"].to_string());
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for event in &states {
        let data = &event["data"];
        let household = data["household_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let newer = latest
            .get(&household)
            .is_none_or(|old| old["version"].as_i64() < data["version"].as_i64());
        if newer {
            latest.insert(household, data.clone());
        }
    }
    latest
}

fn assert_states(latest: &BTreeMap<String, Value>, expected: &BTreeMap<String, Value>) {
    let got: BTreeSet<&String> = latest.keys().collect();
    let want: BTreeSet<&String> = expected.keys().collect();
    assert_eq!(got, want, "a state for exactly the households that exist");
    for (household, state) in latest {
        assert_eq!(
            Some(&content(state)),
            expected.get(household),
            "household {household}"
        );
    }
}

/// Nothing reached the rejected queue; the short wait only makes room for a
/// rejection that is on its way (nothing is expected at all).
async fn assert_nothing_rejected(fixture: &Fixture) {
    let rejected = fixture
        .broker
        .drain(
            &fixture.settings.amqp.rejected_queue,
            |got| !got.is_empty(),
            Duration::from_millis(500),
        )
        .await;
    assert!(
        rejected.is_empty(),
        "rejected: {:?}",
        rejected
            .iter()
            .map(|d| String::from_utf8_lossy(&d.data).into_owned())
            .collect::<Vec<_>>()
    );
}

/// `dynzero_reconciler_transient_errors_total`: how often processing waited
/// for a dependency.
fn transient_errors(hub: &RunningHub) -> u64 {
    hub.hub
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(TRANSIENT_ERRORS)?.trim().parse().ok())
        .unwrap_or_default()
}

/// A child killed with SIGKILL mid-run leaves committed work, unpublished
/// outbox rows and unacknowledged deliveries behind; a new child picks them up
/// and ends where an uninterrupted run ends, and shuts down cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_restart_reaches_the_uninterrupted_states() {
    // The child runs on the real clock, so the scenario and the expectation
    // take the real date in Asia/Shanghai.
    let today = SystemClock.today();
    let fixture = Fixture::new().await;
    let messages = scenario(21, 700, 3300, today);
    assert!(
        messages.len() >= 5000,
        "scenario has {} messages",
        messages.len()
    );
    let rules = fixture.settings.rules.rules().expect("default rules");
    let expected = expected_states(&bodies(&messages), today, &rules);
    assert!(expected.len() >= 650, "{} households exist", expected.len());
    let distinct = distinct_ids(&messages);
    let pool = fixture.db.pool().await;

    let shuffled = shuffled(&messages, 3);
    let mut first = spawn_dynzero(&fixture.settings);
    // Killed as soon as it is well into the work, whether or not publishing
    // has finished: the kill must land mid-run however fast the hub is.
    let kill_mid_run = async {
        eventually(
            Duration::from_secs(180),
            "the first child applied 1500 messages",
            || async { (count(&pool, "SELECT count(*) FROM inbox").await? >= 1500).then_some(()) },
        )
        .await;
        first.start_kill().expect("SIGKILL to the first child");
        tokio::time::timeout(Duration::from_secs(30), first.wait())
            .await
            .expect("the killed child exits")
            .expect("waiting for the killed child")
    };
    let ((), status) = tokio::join!(publish_pipelined(&fixture, &shuffled), kill_mid_run);
    assert!(!status.success(), "killed, not finished: {status:?}");
    let applied_when_killed = count(&pool, "SELECT count(*) FROM inbox")
        .await
        .expect("inbox count");
    assert!(
        applied_when_killed < distinct,
        "killed mid-run: {applied_when_killed} of {distinct} applied"
    );

    let mut second = spawn_dynzero(&fixture.settings);
    wait_until_applied_and_published(&pool, distinct, Duration::from_secs(240)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM rejection").await,
        Some(0),
        "nothing rejected"
    );
    let latest = published_outputs(&fixture).await;
    assert_nothing_rejected(&fixture).await;
    assert_eq!(
        SystemClock.today(),
        today,
        "the date in Shanghai changed during the test: run it again"
    );
    assert_states(&latest, &expected);

    let pid = second.id().expect("the second child is running");
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("running kill");
    assert!(sent.success(), "SIGTERM delivered");
    let status = tokio::time::timeout(Duration::from_secs(60), second.wait())
        .await
        .expect("the second child stops within a minute of SIGTERM")
        .expect("waiting for the second child");
    assert_eq!(status.code(), Some(0), "graceful shutdown: {status:?}");
    pool.close().await;
}

/// PostgreSQL out of reach for 20 seconds while messages keep arriving: the
/// hub waits and retries — it neither rejects nor drops anything — and
/// recovers on its own once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_20_seconds_loses_and_rejects_nothing() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(pg_addr()).expect("a proxy in front of PostgreSQL");
    let settings = test_settings(&db.url_via(proxy.port()), &amqp_url());
    let fixture = Fixture::with(db, settings).await;
    let messages = scenario(31, 200, 850, scenario_today());
    assert!(
        messages.len() >= 1000,
        "scenario has {} messages",
        messages.len()
    );
    let rules = fixture.settings.rules.rules().expect("default rules");
    let expected = expected_states(&bodies(&messages), scenario_today(), &rules);
    let distinct = distinct_ids(&messages);
    let pool = fixture.db.pool().await;
    let shuffled = shuffled(&messages, 7);
    let (before, during) = shuffled.split_at(shuffled.len() * 2 / 3);

    let hub = fixture.start().await;
    publish_pipelined(&fixture, before).await;
    eventually(Duration::from_secs(120), "300 messages applied", || async {
        (hub.hub.metrics.processed_count() >= 300).then_some(())
    })
    .await;
    proxy.cut();
    publish_pipelined(&fixture, during).await;
    // The outage's length is what this test is about (long enough for every
    // retry and pool timeout to fire several times), not a guess at how long
    // an effect takes.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let settled_in_outage = hub.settled();
    assert!(
        transient_errors(&hub) > 0,
        "the hub noticed the database was gone"
    );
    assert!(
        settled_in_outage < messages.len() as u64,
        "the outage held work back ({settled_in_outage} settled)"
    );
    proxy.restore();

    wait_until_applied_and_published(&pool, distinct, Duration::from_secs(180)).await;
    let latest = published_outputs(&fixture).await;
    assert_nothing_rejected(&fixture).await;
    assert_eq!(hub.hub.metrics.rejected_total(), 0, "nothing rejected");
    assert_states(&latest, &expected);
    hub.stop().await;
    pool.close().await;
}

/// The database refusing connections for 20 s mid-run — `ALLOW_CONNECTIONS
/// false` and its backends terminated, so every attempt meets "database is
/// not accepting connections" (55000) or "terminating connection" (57P01):
/// an outage, waited out; no valid message is rejected as `poison`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_for_20_seconds_rejects_nothing() {
    let fixture = Fixture::new().await;
    let messages = scenario(61, 100, 400, scenario_today());
    let rules = fixture.settings.rules.rules().expect("default rules");
    let expected = expected_states(&bodies(&messages), scenario_today(), &rules);
    let distinct = distinct_ids(&messages);
    let shuffled = shuffled(&messages, 17);
    let (before, during) = shuffled.split_at(shuffled.len() / 3);
    let name = fixture.db.name().to_owned();
    let mut admin = sqlx::PgConnection::connect(&pg_server_url())
        .await
        .expect("an admin connection");
    let allow = |on: bool| {
        sqlx::AssertSqlSafe(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS {on}"#))
    };

    let hub = fixture.start().await;
    publish_pipelined(&fixture, before).await;
    eventually(Duration::from_secs(120), "100 messages applied", || async {
        (hub.hub.metrics.processed_count() >= 100).then_some(())
    })
    .await;
    sqlx::query(allow(false))
        .execute(&mut admin)
        .await
        .expect("refusing connections");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("terminating the database's backends");
    publish_pipelined(&fixture, during).await;
    // The outage's length is what this test is about, not a guess at how
    // long an effect takes.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(transient_errors(&hub) > 0, "the hub noticed the outage");
    sqlx::query(allow(true))
        .execute(&mut admin)
        .await
        .expect("accepting connections");
    let _ = admin.close().await;

    let pool = fixture.db.pool().await;
    wait_until_applied_and_published(&pool, distinct, Duration::from_secs(180)).await;
    let latest = published_outputs(&fixture).await;
    assert_nothing_rejected(&fixture).await;
    assert_eq!(hub.hub.metrics.rejected_total(), 0, "nothing rejected");
    assert_states(&latest, &expected);
    hub.stop().await;
    pool.close().await;
}

/// The hub's broker connections reset three times mid-run (the test's own
/// publishing connection is not affected): what was in flight is redelivered
/// and recognised, outputs are republished, and nothing is lost or rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_connection_cut_and_back_loses_and_rejects_nothing() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(amqp_addr()).expect("a proxy in front of RabbitMQ");
    let settings = test_settings(db.url(), &amqp_url_via(proxy.port()));
    let fixture = Fixture::with(db, settings).await;
    let messages = scenario(41, 200, 850, scenario_today());
    assert!(
        messages.len() >= 1000,
        "scenario has {} messages",
        messages.len()
    );
    let rules = fixture.settings.rules.rules().expect("default rules");
    let expected = expected_states(&bodies(&messages), scenario_today(), &rules);
    let distinct = distinct_ids(&messages);
    let pool = fixture.db.pool().await;

    let hub = fixture.start().await;
    publish_pipelined(&fixture, &shuffled(&messages, 9)).await;
    for applied in [150, 400, 650] {
        eventually(
            Duration::from_secs(120),
            &format!("{applied} messages applied"),
            || async { (hub.hub.metrics.processed_count() >= applied).then_some(()) },
        )
        .await;
        proxy.cut_and_wait().await;
        // How long the broker stays away is the point here: long enough for
        // several failed reconnects, not a guess at how long an effect takes.
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore();
        // No wait for reconnection here: the next round's progress, and in
        // the end every output published, is what shows the hub came back.
        // (An idle relay finds its connection gone only when it next publishes.)
    }

    wait_until_applied_and_published(&pool, distinct, Duration::from_secs(180)).await;
    let latest = published_outputs(&fixture).await;
    assert_nothing_rejected(&fixture).await;
    assert_eq!(hub.hub.metrics.rejected_total(), 0, "nothing rejected");
    assert_states(&latest, &expected);
    hub.stop().await;
    pool.close().await;
}

/// Two reconcilers sharing a database and a queue split the work and end
/// where one would: per-household locks keep them from stepping on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconcilers_on_one_queue_reach_the_same_states_as_one() {
    let fixture = Fixture::new().await;
    let messages = scenario(51, 300, 1200, scenario_today());
    assert!(
        messages.len() >= 1500,
        "scenario has {} messages",
        messages.len()
    );
    let rules = fixture.settings.rules.rules().expect("default rules");
    let expected = expected_states(&bodies(&messages), scenario_today(), &rules);
    let distinct = distinct_ids(&messages);
    let pool = fixture.db.pool().await;

    let one = fixture.start().await;
    let two = RunningHub::start(fixture.settings.clone(), Arc::new(fixture.clock.clone())).await;
    publish_pipelined(&fixture, &shuffled(&messages, 13)).await;

    wait_until_applied_and_published(&pool, distinct, Duration::from_secs(180)).await;
    let total = messages.len() as u64;
    eventually(
        Duration::from_secs(30),
        "every delivery settled",
        || async { (one.settled() + two.settled() >= total).then_some(()) },
    )
    .await;
    let latest = published_outputs(&fixture).await;
    assert_nothing_rejected(&fixture).await;
    for (name, hub) in [("one", &one), ("two", &two)] {
        assert!(
            hub.hub.metrics.processed_count() > 0,
            "hub {name} took part"
        );
        assert_eq!(
            hub.hub.metrics.rejected_total(),
            0,
            "hub {name} rejected nothing"
        );
    }
    assert_states(&latest, &expected);
    eprintln!(
        "two reconcilers: {} + {} applied, {} + {} transient errors (deadlocks are retried)",
        one.hub.metrics.processed_count(),
        two.hub.metrics.processed_count(),
        transient_errors(&one),
        transient_errors(&two),
    );
    one.stop().await;
    two.stop().await;
    pool.close().await;
}

//! The chaos run: a simulated city through two hub processes and a notifier
//! whose webhook receiver fails 30 % of requests with 500 and hangs on 5 %,
//! while hubs are killed with SIGKILL five times, the broker is stopped and
//! started (`rabbitmqctl stop_app` / `start_app`) and the database refuses
//! connections for a while. The outcome must equal a fault-free reference
//! run of the same city: the same household states, the same alert ids,
//! every alert received by the webhook at least once, every rejection with
//! its reason, and nothing else.
//!
//! CI runs a small city with a short database outage. The recorded run
//! (RELIABILITY.md) is `tests/faultruns/chaos.sh`, about 100 k messages.
//! It stops the machine's broker for a few seconds: cargo runs test
//! binaries one after another, so no other test sees it.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dynzero_tests::faultrun::{self, City, Deployment, Differences, size};
use dynzero_tests::hub::dynzero_command_with_local_targets;
use dynzero_tests::{amqp_url, eventually, pg_server_url, unique_name};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;

const HUBS: usize = 2;
const KILLS: usize = 5;

/// A webhook receiver that fails 30 % of requests with 500 and hangs on 5 %
/// (longer than the notifier waits), and records the alert ids it accepted.
#[derive(Clone)]
struct Receiver {
    rng: Arc<Mutex<StdRng>>,
    accepted: Arc<Mutex<BTreeSet<String>>>,
    requests: Arc<Mutex<[usize; 3]>>,
}

const HANG: Duration = Duration::from_secs(5);

async fn hook(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let roll: f64 = r.rng.lock().unwrap().random();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if roll < 0.30 {
        r.requests.lock().unwrap()[1] += 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else if roll < 0.35 {
        r.requests.lock().unwrap()[2] += 1;
        // A receiver that hangs: the notifier's request times out first.
        tokio::time::sleep(HANG).await;
        StatusCode::GATEWAY_TIMEOUT
    } else {
        r.requests.lock().unwrap()[0] += 1;
        r.accepted.lock().unwrap().insert(id);
        StatusCode::NO_CONTENT
    }
}

async fn start_receiver(seed: u64) -> (String, Receiver) {
    let receiver = Receiver {
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        accepted: Arc::default(),
        requests: Arc::default(),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

fn notifier_command(run: &Deployment, queue: &str) -> tokio::process::Command {
    let mut command = dynzero_command_with_local_targets(&run.settings);
    command
        .env("DYNZERO__NOTIFIER__QUEUE", queue)
        .env("DYNZERO__NOTIFIER__REQUEST_TIMEOUT_MS", "1000")
        .env("DYNZERO__NOTIFIER__RETRY_MIN_DELAY_MS", "100")
        .env("DYNZERO__NOTIFIER__RETRY_MAX_DELAY_SECS", "2")
        .env("DYNZERO__NOTIFIER__POLL_MS", "100");
    command
}

async fn start_notifier(run: &Deployment, queue: &str, webhook: &str) -> Child {
    let migrate = notifier_command(run, queue)
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    let secret = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32])
    );
    let add = notifier_command(run, queue)
        .args([
            "subscriptions",
            "add",
            "--name",
            "chaos",
            "--division",
            "2103",
            "--target",
            "webhook",
            "--url",
            webhook,
            "--pii",
            "masked",
        ])
        .env("DYNZERO_SUBSCRIPTION_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    notifier_command(run, queue)
        .args(["run", "--only", "notifier"])
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap()
}

async fn admin() -> PgConnection {
    PgConnection::connect(&pg_server_url()).await.unwrap()
}

/// The database refuses connections (and drops the ones it has) for `secs`.
async fn refuse_connections(database: &str, secs: u64) {
    let mut admin = admin().await;
    sqlx::query(AssertSqlSafe(format!(
        r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS false"#
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .execute(&mut admin)
        .await
        .unwrap();
    // The outage itself, not a wait for an effect.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    sqlx::query(AssertSqlSafe(format!(
        r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS true"#
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_city_through_killed_hubs_a_stopped_broker_a_refusing_database_and_a_failing_webhook_ends_as_without_faults()
 {
    let city = City {
        households: size("DYNZERO_CHAOS_HOUSEHOLDS", 300),
        events: size("DYNZERO_CHAOS_EVENTS", 1200),
        invalid: size("DYNZERO_CHAOS_INVALID", 8),
        seed: 20261203,
    };
    let outage_secs = size("DYNZERO_CHAOS_DATABASE_OUTAGE_SECS", 5) as u64;
    let broker_down_secs = 3;
    let mut rng = StdRng::seed_from_u64(city.seed);

    let (reference, _, reference_took) = faultrun::reference(city).await;

    let mut run = Deployment::new(&[amqp_url()]).await;
    let (webhook, receiver) = start_receiver(city.seed).await;
    let notifier_queue = format!("{}.notifier", unique_name("chaos"));
    let mut notifier = start_notifier(&run, &notifier_queue, &webhook).await;
    run.queues.push(notifier_queue.clone());
    let published = run.publish(city).await;
    let started = Instant::now();
    for i in 0..HUBS {
        run.start_hub(i);
    }
    // Faults at fixed points of progress; each waits for its point.
    let mut log = Vec::new();
    let mut kills = 0;
    for (k, fault) in ["kill", "kill", "broker", "kill", "database", "kill", "kill"]
        .iter()
        .enumerate()
    {
        let at = published * (k + 1) / 9;
        run.until_processed(at, Duration::from_secs(1800)).await;
        let processed = run.processed().await.unwrap_or_default();
        match *fault {
            "kill" => {
                let hub = rng.random_range(0..HUBS);
                run.kill_hub(hub).await;
                run.start_hub(hub);
                kills += 1;
            }
            "broker" => {
                rabbitmqctl(&["stop_app"]);
                tokio::time::sleep(Duration::from_secs(broker_down_secs)).await;
                rabbitmqctl(&["start_app"]);
            }
            _ => refuse_connections(run.db.name(), outage_secs).await,
        }
        log.push(format!(
            "{fault} at {processed} ({:.1?})",
            started.elapsed()
        ));
    }
    assert_eq!(kills, KILLS);
    let took = run.until_settled(Duration::from_secs(3600)).await;
    let outcome = run.outcome().await;
    let wire = run.wire(&outcome).await;
    let differences = Differences::between(&reference, &outcome, &wire);
    // Every alert reaches the webhook at least once, through its failures.
    let delivered_after = eventually(
        Duration::from_secs(900),
        "every alert accepted by the webhook",
        || async {
            let accepted = receiver.accepted.lock().unwrap();
            outcome
                .alerts
                .is_subset(&accepted)
                .then(|| started.elapsed())
        },
    )
    .await;
    let unknown: Vec<String> = receiver
        .accepted
        .lock()
        .unwrap()
        .difference(&outcome.alerts)
        .cloned()
        .collect();
    let [ok, failed, hung] = *receiver.requests.lock().unwrap();
    println!(
        "chaos: {published} messages ({} households, {} alerts, {} rejections); reference \
         settled in {:.1} s; faults: {}; settled in {:.1} s; every alert at the webhook \
         after {delivered_after:.1?} (requests: {ok} accepted, {failed} answered 500, {hung} \
         hung); versions differing from the reference: {}; {}; repeated on the wire: {} alerts, \
         {} states; differences: {differences}",
        outcome.households.len(),
        outcome.alerts.len(),
        outcome.rejections.len(),
        reference_took.as_secs_f64(),
        log.join(", "),
        took.as_secs_f64(),
        faultrun::versions_differ(&reference, &outcome),
        faultrun::alert_differences(&reference, &outcome),
        wire.duplicate_alerts(),
        wire.duplicate_states(),
    );
    assert!(
        outcome
            .rejections
            .iter()
            .all(|(reason, _, _)| reason != "poison"),
        "an outage rejected a valid message"
    );
    assert_eq!(outcome.rejections.len(), city.invalid);
    assert!(differences.is_empty(), "{differences}");
    assert!(
        unknown.is_empty(),
        "the webhook got alerts never raised: {unknown:?}"
    );
    notifier.start_kill().unwrap();
    let _ = notifier.wait().await;
    run.stop().await;
}

//! The notifier against a real local HTTP receiver, the real RabbitMQ and
//! PostgreSQL: signed webhooks routed by division, retries and permanent
//! failures recorded, and WeCom/DingTalk messages in their documented shape.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use dynzero_notifier::metrics::Metrics;
use dynzero_notifier::seal::SecuritySettings;
use dynzero_notifier::service::Notifier;
use dynzero_notifier::settings::{NotifierSettings, Settings as NotifierConfig};
use dynzero_notifier::store::{self, ConsumedAlert};
use dynzero_notifier::subscription::{SubscriptionSpec, Target, TargetKind};
use dynzero_reconciler::settings::Settings;
use dynzero_simulator::id_number;
use dynzero_tests::hub::{Fixture, dynzero_binary, test_settings};
use dynzero_tests::{TestBroker, amqp_url, eventually, fresh_database, unique_name};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(60);
/// The key subscription secrets are sealed with in these tests.
const TEST_KEY: &str = "ZHluemVyby10ZXN0cy1zZWFsaW5nLWtleS0zMmJ5dGU=";
/// A receiver plan entry: answer only after the notifier gave up waiting.
const HANG: u16 = 0;

// ---------------------------------------------------------------------------
// An HTTP receiver that records every request and answers as told per path.

#[derive(Clone, Debug)]
struct Received {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer on a path, in order; 200 once they are used up.
    /// `HANG` answers 200 only after a client's timeout has long passed.
    plans: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> (Receiver, SocketAddr) {
        let receiver = Receiver::default();
        let app = Router::new().fallback(record).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, addr)
    }

    fn plan(&self, path: &str, statuses: &[u16]) {
        self.plans
            .lock()
            .unwrap()
            .insert(path.to_string(), statuses.iter().copied().collect());
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = uri.path().to_string();
    receiver.received.lock().unwrap().push(Received {
        path: path.clone(),
        query: uri.query().map(str::to_string),
        headers,
        body,
    });
    let status = receiver
        .plans
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(200);
    let status = if status == HANG {
        // The server being slow, not the test waiting for an effect.
        tokio::time::sleep(Duration::from_secs(5)).await;
        200
    } else {
        status
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        r#"{"errcode":0,"errmsg":"ok"}"#,
    )
}

// ---------------------------------------------------------------------------
// Standard Webhooks and DingTalk signing, written here from the specifications
// (not the notifier's code).

fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Verify a request as a Standard Webhooks receiver does.
fn verify_webhook(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = hmac_sha256_base64(&key, &signed);
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn dingtalk_sign(secret: &str, timestamp: &str) -> String {
    hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp}\n{secret}").as_bytes(),
    )
}

fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 24]>()))
}

// ---------------------------------------------------------------------------
// The notifier under test.

struct RunningNotifier {
    pool: PgPool,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningNotifier {
    async fn start(settings: NotifierConfig) -> RunningNotifier {
        let notifier = Notifier::build(settings)
            .await
            .expect("building the notifier");
        let pool = notifier.pool().clone();
        let metrics = notifier.metrics().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(notifier.run_until(async {
            let _ = stopped.await;
        }));
        RunningNotifier {
            pool,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the notifier stops within a minute")
            .expect("the notifier task did not panic")
            .expect("the notifier stopped cleanly");
    }
}

/// Best effort: the test's durable notifier queue goes with the test.
async fn delete_queue(broker: &TestBroker, settings: &NotifierConfig) {
    let _ = broker
        .channel()
        .queue_delete(
            settings.queue().as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

/// Notifier settings beside a hub's: same broker names and database, fast retries.
fn notifier_settings(hub: &Settings, subscriptions: Vec<SubscriptionSpec>) -> NotifierConfig {
    NotifierConfig {
        amqp: hub.amqp.clone(),
        database: hub.database.clone(),
        notifier: NotifierSettings {
            queue: unique_name("notifier"),
            request_timeout_ms: 2_000,
            retry_min_delay_ms: 50,
            retry_max_delay_secs: 1,
            poll_ms: 50,
            // The receivers are on this machine, over plain HTTP.
            allow_insecure_targets: true,
            allowed_targets: vec!["127.0.0.1".into()],
            subscriptions,
            ..NotifierSettings::defaults()
        },
        shutdown: hub.shutdown.clone(),
        security: SecuritySettings {
            key: TEST_KEY.into(),
            key_file: String::new(),
        },
    }
}

fn webhook(name: &str, division: &str, addr: SocketAddr, secret: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        name: name.into(),
        division: division.into(),
        kinds: vec![],
        target: Target::Webhook {
            url: format!("http://{addr}/{name}"),
            secret: secret.into(),
        },
        pii: Default::default(),
    }
}

/// Deliveries by subscription: (status, attempts, last_status).
async fn deliveries(pool: &PgPool) -> BTreeMap<String, Vec<(String, i32, Option<i32>)>> {
    let rows = sqlx::query(
        "SELECT subscription, status, attempts, last_status FROM notifier_delivery ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("reading deliveries");
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for row in rows {
        out.entry(row.get("subscription")).or_default().push((
            row.get("status"),
            row.get("attempts"),
            row.get("last_status"),
        ));
    }
    out
}

async fn all_settled(pool: &PgPool, expected: usize) {
    eventually(DEADLINE, "every delivery delivered or failed", || async {
        let (total, pending): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM notifier_delivery",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        (total as usize == expected && pending == 0).then_some(())
    })
    .await;
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn registration(household: &str, division: &str, id_number: &str, name: &str) -> (String, Vec<u8>) {
    let body = json!({
        "specversion": "1.0", "id": format!("reg-{household}"), "source": "test/notifier",
        "type": "household.registered", "time": "2026-11-28T09:00:00+08:00",
        "data": {"household_id": household, "division_code": division, "effective_date": "2026-11-28",
                 "members": [{"id_number": id_number, "name": name, "relation": "head"}]},
    });
    ("household.registered".into(), body.to_string().into_bytes())
}

// ---------------------------------------------------------------------------

/// Households turning zero-employment in two districts, through the real
/// reconciler: a community, a street and a district subscription each get
/// exactly the alerts of their divisions, once each, signed; masked
/// subscriptions never see a whole id number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_exactly_the_subscriptions_covering_their_division_signed() {
    let fixture = Fixture::new().await;
    let (receiver, addr) = Receiver::start().await;
    let secrets: BTreeMap<&str, String> = ["community", "street", "district"]
        .into_iter()
        .map(|n| (n, secret()))
        .collect();
    let mut district = webhook("district", "210302", addr, &secrets["district"]);
    district.pii = dynzero_notifier::pii::PiiPolicy::Full;
    let subscriptions = vec![
        webhook("community", "210302001002", addr, &secrets["community"]),
        webhook("street", "210302001", addr, &secrets["street"]),
        district,
    ];
    let settings = notifier_settings(&fixture.settings, subscriptions);
    // The notifier's queue exists before any alert is published.
    dynzero_notifier::consumer::declare(fixture.broker.channel(), &settings)
        .await
        .expect("declaring the notifier's queue");
    let notifier = RunningNotifier::start(settings.clone()).await;
    let hub = fixture.start().await;

    let people: Vec<(&str, &str, String, &str)> = vec![
        (
            "H-C1",
            "210302001002",
            id_number("210302", date(1980, 3, 1), true, 1),
            "王小明",
        ),
        (
            "H-C2",
            "210302001003",
            id_number("210302", date(1981, 4, 2), false, 2),
            "李红",
        ),
        (
            "H-S2",
            "210302002001",
            id_number("210302", date(1982, 5, 3), true, 3),
            "赵大伟",
        ),
        (
            "H-D2",
            "210303001001",
            id_number("210303", date(1983, 6, 4), false, 4),
            "刘芳芳",
        ),
    ];
    let messages: Vec<_> = people
        .iter()
        .map(|(h, d, id, name)| registration(h, d, id, name))
        .collect();
    fixture.publish(&messages).await;

    // What the hub raised, from its own capture queue.
    let raised: BTreeMap<String, String> = {
        let mut raised = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while raised.len() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for 4 alerts, have {raised:?}"
            );
            for d in fixture
                .broker
                .drain(&fixture.alerts, |_| false, Duration::from_millis(300))
                .await
            {
                let event: Value = serde_json::from_slice(&d.data).unwrap();
                raised.insert(
                    event["id"].as_str().unwrap().to_string(),
                    event["data"]["division_code"].as_str().unwrap().to_string(),
                );
            }
        }
        raised
    };
    let expected = |prefix: &str| -> BTreeSet<String> {
        raised
            .iter()
            .filter(|(_, division)| division.starts_with(prefix))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (community, street, district) = (
        expected("210302001002"),
        expected("210302001"),
        expected("210302"),
    );
    assert_eq!((community.len(), street.len(), district.len()), (1, 2, 3));
    all_settled(&notifier.pool, 6).await;

    for (name, want) in [
        ("community", &community),
        ("street", &street),
        ("district", &district),
    ] {
        let got = receiver.on(&format!("/{name}"));
        let ids: Vec<String> = got
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), want.len(), "{name}: one request per alert");
        assert_eq!(
            &ids.iter().cloned().collect::<BTreeSet<_>>(),
            want,
            "{name}"
        );
        for r in &got {
            assert!(
                verify_webhook(&secrets[name], &r.headers, &r.body),
                "{name}: signature verifies"
            );
            let event: Value = serde_json::from_slice(&r.body).expect("the body is the CloudEvent");
            assert_eq!(event["id"], r.headers["webhook-id"].to_str().unwrap());
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(r.headers["content-type"], "application/cloudevents+json");
            if name != "district" {
                let text = String::from_utf8_lossy(&r.body);
                for (_, _, id, person) in &people {
                    assert!(!text.contains(id.as_str()), "{name}: no whole id number");
                    assert!(!text.contains(person), "{name}: no whole name");
                }
            }
        }
        // A tampered body fails verification.
        let r = &got[0];
        let mut tampered = r.body.to_vec();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x01;
        assert!(!verify_webhook(&secrets[name], &r.headers, &tampered));
        assert!(
            !verify_webhook(&secret(), &r.headers, &r.body),
            "another secret fails"
        );
    }
    let community_body: Value = serde_json::from_slice(&receiver.on("/community")[0].body).unwrap();
    let member = &community_body["data"]["household"]["members"][0];
    assert_eq!(member["name"], "王*明");
    assert_eq!(
        member["id_number"],
        format!("{}********{}", &people[0].2[..6], &people[0].2[14..])
    );
    // The full policy sends the CloudEvent as the hub published it.
    let full = receiver
        .on("/district")
        .into_iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("H-C1"))
        .expect("the district got H-C1's alert");
    assert!(String::from_utf8_lossy(&full.body).contains(people[0].2.as_str()));
    assert_eq!(notifier.metrics.delivered_count(TargetKind::Webhook), 6);

    hub.stop().await;
    notifier.stop().await;
    delete_queue(&fixture.broker, &settings).await;
}

/// A receiver answering 500 three times ends delivered on the fourth
/// attempt; a 400 ends as a recorded permanent failure; WeCom and DingTalk
/// get their documented markdown bodies, masked, DingTalk's signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_permanent_failures_and_group_bots() {
    // A known DingTalk vector (computed independently with Python's hmac).
    assert_eq!(
        dingtalk_sign("SEC0123456789abcdef", "1700000000000"),
        "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
    );
    let db = fresh_database().await;
    let hub_settings = test_settings(db.url(), &amqp_url());
    let (receiver, addr) = Receiver::start().await;
    receiver.plan("/flaky", &[500, 500, 500]);
    receiver.plan("/bad", &[400]);
    let flaky_secret = secret();
    let ding_secret = "SECtest-robot-secret";
    let bot = |name: &str, target: Target| SubscriptionSpec {
        name: name.into(),
        division: "210302".into(),
        kinds: vec![],
        target,
        pii: dynzero_notifier::pii::PiiPolicy::Full, // bots are masked regardless
    };
    let subscriptions = vec![
        webhook("flaky", "210302", addr, &flaky_secret),
        webhook("bad", "210302", addr, &secret()),
        bot(
            "wecom",
            Target::Wecom {
                url: format!("http://{addr}/wecom?key=K-1"),
            },
        ),
        bot(
            "dingtalk",
            Target::Dingtalk {
                url: format!("http://{addr}/dingtalk?access_token=T-1"),
                secret: Some(ding_secret.into()),
            },
        ),
    ];
    let settings = notifier_settings(&hub_settings, subscriptions);
    let broker = TestBroker::connect().await;
    dynzero_notifier::consumer::declare(broker.channel(), &settings)
        .await
        .expect("declaring the notifier's queue");
    let notifier = RunningNotifier::start(settings.clone()).await;

    let person = id_number("210302", date(1980, 3, 1), true, 1);
    let alert = json!({
        "specversion": "1.0", "id": "alert/household_at_risk/test-1", "source": "dynzero",
        "type": "dynzero.alert.household_at_risk", "subject": "H-1",
        "time": "2026-11-28T12:00:00.000+08:00", "datacontenttype": "application/json",
        "data": {"kind": "household_at_risk", "division_code": "210302001002", "household_id": "H-1",
                 "raised_at": "2026-11-28T12:00:00.000+08:00",
                 "summary": "零就业风险：鞍山钢铁机械厂 拟于 2026-12-20 裁员，户 H-1（210302001002）届时将成为零就业家庭（涉及 1 人）。请提前介入，推荐岗位。",
                 "enterprise": {"uscc": "91210302MA0000001X", "name": "鞍山钢铁机械厂", "division_code": "210302000000"},
                 "notice_id": "N-1", "effective_date": "2026-12-20",
                 "members": [{"id_number": person, "name": "王小明"}]},
    });
    broker
        .publish(
            &settings.amqp.alerts_exchange,
            "household_at_risk.21.03.02.001.002",
            alert.to_string().as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await;
    all_settled(&notifier.pool, 4).await;
    let d = deliveries(&notifier.pool).await;
    assert_eq!(d["flaky"], vec![("delivered".to_string(), 4, Some(200))]);
    assert_eq!(d["bad"], vec![("failed".to_string(), 1, Some(400))]);
    assert_eq!(d["wecom"], vec![("delivered".to_string(), 1, Some(200))]);
    assert_eq!(d["dingtalk"], vec![("delivered".to_string(), 1, Some(200))]);
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM notifier_delivery WHERE subscription = 'bad'")
            .fetch_one(&notifier.pool)
            .await
            .unwrap();
    assert!(error.contains("400"), "{error}");
    assert_eq!(notifier.metrics.failed_count(TargetKind::Webhook), 1);

    // Four attempts at the flaky receiver, each the same signed message id.
    let flaky = receiver.on("/flaky");
    assert_eq!(flaky.len(), 4);
    for r in &flaky {
        assert_eq!(r.headers["webhook-id"], "alert/household_at_risk/test-1");
        assert!(verify_webhook(&flaky_secret, &r.headers, &r.body));
    }

    let wecom = receiver.on("/wecom");
    assert_eq!(wecom.len(), 1);
    assert_eq!(wecom[0].query.as_deref(), Some("key=K-1"));
    let body: Value = serde_json::from_slice(&wecom[0].body).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"]
        .as_str()
        .expect("markdown.content");
    assert_eq!(body["markdown"].as_object().unwrap().len(), 1);
    assert!(
        content.contains("零就业风险家庭")
            && content.contains("户 H-1")
            && content.contains("鞍山钢铁机械厂")
    );
    assert!(content.contains("210302001002") && content.contains("下一步"));
    assert!(content.contains("王*明") && !content.contains("王小明"));
    assert!(!content.contains(person.as_str()), "no whole id number");

    let ding = receiver.on("/dingtalk");
    assert_eq!(ding.len(), 1);
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(
        ding[0]
            .query
            .as_deref()
            .expect("a signed DingTalk request has a query")
            .as_bytes(),
    )
    .into_owned()
    .collect();
    assert_eq!(query["access_token"], "T-1");
    let timestamp = &query["timestamp"];
    assert!(
        (chrono::Utc::now().timestamp_millis() - timestamp.parse::<i64>().unwrap()).abs()
            < 3_600_000
    );
    assert_eq!(query["sign"], dingtalk_sign(ding_secret, timestamp));
    let body: Value = serde_json::from_slice(&ding[0].body).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    let title = body["markdown"]["title"].as_str().expect("markdown.title");
    let text = body["markdown"]["text"].as_str().expect("markdown.text");
    assert!(title.contains("零就业风险家庭"));
    assert!(text.contains("户 H-1") && !text.contains(person.as_str()) && !text.contains("王小明"));

    notifier.stop().await;
    delete_queue(&broker, &settings).await;
    db.drop_database().await;
}

/// More alerts than a group bot's minute allows are merged: with room for
/// two messages, five due alerts go as one single message and one digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_over_its_rate_gets_a_digest() {
    let db = fresh_database().await;
    let hub_settings = test_settings(db.url(), &amqp_url());
    let (receiver, addr) = Receiver::start().await;
    let mut settings = notifier_settings(
        &hub_settings,
        vec![SubscriptionSpec {
            name: "street-bot".into(),
            division: "210302001".into(),
            kinds: vec!["zero_employment_new".into()],
            target: Target::Wecom {
                url: format!("http://{addr}/bot"),
            },
            pii: Default::default(),
        }],
    );
    settings.notifier.bot_messages_per_minute = 2;
    // Driven step by step: the worker alone, no consumer.
    let notifier = Notifier::build(settings)
        .await
        .expect("building the notifier");
    let bodies: Vec<Vec<u8>> = (1..=5)
        .map(|i| {
            json!({"id": format!("alert/zero_employment_new/{i}"), "data": {
                "kind": "zero_employment_new", "division_code": "210302001002",
                "household_id": format!("H-{i}"), "summary": format!("新增零就业家庭：户 H-{i}")}})
            .to_string()
            .into_bytes()
        })
        .collect();
    let mut tx = notifier.pool().begin().await.unwrap();
    for body in &bodies {
        let alert = ConsumedAlert::parse(body).unwrap();
        assert_eq!(store::record_alert(&mut tx, &alert).await.unwrap(), 1);
    }
    // Another division and another kind: not this subscription's.
    for body in [
        json!({"id": "x1", "data": {"kind": "zero_employment_new", "division_code": "210302002001"}}),
        json!({"id": "x2", "data": {"kind": "job_match", "division_code": "210302001002"}}),
    ] {
        let body = body.to_string().into_bytes();
        assert_eq!(
            store::record_alert(&mut tx, &ConsumedAlert::parse(&body).unwrap())
                .await
                .unwrap(),
            0
        );
    }
    tx.commit().await.unwrap();

    notifier.worker().deliver_due().await.expect("delivering");
    let got = receiver.on("/bot");
    assert_eq!(got.len(), 2, "one single message and one digest");
    let content = |r: &Received| -> String {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        body["markdown"]["content"].as_str().unwrap().to_string()
    };
    assert!(content(&got[0]).contains("户 H-1"));
    let digest = content(&got[1]);
    assert!(digest.contains("4 条"), "{digest}");
    for i in 2..=5 {
        assert!(digest.contains(&format!("户 H-{i}")), "{digest}");
    }
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifier_delivery WHERE status = 'delivered'")
            .fetch_one(notifier.pool())
            .await
            .unwrap();
    assert_eq!(delivered, 5);
    notifier.pool().close().await;
    db.drop_database().await;
}

// ---------------------------------------------------------------------------
// The `dynzero` binary: subscriptions managed from the command line, and a
// notifier process that is killed with SIGKILL and restarted.

async fn cli(settings: &NotifierConfig, args: &[&str]) -> String {
    let out = tokio::process::Command::new(dynzero_binary())
        .arg("subscriptions")
        .args(args)
        .env("DYNZERO__DATABASE__URL", &settings.database.url)
        .envs(security_env(settings))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running dynzero subscriptions");
    assert!(
        out.status.success(),
        "dynzero subscriptions {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The key, and the local receivers allowed over plain HTTP.
fn security_env(settings: &NotifierConfig) -> Vec<(&'static str, String)> {
    vec![
        ("DYNZERO__SECURITY__KEY", settings.security.key.clone()),
        (
            "DYNZERO__NOTIFIER__ALLOW_INSECURE_TARGETS",
            settings.notifier.allow_insecure_targets.to_string(),
        ),
        (
            "DYNZERO__NOTIFIER__ALLOWED_TARGETS",
            settings.notifier.allowed_targets.join(","),
        ),
    ]
}

fn spawn_notifier(settings: &NotifierConfig) -> tokio::process::Child {
    let n = &settings.notifier;
    tokio::process::Command::new(dynzero_binary())
        .args(["run", "--only", "notifier"])
        .env("DYNZERO__AMQP__URLS", settings.amqp.urls.join(","))
        .env(
            "DYNZERO__AMQP__ALERTS_EXCHANGE",
            &settings.amqp.alerts_exchange,
        )
        .env("DYNZERO__DATABASE__URL", &settings.database.url)
        .env("DYNZERO__NOTIFIER__QUEUE", &n.queue)
        .env(
            "DYNZERO__NOTIFIER__REQUEST_TIMEOUT_MS",
            n.request_timeout_ms.to_string(),
        )
        .env(
            "DYNZERO__NOTIFIER__RETRY_MIN_DELAY_MS",
            n.retry_min_delay_ms.to_string(),
        )
        .env(
            "DYNZERO__NOTIFIER__RETRY_MAX_DELAY_SECS",
            n.retry_max_delay_secs.to_string(),
        )
        .env("DYNZERO__NOTIFIER__POLL_MS", n.poll_ms.to_string())
        .envs(security_env(settings))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("starting dynzero run --only notifier")
}

fn sample_alert(i: usize) -> (String, Vec<u8>) {
    let id = format!("alert/zero_employment_new/resume-{i}");
    let body = json!({
        "specversion": "1.0", "id": id, "source": "dynzero", "type": "dynzero.alert.zero_employment_new",
        "subject": format!("H-{i}"), "time": "2026-11-28T12:00:00.000+08:00",
        "datacontenttype": "application/json",
        "data": {"kind": "zero_employment_new", "division_code": "210302001002",
                 "household_id": format!("H-{i}"), "raised_at": "2026-11-28T12:00:00.000+08:00",
                 "summary": format!("新增零就业家庭：户 H-{i}")},
    });
    (id, body.to_string().into_bytes())
}

/// A receiver that times out once and one that is down for a while both end
/// with every alert delivered, although the notifier is killed with SIGKILL
/// mid-way and alerts keep coming while it is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_down_receivers_get_everything_across_a_sigkill() {
    let db = fresh_database().await;
    let hub_settings = test_settings(db.url(), &amqp_url());
    let mut settings = notifier_settings(&hub_settings, vec![]);
    settings.notifier.request_timeout_ms = 500;
    let (slow, slow_addr) = Receiver::start().await;
    slow.plan("/slow", &[HANG]);
    // A port nobody listens on yet.
    let down_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (slow_secret, down_secret) = (secret(), secret());
    let slow_url = format!("http://{slow_addr}/slow");
    let down_url = format!("http://{down_addr}/down");
    for (name, url, secret) in [
        ("slow", &slow_url, &slow_secret),
        ("down", &down_url, &down_secret),
    ] {
        let added = cli(
            &settings,
            &[
                "add",
                "--name",
                name,
                "--division",
                "210302",
                "--target",
                "webhook",
                "--url",
                url,
                "--secret",
                secret,
            ],
        )
        .await;
        assert!(added.starts_with(name), "{added}");
    }
    cli(
        &settings,
        &[
            "add",
            "--name",
            "street-queue",
            "--division",
            "210302001",
            "--target",
            "amqp",
        ],
    )
    .await;
    let listed = cli(&settings, &["list"]).await;
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(listed.contains("*.21.03.02.001.*"), "{listed}");
    assert!(!listed.contains(&slow_secret), "secrets are not listed");
    cli(&settings, &["remove", "street-queue"]).await;
    assert_eq!(cli(&settings, &["list"]).await.lines().count(), 2);

    let broker = TestBroker::connect().await;
    dynzero_notifier::consumer::declare(broker.channel(), &settings)
        .await
        .expect("declaring the notifier's queue");
    let publish = |i: usize| {
        let (_, body) = sample_alert(i);
        let broker = &broker;
        let exchange = settings.amqp.alerts_exchange.clone();
        async move {
            broker
                .publish(
                    &exchange,
                    "zero_employment_new.21.03.02.001.002",
                    &body,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
        }
    };
    let pool = db.pool().await;
    let mut first = spawn_notifier(&settings);
    for i in 1..=3 {
        publish(i).await;
    }
    // The dead receiver has been tried and is being retried.
    eventually(DEADLINE, "three deliveries to the dead receiver retried", || async {
        let retried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifier_delivery WHERE subscription = 'down' AND status = 'pending' AND attempts >= 2",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (retried == 3).then_some(())
    })
    .await;
    first.start_kill().expect("SIGKILL to the notifier");
    let status = first.wait().await.expect("waiting for the killed notifier");
    assert!(!status.success());
    for i in 4..=6 {
        publish(i).await;
    }
    let (down, _) = Receiver::start_on(down_addr).await;
    let mut second = spawn_notifier(&settings);
    all_settled(&pool, 12).await;
    let d = deliveries(&pool).await;
    for name in ["slow", "down"] {
        assert!(
            d[name].iter().all(|(status, _, _)| status == "delivered"),
            "{name}: {:?}",
            d[name]
        );
    }
    let want: BTreeSet<String> = (1..=6).map(|i| sample_alert(i).0).collect();
    for (receiver, path, secret) in [
        (&slow, "/slow", &slow_secret),
        (&down, "/down", &down_secret),
    ] {
        let got = receiver.on(path);
        let ids: BTreeSet<String> = got
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, want, "{path}: every alert, deduplicated on webhook-id");
        assert!(
            got.iter()
                .all(|r| verify_webhook(secret, &r.headers, &r.body))
        );
    }
    assert!(
        slow.on("/slow").len() > 6,
        "the attempt that timed out was retried"
    );

    // `subscriptions test` sends a signed sample, masked, to the target.
    let before = down.on("/down").len();
    let tested = cli(&settings, &["test", "down"]).await;
    assert!(tested.contains("Delivered"), "{tested}");
    let sample = down.on("/down");
    assert_eq!(sample.len(), before + 1);
    let sample = sample.last().unwrap();
    assert!(verify_webhook(&down_secret, &sample.headers, &sample.body));
    let event: Value = serde_json::from_slice(&sample.body).unwrap();
    assert_eq!(event["data"]["division_code"], "210302000000");

    // SIGTERM: a clean stop.
    let pid = second.id().expect("the notifier runs").to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("running kill");
    assert!(sent.success());
    let status = tokio::time::timeout(DEADLINE, second.wait())
        .await
        .expect("the notifier stops on SIGTERM")
        .expect("waiting for the notifier");
    assert!(status.success(), "{status:?}");
    pool.close().await;
    delete_queue(&broker, &settings).await;
    db.drop_database().await;
}

/// An endpoint that never answers in time holds only its own attempts: the
/// other subscription's deliveries all arrive while it still hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_endpoint_does_not_delay_the_others() {
    let db = fresh_database().await;
    let hub_settings = test_settings(db.url(), &amqp_url());
    let (receiver, addr) = Receiver::start().await;
    receiver.plan("/stuck", &[HANG; 20]);
    let mut settings = notifier_settings(
        &hub_settings,
        vec![
            webhook("stuck", "210302", addr, &secret()),
            webhook("fast", "210302", addr, &secret()),
        ],
    );
    settings.notifier.request_timeout_ms = 4_000;
    settings.notifier.per_target_concurrency = 2;
    let broker = TestBroker::connect().await;
    dynzero_notifier::consumer::declare(broker.channel(), &settings)
        .await
        .expect("declaring the notifier's queue");
    let notifier = RunningNotifier::start(settings.clone()).await;
    for i in 1..=10 {
        let (_, body) = sample_alert(i);
        broker
            .publish(
                &settings.amqp.alerts_exchange,
                "zero_employment_new.21.03.02.001.002",
                &body,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await;
    }
    let started = tokio::time::Instant::now();
    // Well within the stuck endpoint's request timeout.
    eventually(Duration::from_secs(3), "the fast endpoint got all ten", || async {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifier_delivery WHERE subscription = 'fast' AND status = 'delivered'",
        )
        .fetch_one(&notifier.pool)
        .await
        .ok()?;
        (delivered == 10).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    let stuck_delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifier_delivery WHERE subscription = 'stuck' AND status = 'delivered'",
    )
    .fetch_one(&notifier.pool)
    .await
    .unwrap();
    assert_eq!(stuck_delivered, 0, "the stuck endpoint is still hanging");
    assert!(
        receiver.on("/stuck").len() <= 2,
        "at most per_target_concurrency attempts at once"
    );
    notifier.stop().await;
    delete_queue(&broker, &settings).await;
    db.drop_database().await;
}

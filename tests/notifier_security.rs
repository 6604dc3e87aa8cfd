//! The notifier's security and recoverability against the real PostgreSQL
//! and RabbitMQ and a local HTTP receiver: targets that cannot leak (no
//! internal address, at subscription or at send time; no redirect), a
//! `Retry-After` that cannot postpone forever, an unreadable bot reply
//! retried, an alert that cannot be recorded parked without blocking the
//! rest, and secrets sealed at rest (`pg_dump` shows none) and rotated.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dynzero_notifier::seal::{SealingKey, SecuritySettings};
use dynzero_notifier::service::Notifier;
use dynzero_notifier::settings::{NotifierSettings, Settings as NotifierConfig};
use dynzero_notifier::store::{self, ConsumedAlert};
use dynzero_notifier::subscription::{SubscriptionSpec, Target};
use dynzero_tests::hub::{dynzero_binary, test_settings};
use dynzero_tests::{TestBroker, amqp_url, eventually, fresh_database, unique_name};
use serde_json::json;
use sqlx::{PgPool, Row};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// A receiver that records the paths it is sent to and answers as planned.

#[derive(Clone)]
enum Answer {
    Ok,
    Redirect(String),
    Busy { retry_after: String },
    Garbage,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(String, Bytes)>>>,
    plans: Arc<Mutex<HashMap<String, VecDeque<Answer>>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let receiver = Receiver::default();
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, addr)
    }

    fn plan(&self, path: &str, answers: &[Answer]) {
        self.plans
            .lock()
            .unwrap()
            .insert(path.into(), answers.iter().cloned().collect());
    }

    fn on(&self, path: &str) -> Vec<Bytes> {
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

async fn answer(State(receiver): State<Receiver>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    receiver.hits.lock().unwrap().push((path.clone(), body));
    let planned = receiver
        .plans
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(Answer::Ok);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    match planned {
        Answer::Ok => (StatusCode::OK, headers, r#"{"errcode":0,"errmsg":"ok"}"#).into_response(),
        Answer::Redirect(to) => {
            headers.insert("location", to.parse().unwrap());
            (StatusCode::FOUND, headers, "").into_response()
        }
        Answer::Busy { retry_after } => {
            headers.insert("retry-after", retry_after.parse().unwrap());
            (StatusCode::SERVICE_UNAVAILABLE, headers, "").into_response()
        }
        Answer::Garbage => (StatusCode::OK, "<html>gateway says hello</html>").into_response(),
    }
}

// ---------------------------------------------------------------------------

fn key() -> String {
    SealingKey::generate()
}

fn security(key: &str) -> SecuritySettings {
    SecuritySettings {
        key: key.into(),
        key_file: String::new(),
    }
}

/// Notifier settings on a fresh database, http allowed, `allowed` listed.
fn settings(
    db_url: &str,
    allowed: &[String],
    subscriptions: Vec<SubscriptionSpec>,
    key: &str,
) -> NotifierConfig {
    let hub = test_settings(db_url, &amqp_url());
    NotifierConfig {
        amqp: hub.amqp.clone(),
        database: hub.database.clone(),
        notifier: NotifierSettings {
            queue: unique_name("notifier"),
            request_timeout_ms: 2_000,
            retry_min_delay_ms: 50,
            retry_max_delay_secs: 1,
            poll_ms: 50,
            allow_insecure_targets: true,
            allowed_targets: allowed.to_vec(),
            subscriptions,
            ..NotifierSettings::defaults()
        },
        shutdown: hub.shutdown.clone(),
        security: security(key),
    }
}

fn webhook(name: &str, url: String) -> SubscriptionSpec {
    SubscriptionSpec {
        name: name.into(),
        division: "210302".into(),
        kinds: vec![],
        target: Target::Webhook {
            url,
            secret: "whsec_c2VjcmV0LWZvci10ZXN0cw==".into(),
        },
        pii: Default::default(),
    }
}

fn alert(i: usize) -> Vec<u8> {
    json!({
        "specversion": "1.0", "id": format!("alert/zero_employment_new/sec-{i}"), "source": "dynzero",
        "type": "dynzero.alert.zero_employment_new", "subject": format!("H-{i}"),
        "time": "2026-11-28T12:00:00.000+08:00", "datacontenttype": "application/json",
        "data": {"kind": "zero_employment_new", "division_code": "210302001002",
                 "household_id": format!("H-{i}"), "summary": format!("新增零就业家庭：户 H-{i}")},
    })
    .to_string()
    .into_bytes()
}

/// Record alerts as the consumer does, without the broker.
async fn record(pool: &PgPool, bodies: &[Vec<u8>]) {
    let mut tx = pool.begin().await.unwrap();
    for body in bodies {
        store::record_alert(&mut tx, &ConsumedAlert::parse(body).unwrap())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// (status, attempts, last_status, last_error) of a subscription's deliveries.
async fn deliveries(pool: &PgPool, subscription: &str) -> Vec<(String, i32, Option<i32>, String)> {
    sqlx::query(
        "SELECT status, attempts, last_status, coalesce(last_error, '') AS e
         FROM notifier_delivery WHERE subscription = $1 ORDER BY id",
    )
    .bind(subscription)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get("status"),
            r.get("attempts"),
            r.get("last_status"),
            r.get("e"),
        )
    })
    .collect()
}

async fn build_error(settings: NotifierConfig) -> String {
    match Notifier::build(settings).await {
        Ok(_) => panic!("the notifier was built"),
        Err(e) => format!("{e:#}"),
    }
}

async fn cli(
    db_url: &str,
    key: Option<&str>,
    args: &[&str],
    extra: &[(&str, &str)],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(dynzero_binary());
    command
        .args(args)
        .env("DYNZERO__DATABASE__URL", db_url)
        .env("DYNZERO__NOTIFIER__ALLOW_INSECURE_TARGETS", "true")
        .env("RUST_LOG", "warn");
    if let Some(key) = key {
        command.env("DYNZERO__SECURITY__KEY", key);
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    command.output().await.expect("running dynzero")
}

// ---------------------------------------------------------------------------

/// The metadata address and loopback are refused when a subscription is
/// added, from the configuration or from the command line; a secret without
/// a key is refused with one line and exit status 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_to_internal_addresses_are_refused_when_added() {
    let db = fresh_database().await;
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
    ] {
        let e = build_error(settings(
            db.url(),
            &[],
            vec![webhook("w", url.into())],
            &key(),
        ))
        .await;
        assert!(e.contains(why), "{url}: {e}");
        let out = cli(
            db.url(),
            Some(&key()),
            &[
                "subscriptions",
                "add",
                "--name",
                "w",
                "--division",
                "210302",
            ],
            &[],
        )
        .await;
        assert!(!out.status.success(), "an add without a target");
        let out = cli(
            db.url(),
            Some(&key()),
            &[
                "subscriptions",
                "add",
                "--name",
                "w",
                "--division",
                "210302",
                "--target",
                "webhook",
                "--url",
                url,
                "--secret",
                "whsec_c2VjcmV0",
            ],
            &[],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(why), "{url}: {stderr}");
    }
    let e = build_error(settings(
        db.url(),
        &[],
        vec![webhook("w", "https://hooks.example.cn/x".into())],
        "",
    ))
    .await;
    assert!(e.contains("security.key_file"), "{e}");
    let out = cli(
        db.url(),
        None,
        &[
            "subscriptions",
            "add",
            "--name",
            "w",
            "--division",
            "210302",
            "--target",
            "webhook",
            "--url",
            "https://hooks.example.cn/x",
            "--secret",
            "whsec_c2VjcmV0",
        ],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("security.key_file"), "{stderr}");
    // A bot off its official host.
    let bot = SubscriptionSpec {
        target: Target::Wecom {
            url: "https://qyapi.example.cn/cgi-bin/webhook/send?key=K".into(),
        },
        ..webhook("bot", String::new())
    };
    let e = build_error(settings(db.url(), &[], vec![bot], &key())).await;
    assert!(
        e.contains("qyapi.weixin.qq.com") && !e.contains("key=K"),
        "{e}"
    );
    db.drop_database().await;
}

/// `localhost` resolves to loopback: refused when sending unless listed;
/// a redirect is not followed; a huge `Retry-After` gives up instead of
/// postponing forever; an unreadable bot reply is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_refuses_internal_names_redirects_and_endless_waits() {
    let db = fresh_database().await;
    let (receiver, addr) = Receiver::start().await;
    let (listed, listed_addr) = Receiver::start().await;
    let port = addr.port();
    receiver.plan(
        "/redirect",
        &[Answer::Redirect(format!("http://{addr}/elsewhere"))],
    );
    receiver.plan(
        "/busy",
        &[Answer::Busy {
            retry_after: "99999999999999999999999".into(),
        }],
    );
    receiver.plan("/bot", &[Answer::Garbage]);
    let subscriptions = vec![
        webhook("named", format!("http://localhost:{port}/named")),
        webhook(
            "listed",
            format!("http://localhost:{}/listed", listed_addr.port()),
        ),
        webhook("redirect", format!("http://{addr}/redirect")),
        webhook("busy", format!("http://{addr}/busy")),
        SubscriptionSpec {
            target: Target::Wecom {
                url: format!("http://{addr}/bot?key=K-bot"),
            },
            ..webhook("bot", String::new())
        },
    ];
    let allowed = [
        "127.0.0.1:".to_string() + &port.to_string(),
        format!("localhost:{}", listed_addr.port()),
    ];
    let notifier = Notifier::build(settings(db.url(), &allowed, subscriptions, &key()))
        .await
        .expect("building the notifier");
    let pool = notifier.pool().clone();
    record(&pool, &[alert(1)]).await;
    notifier.worker().deliver_due().await.expect("delivering");

    let named = deliveries(&pool, "named").await;
    assert_eq!(named[0].0, "failed", "{named:?}");
    assert!(named[0].3.contains("refused addresses"), "{named:?}");
    assert!(
        receiver.on("/named").is_empty(),
        "nothing reached loopback by name"
    );
    assert_eq!(deliveries(&pool, "listed").await[0].0, "delivered");
    assert_eq!(listed.on("/listed").len(), 1);

    let redirect = deliveries(&pool, "redirect").await;
    assert_eq!(redirect[0].0, "failed", "{redirect:?}");
    assert_eq!(redirect[0].2, Some(302));
    assert!(
        receiver.on("/elsewhere").is_empty(),
        "the redirect was not followed"
    );

    let busy = deliveries(&pool, "busy").await;
    assert_eq!(
        (busy[0].0.as_str(), busy[0].1, busy[0].2),
        ("failed", 1, Some(503)),
        "a Retry-After past the give-up limit gives up: {busy:?}"
    );

    let bot = deliveries(&pool, "bot").await;
    assert_eq!(bot[0].0, "pending", "{bot:?}");
    assert!(bot[0].3.contains("unreadable"), "{bot:?}");
    sqlx::query("UPDATE notifier_delivery SET next_attempt_at = now() WHERE subscription = 'bot'")
        .execute(&pool)
        .await
        .unwrap();
    notifier.worker().deliver_due().await.expect("delivering");
    assert_eq!(deliveries(&pool, "bot").await[0].0, "delivered");
    assert_eq!(receiver.on("/bot").len(), 2);
    pool.close().await;
    db.drop_database().await;
}

/// An alert whose recording fails on its data (a NUL in its id, which no
/// text column takes) is parked with its reason and counted; the alerts
/// around it are delivered, and the batch is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_alert_does_not_block_the_next_ones() {
    let db = fresh_database().await;
    let (receiver, addr) = Receiver::start().await;
    let settings = settings(
        db.url(),
        &[addr.to_string()],
        vec![webhook("hook", format!("http://{addr}/hook"))],
        &key(),
    );
    let broker = TestBroker::connect().await;
    dynzero_notifier::consumer::declare(broker.channel(), &settings)
        .await
        .unwrap();
    let notifier = Notifier::build(settings.clone()).await.unwrap();
    let pool = notifier.pool().clone();
    let metrics = notifier.metrics().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(notifier.run_until(async {
        let _ = stopped.await;
    }));
    let poison = json!({
        "id": "alert/zero_employment_new/bad\u{0}id", "type": "dynzero.alert.zero_employment_new",
        "data": {"kind": "zero_employment_new", "division_code": "210302001002"}})
    .to_string()
    .into_bytes();
    let mut bodies = vec![alert(1), poison, alert(2)];
    bodies.extend((3..=5).map(alert));
    for body in &bodies {
        broker
            .publish(
                &settings.amqp.alerts_exchange,
                "zero_employment_new.21.03.02.001.002",
                body,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await;
    }
    eventually(DEADLINE, "the five good alerts delivered", || async {
        (receiver.on("/hook").len() >= 5).then_some(())
    })
    .await;
    let parked = sqlx::query("SELECT alert_id, reason, body FROM notifier_parked")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    let reason: String = parked[0].get("reason");
    assert!(reason.contains("0x00"), "{reason}");
    assert_eq!(parked[0].get::<Vec<u8>, _>("body"), bodies[1]);
    assert_eq!(metrics.parked_count(), 1);
    let text = metrics.render();
    assert!(text.contains("dynzero_notifier_parked_total 1\n"), "{text}");
    assert!(text.contains("dynzero_notifier_parked 1\n"), "{text}");
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    // Stopped: anything unacknowledged would be back in the queue.
    let queue = broker
        .channel()
        .queue_declare(
            settings.queue().as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        queue.message_count(),
        0,
        "the parked alert was acknowledged"
    );
    let _ = broker
        .channel()
        .queue_delete(settings.queue().as_str().into(), Default::default())
        .await;
    pool.close().await;
    db.drop_database().await;
}

fn pg_dump(db_url: &str) -> String {
    let out = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(db_url)
        .output()
        .expect("running pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// No secret or token in a `pg_dump` of a database with subscriptions and
/// deliveries; `dynzero keys rotate` re-seals everything under a new key,
/// after which the old key opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_rotate_to_a_new_key() {
    let db = fresh_database().await;
    let (old_key, new_key) = (key(), key());
    let webhook_secret = "whsec_dG9wLXNlY3JldC13ZWJob29rLWtleQ==";
    let wecom_url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WECOM-TOKEN-693";
    let ding_url = "https://oapi.dingtalk.com/robot/send?access_token=DING-TOKEN-1234";
    let ding_secret = "SECding-signing-secret-5678";
    let subscriptions = vec![
        SubscriptionSpec {
            target: Target::Webhook {
                url: "https://cases.example.cn/dynzero".into(),
                secret: webhook_secret.into(),
            },
            ..webhook("cases", String::new())
        },
        SubscriptionSpec {
            target: Target::Wecom {
                url: wecom_url.into(),
            },
            ..webhook("wecom", String::new())
        },
        SubscriptionSpec {
            target: Target::Dingtalk {
                url: ding_url.into(),
                secret: Some(ding_secret.into()),
            },
            ..webhook("dingtalk", String::new())
        },
    ];
    let config = settings(db.url(), &[], subscriptions, &old_key);
    let notifier = Notifier::build(config.clone()).await.unwrap();
    let pool = notifier.pool().clone();
    record(&pool, &[alert(1), alert(2)]).await;
    let secrets = [
        webhook_secret,
        "dG9wLXNlY3JldC13ZWJob29rLWtleQ",
        "WECOM-TOKEN-693",
        "DING-TOKEN-1234",
        "ding-signing-secret",
        &old_key,
        &new_key,
    ];
    let dump = pg_dump(db.url());
    assert!(dump.contains("notifier_subscription") && dump.contains("cases.example.cn"));
    for secret in secrets {
        assert!(!dump.contains(secret), "{secret} in pg_dump");
    }
    let old = SealingKey::from_base64(&old_key).unwrap();
    let new = SealingKey::from_base64(&new_key).unwrap();
    let target_keys = || async {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT target_key FROM notifier_delivery WHERE subscription = 'wecom'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        keys
    };
    assert_eq!(target_keys().await, vec![old.target_hash(wecom_url)]);

    let file = std::env::temp_dir().join(format!("{}.key", unique_name("dynzero")));
    std::fs::write(&file, format!("{new_key}\n")).unwrap();
    let out = cli(
        db.url(),
        Some(&old_key),
        &["keys", "rotate", "--new-key-file", file.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-sealed 3"));
    std::fs::remove_file(&file).unwrap();

    assert_eq!(target_keys().await, vec![new.target_hash(wecom_url)]);
    let opened = store::find_subscription(&pool, Some(&new), "dingtalk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        opened.target(),
        &Target::Dingtalk {
            url: ding_url.into(),
            secret: Some(ding_secret.into()),
        }
    );
    assert!(
        store::find_subscription(&pool, Some(&old), "dingtalk")
            .await
            .is_err()
    );
    let dump = pg_dump(db.url());
    for secret in secrets {
        assert!(
            !dump.contains(secret),
            "{secret} in pg_dump after the rotation"
        );
    }
    // The old key opens nothing any more: a configuration error at start.
    let e = build_error(config.clone()).await;
    assert!(e.contains("security.key"), "{e}");
    let rotated = NotifierConfig {
        security: security(&new_key),
        ..config
    };
    Notifier::build(rotated)
        .await
        .expect("the new key opens everything");
    pool.close().await;
    db.drop_database().await;
}

/// Only `dynzero run` syncs the configuration's subscriptions: the
/// `subscriptions` subcommands, run with another configuration, leave them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_subcommands_never_sync_the_configuration() {
    let db = fresh_database().await;
    let key = key();
    let config = settings(
        db.url(),
        &[],
        vec![webhook("from-config", "https://cases.example.cn/a".into())],
        &key,
    );
    let notifier = Notifier::build(config).await.unwrap();
    let pool = notifier.pool().clone();
    let out = cli(
        db.url(),
        Some(&key),
        &[
            "subscriptions",
            "add",
            "--name",
            "from-cli",
            "--division",
            "2103",
            "--target",
            "webhook",
            "--url",
            "https://cases.example.cn/b",
            "--secret",
            "whsec_c2VjcmV0",
        ],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(db.url(), None, &["subscriptions", "list"], &[]).await;
    assert!(out.status.success(), "listing needs no key");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("from-config") && listed.contains("from-cli"),
        "{listed}"
    );
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM notifier_subscription ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(names, ["from-cli", "from-config"]);
    pool.close().await;
    db.drop_database().await;
}

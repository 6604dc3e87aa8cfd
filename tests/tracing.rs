//! One trace through the broker: an inbound layoff's `traceparent` reaches
//! the household state and the alerts it causes (attribute and AMQP header)
//! and the webhook that announces the alert (HTTP header), with the real
//! reconciler, notifier, RabbitMQ and PostgreSQL. And, with an OTLP
//! endpoint set, the hub's spans of that trace are exported to it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use chrono::NaiveDate;
use dynzero_notifier::service::Notifier;
use dynzero_notifier::settings::{NotifierSettings, Settings as NotifierConfig};
use dynzero_notifier::subscription::{SubscriptionSpec, Target};
use dynzero_reconciler::amqp::header_text;
use dynzero_runtime::settings::{LogFormat, LogSettings, TelemetrySettings};
use dynzero_simulator::{id_number, uscc};
use dynzero_tests::hub::Fixture;
use dynzero_tests::{eventually, unique_name};
use lapin::message::Delivery;
use serde_json::{Value, json};
use sqlx::Row;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// An inbox row's id, received `traceparent` and `tracestate`, and `onward_traceparent`.
type InboxTrace = (String, Option<String>, Option<String>, Option<String>);

const DEADLINE: Duration = Duration::from_secs(60);
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const SOURCE_SPAN: &str = "b7ad6b7169203331";

/// An HTTP server recording every request: the webhook receiver, or an
/// OTLP/HTTP collector.
#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
}

impl Recorder {
    async fn start() -> (Recorder, SocketAddr) {
        let recorder = Recorder::default();
        let app = Router::new().fallback(record).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the recorder");
        let addr = listener.local_addr().expect("the recorder's address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (recorder, addr)
    }

    fn requests(&self) -> Vec<(String, HeaderMap, Bytes)> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(recorder): State<Recorder>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    recorder
        .requests
        .lock()
        .unwrap()
        .push((uri.path().to_string(), headers, body));
    "{}"
}

fn event(id: &str, event_type: &str, data: Value, traceparent: Option<&str>) -> (String, Vec<u8>) {
    let mut body = json!({
        "specversion": "1.0", "id": id, "source": "test/tracing", "type": event_type,
        "time": "2026-11-20T09:00:00+08:00", "data": data,
    });
    if let Some(traceparent) = traceparent {
        body["traceparent"] = json!(traceparent);
        body["tracestate"] = json!("hr=7");
    }
    (event_type.to_string(), body.to_string().into_bytes())
}

/// The trace id of a `traceparent`, checking its shape.
fn trace_id(traceparent: &str) -> &str {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    assert_eq!(parts[2].len(), 16, "{traceparent}");
    parts[1]
}

/// Attribute and header of one output agree; the attribute, if any.
fn output_traceparent(delivery: &Delivery) -> Option<String> {
    let event: Value = serde_json::from_slice(&delivery.data).expect("outputs are JSON");
    let attribute = event["traceparent"].as_str().map(str::to_string);
    assert_eq!(
        attribute,
        header_text(&delivery.properties, "traceparent"),
        "the attribute and the AMQP header of {}",
        event["id"]
    );
    attribute
}

async fn drain_until(fixture: &Fixture, queue: &str, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    while got.len() < n {
        assert!(
            tokio::time::Instant::now() < until,
            "waiting for {n} messages on {queue}, have {}",
            got.len()
        );
        got.extend(
            fixture
                .broker
                .drain(queue, |_| false, Duration::from_millis(300))
                .await,
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_from_an_inbound_layoff_to_the_webhook() {
    let fixture = Fixture::new().await;
    let (receiver, addr) = Recorder::start().await;
    let settings = NotifierConfig {
        amqp: fixture.settings.amqp.clone(),
        database: fixture.settings.database.clone(),
        notifier: NotifierSettings {
            queue: unique_name("notifier"),
            poll_ms: 50,
            subscriptions: vec![SubscriptionSpec {
                name: "community".into(),
                division: "210302001002".into(),
                kinds: vec![],
                target: Target::Webhook {
                    url: format!("http://{addr}/community"),
                    secret: format!("whsec_{}", base64_secret()),
                },
                pii: Default::default(),
            }],
            // The receiver is on this machine, over plain HTTP.
            allow_insecure_targets: true,
            allowed_targets: vec![addr.to_string()],
            ..NotifierSettings::defaults()
        },
        shutdown: fixture.settings.shutdown.clone(),
        security: dynzero_notifier::seal::SecuritySettings {
            key: dynzero_notifier::seal::SealingKey::generate(),
            key_file: String::new(),
        },
    };
    dynzero_notifier::consumer::declare(fixture.broker.channel(), &settings)
        .await
        .expect("declaring the notifier's queue");
    let notifier = Notifier::build(settings.clone())
        .await
        .expect("building the notifier");
    let notifier_pool = notifier.pool().clone();
    let (stop_notifier, stopped) = oneshot::channel::<()>();
    let notifier_task = tokio::spawn(notifier.run_until(async {
        let _ = stopped.await;
    }));
    let hub = fixture.start().await;

    let worker = id_number("210302", date(1980, 3, 1), true, 1);
    let employer = uscc("210302", 11);
    fixture
        .publish(&[
            event(
                "reg-1",
                "household.registered",
                json!({"household_id": "H-T1", "division_code": "210302001002", "effective_date": "2026-01-01",
                       "members": [{"id_number": worker, "name": "王强", "relation": "head"}]}),
                // Not W3C (upper-case hex): ignored, never a rejection.
                Some("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"),
            ),
            event(
                "emp-1",
                "employment.started",
                json!({"id_number": worker, "name": "王强", "employer": {"uscc": employer, "name": "鞍山钢铁机械厂"},
                       "start_date": "2026-02-01", "contract_months": null, "monthly_wage": 4200,
                       "social_insurance": true, "kind": "formal"}),
                None,
            ),
        ])
        .await;
    let first = drain_until(&fixture, &fixture.states, 1).await;
    // No cause carried a valid traceparent: none goes on (or, if the other
    // test's exporter is installed in this process, a trace the hub began).
    if let Some(began) = output_traceparent(&first[0]) {
        assert_ne!(
            trace_id(&began),
            TRACE_ID,
            "the invalid traceparent was used"
        );
    }

    let inbound = format!("00-{TRACE_ID}-{SOURCE_SPAN}-01");
    fixture
        .publish(&[event(
            "layoff-1",
            "layoff.notice",
            json!({"notice_id": "N-1", "stage": "effective", "effective_date": "2026-11-25",
                   "enterprise": {"uscc": employer, "name": "鞍山钢铁机械厂", "headcount": 5, "division_code": "210302000000"},
                   "employees": [{"id_number": worker, "name": "王强"}]}),
            Some(&inbound),
        )])
        .await;

    // The new version, caused by the layoff.
    let states = drain_until(&fixture, &fixture.states, 1).await;
    let state: Value = serde_json::from_slice(&states[0].data).unwrap();
    assert_eq!(state["data"]["status"], "zero_employment");
    let state_trace = output_traceparent(&states[0]).expect("the state carries the layoff's trace");
    assert_eq!(trace_id(&state_trace), TRACE_ID);
    assert!(
        !state_trace.contains(SOURCE_SPAN),
        "the hub's span is the parent, not the source's: {state_trace}"
    );
    assert_eq!(state["tracestate"], "hr=7");

    // zero_employment_new (the household's) and layoff_unreported (the notice's).
    let alerts = drain_until(&fixture, &fixture.alerts, 2).await;
    let mut kinds = Vec::new();
    for alert in &alerts {
        let event: Value = serde_json::from_slice(&alert.data).unwrap();
        kinds.push(event["data"]["kind"].as_str().unwrap().to_string());
        let traceparent = output_traceparent(alert).expect("an alert carries the layoff's trace");
        assert_eq!(trace_id(&traceparent), TRACE_ID, "{}", event["id"]);
    }
    kinds.sort();
    assert_eq!(kinds, ["layoff_unreported", "zero_employment_new"]);

    // The outputs still validate against the published schemas.
    let schemas = dynzero_contracts::schemas::Schemas::get();
    for delivery in states.iter().chain(&alerts) {
        let event: Value = serde_json::from_slice(&delivery.data).unwrap();
        schemas
            .validate_output_envelope(&event)
            .unwrap_or_else(|e| panic!("{} is not valid: {e:?}", event["id"]));
    }

    // The inbox kept what came and what goes on.
    let pool = fixture.db.pool().await;
    let rows = sqlx::query(
        "SELECT id, traceparent, tracestate, onward_traceparent FROM inbox ORDER BY arrival",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let kept: Vec<InboxTrace> = rows
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("traceparent"),
                r.get("tracestate"),
                r.get("onward_traceparent"),
            )
        })
        .collect();
    assert_eq!(kept.len(), 3, "nothing was rejected: {kept:?}");
    assert_eq!(
        kept[0].1, None,
        "the registration's traceparent was ignored"
    );
    let layoff = &kept[2];
    assert_eq!(layoff.1.as_deref(), Some(inbound.as_str()));
    assert_eq!(layoff.2.as_deref(), Some("hr=7"));
    assert_eq!(layoff.3.as_deref(), Some(state_trace.as_str()));

    // The webhook announcing zero_employment_new carries the same trace id.
    let webhook = eventually(DEADLINE, "the webhook request", || async {
        receiver
            .requests()
            .into_iter()
            .find(|(path, _, _)| path == "/community")
    })
    .await;
    let header = webhook
        .1
        .get("traceparent")
        .expect("the webhook has a traceparent header")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(trace_id(&header), TRACE_ID);
    let delivered: Option<String> = sqlx::query_scalar("SELECT traceparent FROM notifier_delivery")
        .fetch_one(&notifier_pool)
        .await
        .unwrap();
    assert_eq!(delivered.as_deref().map(trace_id), Some(TRACE_ID));

    hub.stop().await;
    let _ = stop_notifier.send(());
    let _ = tokio::time::timeout(DEADLINE, notifier_task).await;
    let _ = fixture
        .broker
        .channel()
        .queue_delete(
            settings.queue().as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

/// With `telemetry.otlp_endpoint` set, the hub's span for a traced message
/// is exported to the collector, in the message's trace, before the
/// exporter's shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (collector, addr) = Recorder::start().await;
    let telemetry = dynzero_runtime::telemetry::init(
        &LogSettings {
            format: LogFormat::Json,
        },
        &TelemetrySettings {
            otlp_endpoint: format!("http://{addr}"),
            service_name: "dynzero-test".into(),
        },
    )
    .expect("installing the exporter");
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let traced = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    fixture
        .publish(&[event(
            "reg-otlp",
            "household.registered",
            json!({"household_id": "H-O1", "division_code": "210302001002", "effective_date": "2026-01-01",
                   "members": [{"id_number": id_number("210302", date(1970, 1, 1), true, 9), "name": "张三", "relation": "head"}]}),
            Some(traced),
        )])
        .await;
    let states = drain_until(&fixture, &fixture.states, 1).await;
    let onward = output_traceparent(&states[0]).expect("the state is traced");
    hub.stop().await;
    telemetry.shutdown().await;

    let exported = collector.requests();
    let trace_bytes = hex_bytes("5bf92f3577b34da6a3ce929d0e0e4736");
    let span_bytes = hex_bytes(onward.split('-').nth(2).unwrap());
    assert!(
        exported
            .iter()
            .any(|(path, headers, body)| path == "/v1/traces"
                && headers
                    .get("content-type")
                    .is_some_and(|c| c == "application/x-protobuf")
                && contains(body, &trace_bytes)
                && contains(body, &span_bytes)),
        "no export holds the trace and the hub's span {onward}: {} requests to {:?}",
        exported.len(),
        exported.iter().map(|(p, _, _)| p).collect::<Vec<_>>()
    );
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn base64_secret() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

//! `/metrics` of a working `dynzero run`, scraped the way Prometheus does:
//! the outbox gauges, the deliveries per state and target kind, the batch
//! size and processing latency histograms and the consumer's redeliveries
//! are there, with values that fit what went through.

use dynzero_tests::hub::{Fixture, dynzero_command_with_local_targets, scenario, scenario_today};
use dynzero_tests::{amqp_url, eventually, fresh_database};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// Status and body of `GET path`, `None` if nothing answers.
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Prometheus text as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn run(settings: &dynzero_reconciler::settings::Settings, args: &[&str]) {
    let out = dynzero_command_with_local_targets(settings)
        .args(args)
        .output()
        .await
        .expect("dynzero runs");
    assert!(
        out.status.success(),
        "dynzero {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_metrics_are_scraped_with_plausible_values() {
    let db = fresh_database().await;
    let mut settings = dynzero_tests::hub::test_settings(db.url(), &amqp_url());
    let addr = free_address();
    settings.metrics.listen = addr.clone();
    let fixture = Fixture::with(db, settings.clone()).await;
    let messages = scenario(83, 12, 30, scenario_today());
    let first: Value = messages
        .iter()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).expect("JSON"))
        .find(|event| event["type"] == "household.registered")
        .expect("a registration");
    let poisoned = first["data"]["household_id"]
        .as_str()
        .expect("a household id")
        .to_string();

    // Tables, a webhook nobody answers (its deliveries stay pending), and a
    // fault on one household's registration: it is handed back and redelivered.
    run(&settings, &["migrate"]).await;
    run(
        &settings,
        &[
            "subscriptions",
            "add",
            "--name",
            "nobody-listens",
            "--division",
            "2103",
            "--target",
            "webhook",
            "--url",
            "http://127.0.0.1:9/hook",
            "--secret",
            "whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q=",
        ],
    )
    .await;
    let pool = fixture.db.pool().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.household_id = '{poisoned}' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER test_fault BEFORE INSERT ON registration FOR EACH ROW EXECUTE FUNCTION test_fault();"
    )))
    .execute(&pool)
    .await
    .expect("injecting the fault");

    let mut child = dynzero_command_with_local_targets(&settings)
        .arg("run")
        .spawn()
        .expect("starting dynzero run");
    eventually(Duration::from_secs(60), "/readyz 200", || async {
        (get(&addr, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    fixture.publish(&messages).await;
    fixture
        .publish(&[("household.registered".to_string(), b"not json".to_vec())])
        .await;
    let published = messages.len() as f64 + 1.0;
    // An alert for the notifier, whatever the city raised.
    let alert = serde_json::json!({
        "specversion": "1.0", "id": "alert/zero_employment_new/metrics-1", "source": "dynzero",
        "type": "dynzero.alert.zero_employment_new", "subject": "H-M1",
        "time": "2026-11-28T12:00:00.000+08:00", "datacontenttype": "application/json",
        "data": {"kind": "zero_employment_new", "division_code": "210302001002",
                 "household_id": "H-M1", "raised_at": "2026-11-28T12:00:00.000+08:00",
                 "summary": "新增零就业家庭：户 H-M1"},
    });
    fixture
        .broker
        .publish(
            &settings.amqp.alerts_exchange,
            "zero_employment_new.210302001002",
            alert.to_string().as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await;

    let m = eventually(
        Duration::from_secs(90),
        "every message settled and the gauges sampled",
        || async {
            let (status, body) = get(&addr, "/metrics").await?;
            let m = samples(&body);
            let settled = m.get("dynzero_reconciler_messages_processed_total")?
                + m.get("dynzero_reconciler_messages_duplicate_total")?
                + m.iter()
                    .filter(|(k, _)| k.starts_with("dynzero_reconciler_messages_rejected_total"))
                    .map(|(_, v)| v)
                    .sum::<f64>();
            let pending =
                m.get("dynzero_notifier_deliveries{state=\"pending\",target_kind=\"webhook\"}")?;
            (status == 200 && settled >= published && *pending >= 1.0).then_some(m)
        },
    )
    .await;
    let value = |series: &str| -> f64 {
        *m.get(series)
            .unwrap_or_else(|| panic!("{series} is scraped: {m:#?}"))
    };
    let processed = value("dynzero_reconciler_messages_processed_total");
    assert!(processed >= 1.0);
    assert_eq!(
        value("dynzero_reconciler_messages_rejected_total{reason=\"poison\"}"),
        1.0
    );

    // Every delivery the consumer took counts in some batch, redeliveries too.
    let batched = value("dynzero_reconciler_batch_messages_sum");
    assert!(batched >= published + 2.0, "{batched} batched");
    let batches = value("dynzero_reconciler_batch_messages_count");
    assert!((1.0..=batched).contains(&batches), "{batches} batches");
    assert_eq!(
        value("dynzero_reconciler_batch_messages_bucket{le=\"+Inf\"}"),
        batches
    );

    // One latency per applied message, from each starting point.
    for from in ["event_time", "arrival"] {
        let count = value(&format!(
            "dynzero_reconciler_processing_latency_seconds_count{{from=\"{from}\"}}"
        ));
        assert_eq!(count, processed, "latencies from {from}");
        let sum = value(&format!(
            "dynzero_reconciler_processing_latency_seconds_sum{{from=\"{from}\"}}"
        ));
        assert!(sum >= 0.0, "{from}: {sum}");
    }
    let arrival_sum = value("dynzero_reconciler_processing_latency_seconds_sum{from=\"arrival\"}");
    assert!(
        arrival_sum / processed < 60.0,
        "a message is applied within a minute of arriving: {arrival_sum}"
    );

    // poison_after = 3: the faulted message came twice more.
    assert!(value("dynzero_reconciler_redeliveries_total") >= 2.0);

    assert!(value("dynzero_outbox_rows") >= 0.0);
    assert!(value("dynzero_outbox_oldest_age_seconds") >= 0.0);
    for kind in ["webhook", "wecom", "dingtalk"] {
        for state in ["pending", "failed"] {
            value(&format!(
                "dynzero_notifier_deliveries{{state=\"{state}\",target_kind=\"{kind}\"}}"
            ));
        }
    }
    assert_eq!(
        value("dynzero_notifier_deliveries{state=\"pending\",target_kind=\"wecom\"}"),
        0.0
    );

    let _ = child.start_kill();
    let _ = child.wait().await;
    pool.close().await;
}

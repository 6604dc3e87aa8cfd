//! The reconciler against the real RabbitMQ and PostgreSQL.

use dynzero_contracts::rejection::Reason;
use dynzero_reconciler::amqp::header_text;
use dynzero_reconciler::clock::ManualClock;
use dynzero_reconciler::hub::{Fate, Hub};
use dynzero_reconciler::service::Reconciler;
use dynzero_reconciler::store::locks;
use dynzero_tests::eventually;
use dynzero_tests::hub::{
    Fixture, content, expected_states, noon, scenario, scenario_today, test_settings,
};
use dynzero_tests::{TcpProxy, TestDatabase, amqp_addr, amqp_url, amqp_url_via, fresh_database};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The same facts in any order, with duplicates, give the states the domain
/// core computes for them in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_scenario_with_duplicates_reaches_the_domain_cores_states() {
    let fixture = Fixture::new().await;
    let messages = scenario(11, 150, 700, scenario_today());
    assert!(
        messages.len() >= 1000,
        "scenario has {} messages",
        messages.len()
    );
    let rules = fixture.settings.rules.rules().expect("default rules");
    let bodies: Vec<&[u8]> = messages.iter().map(|(_, b)| b.as_slice()).collect();
    let expected = expected_states(&bodies, scenario_today(), &rules);
    assert!(expected.len() >= 140);

    let mut rng = StdRng::seed_from_u64(5);
    let mut shuffled = messages.clone();
    let duplicates: Vec<_> = messages
        .choose_multiple(&mut rng, messages.len() / 10)
        .cloned()
        .collect();
    shuffled.extend(duplicates);
    shuffled.shuffle(&mut rng);

    let hub = fixture.start().await;
    fixture.publish(&shuffled).await;
    let total = shuffled.len() as u64;
    eventually(
        Duration::from_secs(240),
        "every message settled",
        || async { (hub.settled() >= total).then_some(()) },
    )
    .await;
    let mut latest = BTreeMap::new();
    fixture
        .latest_states(&mut latest, Duration::from_secs(60), |seen| {
            seen.len() == expected.len()
                && seen
                    .iter()
                    .all(|(h, s)| expected.get(h) == Some(&content(s)))
        })
        .await;
    hub.stop().await;

    assert_eq!(latest.len(), expected.len(), "a state for every household");
    for (household, state) in &latest {
        assert_eq!(
            Some(&content(state)),
            expected.get(household),
            "household {household}"
        );
    }
    let zero = latest
        .values()
        .filter(|s| s["status"] == "zero_employment")
        .count();
    assert!(zero > 0, "the scenario has zero-employment households");
}

/// What a database holds after a run: every household row, every alert id,
/// and the outbox in order (the relay is not running).
type Snapshot = (
    Vec<(String, i64, Option<Value>)>,
    Vec<String>,
    Vec<(String, String)>,
);

async fn snapshot(hub: &Hub) -> Snapshot {
    let households = sqlx::query_as(
        "SELECT household_id, version, content FROM household WHERE version > 0 ORDER BY household_id",
    )
    .fetch_all(&hub.pool)
    .await
    .expect("households");
    let alerts = sqlx::query_scalar("SELECT id FROM alert ORDER BY id")
        .fetch_all(&hub.pool)
        .await
        .expect("alerts");
    let outbox = sqlx::query_as("SELECT stream, routing_key FROM outbox ORDER BY seq")
        .fetch_all(&hub.pool)
        .await
        .expect("outbox");
    (households, alerts, outbox)
}

/// Apply bodies with `process_batch`, `size` at a time, on a fresh database.
/// A reconciler on a fresh database, its clock at noon of the scenario's day.
async fn fresh_reconciler() -> (TestDatabase, Reconciler) {
    let db = fresh_database().await;
    let settings = test_settings(db.url(), &amqp_url());
    let clock = ManualClock::new(noon(scenario_today()));
    let reconciler = Reconciler::build(settings, Arc::new(clock))
        .await
        .expect("building the reconciler");
    (db, reconciler)
}

async fn apply_in_batches(batches: &[&[Vec<u8>]]) -> (TestDatabase, Arc<Hub>, Vec<String>) {
    let (db, reconciler) = fresh_reconciler().await;
    let hub = reconciler.hub().clone();
    let mut outcomes = Vec::new();
    for batch in batches {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for outcome in hub.process_batch(&refs).await.expect("no transient error") {
            outcomes.push(match outcome {
                Fate::Applied => "applied".to_string(),
                Fate::Duplicate => "duplicate".to_string(),
                Fate::Rejected(r) => r.reason.as_str().to_string(),
                Fate::Failed(_) => "failed".to_string(),
            });
        }
    }
    (db, hub, outcomes)
}

/// A batch is applied as a whole; when one of its messages fails, it is
/// applied again one message per savepoint. Both ways give the same
/// households, versions, alerts and outbox order as one message at a time,
/// and the failing message alone is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_applied_whole_or_one_by_one_give_the_same_result() {
    let mut bodies: Vec<Vec<u8>> = scenario(23, 40, 260, scenario_today())
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    // Duplicates inside one batch and across batches.
    bodies.insert(30, bodies[20].clone());
    bodies.insert(100, bodies[5].clone());
    let poison = event(
        "p-1",
        "household.registered",
        registration(
            "H-P",
            &dynzero_simulator::id_number(
                "210302",
                chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap(),
                true,
                7,
            ),
            "王\u{0}伟",
        ),
    )
    .to_string()
    .into_bytes();
    let singles: Vec<&[Vec<u8>]> = bodies.chunks(1).collect();
    let batches: Vec<&[Vec<u8>]> = bodies.chunks(64).collect();
    // The same batches, the second with a message that fails.
    let mut second = batches[1].to_vec();
    second.insert(6, poison);
    let mut poisoned = batches.clone();
    poisoned[1] = &second;

    let (db1, single, single_outcomes) = apply_in_batches(&singles).await;
    let (db2, whole, whole_outcomes) = apply_in_batches(&batches).await;
    let (db3, mixed, mut mixed_outcomes) = apply_in_batches(&poisoned).await;

    assert_eq!(
        whole.metrics.one_by_one_count(),
        0,
        "clean batches apply whole"
    );
    assert_eq!(
        mixed.metrics.one_by_one_count(),
        1,
        "the poisoned batch, one by one"
    );
    assert_eq!(mixed_outcomes.remove(64 + 6), "failed");
    assert_eq!(whole_outcomes, single_outcomes);
    assert_eq!(mixed_outcomes, single_outcomes);
    assert_eq!(
        single_outcomes.iter().filter(|o| *o == "duplicate").count(),
        2
    );
    // Folded once per batch, a household has fewer versions than one message
    // at a time gives, but the same content.
    let contents = |snapshot: &Snapshot| -> Vec<(String, Option<Value>)> {
        snapshot
            .0
            .iter()
            .map(|(h, _, c)| (h.clone(), c.clone()))
            .collect()
    };
    let one_at_a_time = snapshot(&single).await;
    let expected = snapshot(&whole).await;
    assert!(expected.0.len() >= 35, "{} households", expected.0.len());
    assert!(!expected.1.is_empty(), "the scenario raises alerts");
    assert_eq!(contents(&expected), contents(&one_at_a_time));
    let got = snapshot(&mixed).await;
    assert_eq!(got.0.len(), expected.0.len());
    for (got, expected) in got.0.iter().zip(&expected.0) {
        assert_eq!(got, expected, "household {}", expected.0);
    }
    assert_eq!(got.1, expected.1, "alert ids");
    assert_eq!(got.2, expected.2, "outbox");
    for (db, hub) in [(db1, single), (db2, whole), (db3, mixed)] {
        hub.pool.close().await;
        db.drop_database().await;
    }
}

/// A layoff naming more people than a transaction takes person locks for
/// locks their regions instead, and is applied like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layoff_naming_thousands_is_applied_under_region_locks() {
    // Far more than MOST_PERSON_LOCKS: this takes the region-lock path.
    let employees: Vec<Value> = (0..8000)
        .map(|i| {
            let born = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap() + chrono::Days::new(i);
            json!({ "id_number": dynzero_simulator::id_number("210302", born, i % 2 == 0, i as u32), "name": "王伟" })
        })
        .collect();
    let notice = event(
        "big-1",
        "layoff.notice",
        json!({
            "notice_id": "N-BIG", "stage": "planned", "effective_date": "2026-12-31",
            "enterprise": { "uscc": dynzero_simulator::uscc("210302", 1), "name": "鞍钢",
                            "headcount": 20000, "division_code": "210302001000" },
            "employees": employees,
        }),
    )
    .to_string()
    .into_bytes();
    let (db, hub, outcomes) = apply_in_batches(&[&[notice]]).await;
    assert_eq!(outcomes, ["applied"]);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM layoff_employee")
        .fetch_one(&hub.pool)
        .await
        .expect("counting");
    assert_eq!(stored, 8000);
    hub.pool.close().await;
    db.drop_database().await;
}

/// A message that changes nothing of a household leaves its row untouched
/// (the same row version, `xmin`) and its cause waiting, unnamed; the next
/// version names that cause, and only then is it marked named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_that_publishes_nothing_leaves_the_row_and_names_nothing() {
    let (db, reconciler) = fresh_reconciler().await;
    let hub = reconciler.hub().clone();
    let person = dynzero_simulator::id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap(),
        true,
        11,
    );
    let body = |v: Value| v.to_string().into_bytes();
    let apply = |bodies: Vec<Vec<u8>>| {
        let hub = hub.clone();
        async move {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let fates = hub.process_batch(&refs).await.expect("no transient error");
            assert!(fates.iter().all(|f| matches!(f, Fate::Applied)));
        }
    };
    let row = || async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT xmin::text, version FROM household WHERE household_id = 'H-SAME'",
        )
        .fetch_one(&hub.pool)
        .await
        .expect("the household's row")
    };
    let causes = || async {
        sqlx::query_as::<_, (String, bool)>(
            "SELECT cause, published FROM household_cause WHERE household_id = 'H-SAME' ORDER BY cause",
        )
        .fetch_all(&hub.pool)
        .await
        .expect("causes")
    };
    let registered = registration("H-SAME", &person, "王伟");
    apply(vec![body(event(
        "same-1",
        "household.registered",
        registered.clone(),
    ))])
    .await;
    let first = row().await;
    assert_eq!(first.1, 1);
    assert_eq!(
        causes().await,
        [("test/rejections same-1".to_string(), true)]
    );

    // The same snapshot again, under another id: the same state.
    apply(vec![body(event(
        "same-2",
        "household.registered",
        registered,
    ))])
    .await;
    assert_eq!(row().await, first, "the row is not written again");
    assert_eq!(
        causes().await,
        [
            ("test/rejections same-1".to_string(), true),
            ("test/rejections same-2".to_string(), false),
        ],
        "the second snapshot waits to be named"
    );

    let started = event(
        "same-3",
        "employment.started",
        json!({"id_number": person, "name": "王伟",
               "employer": {"uscc": dynzero_simulator::uscc("210302", 1), "name": "鞍山钢铁机械厂"},
               "start_date": "2026-02-01", "contract_months": null, "monthly_wage": 4200,
               "social_insurance": true, "kind": "formal"}),
    );
    apply(vec![body(started)]).await;
    assert_eq!(row().await.1, 2);
    assert!(
        causes().await.iter().all(|(_, published)| *published),
        "the new version names both: {:?}",
        causes().await
    );
    let caused_by: Vec<i64> = sqlx::query_scalar(
        "SELECT unnest(cause_arrivals) FROM household_version WHERE household_id = 'H-SAME' AND version = 2",
    )
    .fetch_all(&hub.pool)
    .await
    .expect("version 2's causes");
    assert_eq!(caused_by.len(), 2, "same-2 and same-3");
    hub.pool.close().await;
    db.drop_database().await;
}

fn event(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "test/rejections", "type": event_type,
        "time": "2026-11-01T08:00:00+08:00", "data": data,
    })
}

fn registration(household: &str, id_number: &str, name: &str) -> Value {
    json!({
        "household_id": household, "division_code": "210302001002", "effective_date": "2026-01-01",
        "members": [{ "id_number": id_number, "name": name, "relation": "head" }],
    })
}

/// Every rejection reason, each from one message, each arriving on the
/// rejected queue with the original body byte for byte; no valid message is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_reason_reaches_the_rejected_queue_with_the_original_body() {
    let fixture = Fixture::new().await;
    let valid_person = dynzero_simulator::id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(),
        true,
        3,
    );
    let mut bad_check = valid_person.clone();
    let last = bad_check.pop().unwrap();
    bad_check.push(if last == '0' { '1' } else { '0' });

    let original = event(
        "dup-1",
        "household.registered",
        registration("H-1", &valid_person, "王伟"),
    );
    let conflicting = event(
        "dup-1",
        "household.registered",
        registration("H-1", &valid_person, "王芳"),
    );
    let mut no_time = event(
        "env-1",
        "household.registered",
        registration("H-2", &valid_person, "王伟"),
    );
    no_time.as_object_mut().unwrap().remove("time");
    let mut extra_field = registration("H-3", &valid_person, "王伟");
    extra_field["floor"] = json!(3);
    let big = vec![b' '; 1024 * 1024 + 10];
    let cases: Vec<(Reason, String, Vec<u8>)> = vec![
        (
            Reason::TooLarge,
            "household.registered".into(),
            [b"{}".as_slice(), &big].concat(),
        ),
        (
            Reason::Malformed,
            "household.registered".into(),
            vec![0xff, 0xfe, b'{'],
        ),
        (
            Reason::EnvelopeInvalid,
            "household.registered".into(),
            no_time.to_string().into_bytes(),
        ),
        (
            Reason::UnknownType,
            "household.moved".into(),
            event("t-1", "household.moved", json!({}))
                .to_string()
                .into_bytes(),
        ),
        (
            Reason::SchemaInvalid,
            "household.registered".into(),
            event("s-1", "household.registered", extra_field)
                .to_string()
                .into_bytes(),
        ),
        (
            Reason::InvalidIdentifier,
            "household.registered".into(),
            event(
                "i-1",
                "household.registered",
                registration("H-4", &bad_check, "王伟"),
            )
            .to_string()
            .into_bytes(),
        ),
        // PostgreSQL cannot store a NUL character: processing fails every time.
        (
            Reason::Poison,
            "household.registered".into(),
            event(
                "p-1",
                "household.registered",
                registration("H-5", &valid_person, "王\u{0}伟"),
            )
            .to_string()
            .into_bytes(),
        ),
    ];

    let hub = fixture.start().await;
    // A valid message first, so its (source, id) is known before the conflicting one.
    fixture
        .publish(&[(
            "household.registered".into(),
            original.to_string().into_bytes(),
        )])
        .await;
    eventually(
        Duration::from_secs(30),
        "the original processed",
        || async { (hub.hub.metrics.processed_count() == 1).then_some(()) },
    )
    .await;
    let mut published: Vec<(Reason, Vec<u8>)> = Vec::new();
    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    for (reason, key, body) in &cases {
        batch.push((key.clone(), body.clone()));
        published.push((*reason, body.clone()));
    }
    let conflict = conflicting.to_string().into_bytes();
    batch.push(("household.registered".into(), conflict.clone()));
    published.push((Reason::DuplicateIdConflict, conflict));
    // Valid messages among the bad ones: none of these may be rejected.
    let redelivery = original.to_string().into_bytes();
    batch.push(("household.registered".into(), redelivery));
    let other = dynzero_simulator::id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1985, 2, 1).unwrap(),
        false,
        9,
    );
    batch.push((
        "household.registered".into(),
        event(
            "ok-2",
            "household.registered",
            registration("H-6", &other, "李娜"),
        )
        .to_string()
        .into_bytes(),
    ));
    fixture.publish(&batch).await;

    let rejected = fixture
        .broker
        .drain(
            &fixture.settings.amqp.rejected_queue,
            |got| got.len() >= published.len(),
            Duration::from_secs(60),
        )
        .await;
    let more = fixture
        .broker
        .drain(
            &fixture.settings.amqp.rejected_queue,
            |_| false,
            Duration::from_millis(500),
        )
        .await;
    assert!(more.is_empty(), "nothing else is rejected");
    assert_eq!(rejected.len(), published.len());
    let mut by_reason: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    for d in &rejected {
        let reason = header_text(&d.properties, "x-dynzero-reason").expect("a reason header");
        let detail = header_text(&d.properties, "x-dynzero-detail").expect("a detail header");
        by_reason.insert(reason, (d.data.clone(), detail));
    }
    for (reason, body) in &published {
        let (got, detail) = by_reason
            .get(reason.as_str())
            .unwrap_or_else(|| panic!("no message rejected as {reason}"));
        assert_eq!(got, body, "{reason}: the original body, byte for byte");
        assert!(!detail.is_empty());
    }
    assert!(
        by_reason["schema_invalid"].1.contains("/data/floor"),
        "detail names the pointer"
    );
    assert!(
        by_reason["invalid_identifier"]
            .1
            .contains("/data/members/0/id_number")
    );
    assert!(by_reason["envelope_invalid"].1.contains("/time"));

    eventually(
        Duration::from_secs(30),
        "the valid messages processed",
        || async {
            (hub.hub.metrics.processed_count() == 2 && hub.hub.metrics.duplicate_count() == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(hub.hub.metrics.rejected_count(Reason::Poison), 1);
    hub.stop().await;
}

/// `GET /metrics` on the address a deployment configures.
async fn get_metrics(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// `dynzero run` counts rejections per reason and serves the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynzero_run_serves_rejection_counts_per_reason_on_metrics() {
    let mut fixture = Fixture::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    fixture.settings.metrics.listen = addr.clone();
    let mut child = dynzero_tests::hub::spawn_dynzero(&fixture.settings);
    fixture
        .publish(&[
            ("household.registered".into(), b"{not json".to_vec()),
            ("household.registered".into(), b"[1, 2]".to_vec()),
            (
                "household.moved".into(),
                event("m-1", "household.moved", json!({}))
                    .to_string()
                    .into_bytes(),
            ),
        ])
        .await;
    let metrics = eventually(
        Duration::from_secs(60),
        "three rejections counted",
        || async {
            get_metrics(&addr).await.filter(|m| {
                m.contains("dynzero_reconciler_messages_rejected_total{reason=\"malformed\"} 2")
                    && m.contains(
                        "dynzero_reconciler_messages_rejected_total{reason=\"unknown_type\"} 1",
                    )
            })
        },
    )
    .await;
    assert!(metrics.contains("dynzero_reconciler_messages_rejected_total{reason=\"poison\"} 0"));
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A 300 KB `type` and a 300 KB `source` used to be echoed into the
/// rejection's detail header, beyond the broker's frame limit: the broker
/// closed the connection and the message went round until the queue's
/// delivery limit dead-lettered it without a reason. Now each is rejected on
/// its first delivery as `envelope_invalid`, byte for byte, and the
/// connection stays up (nothing is ever redelivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_kb_type_or_source_is_rejected_with_its_reason_on_an_unbroken_connection() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let person = dynzero_simulator::id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(),
        true,
        3,
    );
    let huge = "x".repeat(300 * 1024);
    let mut long_type = event(
        "big-type",
        "household.registered",
        registration("H-1", &person, "王伟"),
    );
    long_type["type"] = json!(huge);
    let mut long_source = event(
        "big-source",
        "household.registered",
        registration("H-2", &person, "王伟"),
    );
    long_source["source"] = json!(huge);
    let bad: Vec<(String, Vec<u8>)> = [long_type, long_source]
        .iter()
        .map(|e| {
            (
                "household.registered".to_owned(),
                e.to_string().into_bytes(),
            )
        })
        .collect();
    fixture.publish(&bad).await;
    // A valid message after them is applied by the same, unbroken session.
    let ok = event(
        "ok-after",
        "household.registered",
        registration("H-3", &person, "王伟"),
    );
    fixture
        .publish(&[(
            "household.registered".to_owned(),
            ok.to_string().into_bytes(),
        )])
        .await;

    let rejected = fixture
        .broker
        .drain(
            &fixture.settings.amqp.rejected_queue,
            |got| got.len() >= 2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(rejected.len(), 2);
    for (d, (_, body)) in rejected.iter().zip(&bad) {
        assert_eq!(&d.data, body, "the original body, byte for byte");
        assert_eq!(
            header_text(&d.properties, "x-dynzero-reason").as_deref(),
            Some("envelope_invalid")
        );
        let detail = header_text(&d.properties, "x-dynzero-detail").expect("a detail");
        assert!(detail.len() <= 1024, "detail header {} bytes", detail.len());
        let dead_lettered = d
            .properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key("x-death"));
        assert!(
            !dead_lettered,
            "rejected by the hub, not dead-lettered by the broker"
        );
    }
    eventually(
        Duration::from_secs(60),
        "the valid message applied",
        || async { (hub.hub.metrics.processed_count() >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        hub.hub.metrics.redeliveries_count(),
        0,
        "a broken connection would have handed the messages back"
    );
    assert_eq!(hub.hub.metrics.rejected_count(Reason::EnvelopeInvalid), 2);
    hub.stop().await;
    fixture.db.drop_database().await;
}

/// The reconciler's connections plan for key lookups only, whatever the
/// statistics (none, with autovacuum off): no sequential scans, merge or
/// hash joins, JIT or parallel workers (BENCHMARKS.md, "The backfill,
/// again": each of these made a batch's cost grow with the stored history);
/// and PostgreSQL's own choice between custom and cached plans, which with
/// those off are key lookups both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcilers_connections_plan_for_key_lookups_only() {
    let (db, reconciler) = fresh_reconciler().await;
    let pool = &reconciler.hub().pool;
    for (name, expected) in [
        ("plan_cache_mode", "auto"),
        ("enable_seqscan", "off"),
        ("enable_mergejoin", "off"),
        ("enable_hashjoin", "off"),
        ("jit", "off"),
        ("max_parallel_workers_per_gather", "0"),
    ] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(pool)
            .await
            .expect("a setting");
        assert_eq!(value, expected, "{name}");
    }
    // After five executions a statement runs its cached plan: a key lookup.
    let mut connection = pool.acquire().await.expect("a connection");
    sqlx::raw_sql(
        "PREPARE naming(text[]) AS
         SELECT DISTINCT household_id, id_number FROM registration_member WHERE id_number = ANY($1)",
    )
    .execute(&mut *connection)
    .await
    .expect("prepare");
    for _ in 0..6 {
        sqlx::raw_sql("EXECUTE naming('{210302198003010011,210302198003010022}')")
            .execute(&mut *connection)
            .await
            .expect("execute");
    }
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN EXECUTE naming('{210302198003010011,210302198003010022}')")
            .fetch_all(&mut *connection)
            .await
            .expect("explain");
    let plan = plan.join("\n");
    assert!(
        plan.contains("$1"),
        "the cached plan is the generic one:\n{plan}"
    );
    assert!(plan.contains("Index"), "a key lookup:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "no sequential scan:\n{plan}");
    // The fold's one statement reads every table by key too.
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {}",
        dynzero_reconciler::store::load::statement()
    )))
    .bind(vec!["H-1", "H-2"])
    .fetch_all(&mut *connection)
    .await
    .expect("explain the fold's statement");
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan"), "no sequential scan:\n{plan}");
    assert!(
        plan.contains("registration_member"),
        "the whole statement:\n{plan}"
    );
    drop(connection);
    pool.close().await;
    db.drop_database().await;
}

/// The hub and the database compute the same person lock key: the hub for
/// the people its messages name, the database (`dynzero_person_key`) for the
/// earlier members of the households a batch registers. If they differed,
/// two batches about one person would not exclude each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_keys_agree_between_the_hub_and_the_database() {
    let (db, reconciler) = fresh_reconciler().await;
    let pool = reconciler.hub().pool.clone();
    let mut ids: Vec<String> = (0..500u32)
        .map(|i| {
            let born = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap()
                + chrono::Days::new(i as u64 * 37);
            dynzero_simulator::id_number("210302", born, i % 2 == 0, i)
        })
        .collect();
    ids.extend(["", "x", "王伟", "21030219800301001X"].map(String::from));
    let in_database: Vec<i32> =
        sqlx::query_scalar("SELECT dynzero_person_key(id) FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n) ORDER BY n")
            .bind(&ids)
            .fetch_all(&pool)
            .await
            .expect("keys from the database");
    let in_hub: Vec<i32> = ids.iter().map(|id| locks::person_key(id)).collect();
    assert_eq!(in_database, in_hub);
    assert!(in_hub.iter().all(|&k| k >= 0), "31-bit keys");
    pool.close().await;
    db.drop_database().await;
}

/// One round trip takes a batch's locks: the people its messages name, the
/// members a registration drops (which only the database knows), and the
/// households naming them; until the transaction ends, another cannot take
/// any of them. What it returns is who names whom, read under those locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_locks_its_people_the_members_a_registration_drops_and_their_households() {
    let (db, reconciler) = fresh_reconciler().await;
    let hub = reconciler.hub().clone();
    let born = chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap();
    let kept = dynzero_simulator::id_number("210302", born, true, 21);
    let dropped = dynzero_simulator::id_number("210302", born, false, 22);
    let mut both = registration("H-LOCKS", &kept, "王伟");
    both["members"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id_number": dropped, "name": "李娜", "relation": "spouse" }));
    let body = event("locks-1", "household.registered", both)
        .to_string()
        .into_bytes();
    let fates = hub
        .process_batch(&[&body])
        .await
        .expect("no transient error");
    assert!(matches!(fates[..], [Fate::Applied]));

    let mut tx = hub.pool.begin().await.expect("a transaction");
    let locked = locks::lock_batch(&mut tx, &[kept.as_str()], &["H-LOCKS"], &["H-LOCKS"])
        .await
        .expect("locking");
    assert_eq!(locked.households, ["H-LOCKS"]);
    let mut members = locked.members.clone();
    members.sort();
    let mut expected = vec![
        ("H-LOCKS".to_string(), kept.clone()),
        ("H-LOCKS".to_string(), dropped.clone()),
    ];
    expected.sort();
    assert_eq!(members, expected);

    let mut other = hub.pool.acquire().await.expect("another connection");
    for person in [&kept, &dropped] {
        let free = person_lock_free(&mut other, person).await;
        assert!(!free, "{person} is locked by the batch");
    }
    let row =
        sqlx::query("SELECT 1 FROM household WHERE household_id = 'H-LOCKS' FOR UPDATE NOWAIT")
            .execute(&mut *other)
            .await;
    assert!(row.is_err(), "the household's row is locked by the batch");

    tx.rollback().await.expect("rolling back");
    for person in [&kept, &dropped] {
        let free = person_lock_free(&mut other, person).await;
        assert!(free, "{person} is free once the batch ends");
    }
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *other)
        .await
        .expect("letting go");
    drop(other);
    hub.pool.close().await;
    db.drop_database().await;
}

/// Batches of one (always full, so every batch is a backlog's), two in
/// flight, and the lock of one person held by the test: a batch naming
/// them waits until the test lets go.
struct OneLockHeld {
    fixture: Fixture,
    pool: sqlx::PgPool,
    holder: sqlx::pool::PoolConnection<sqlx::Postgres>,
    /// Whose lock the test holds, and someone else.
    held: String,
    free: String,
}

impl OneLockHeld {
    /// Batches of one message, two of them in flight.
    async fn new(amqp_url: &str, people: (u32, u32)) -> Self {
        Self::with_batches(amqp_url, people, 1, 1).await
    }

    /// Batches of at most `batch` messages, two of them in flight, the second
    /// once `pipeline_from` messages wait.
    async fn with_batches(
        amqp_url: &str,
        people: (u32, u32),
        batch: u16,
        pipeline_from: u16,
    ) -> Self {
        let db = fresh_database().await;
        let mut settings = test_settings(db.url(), amqp_url);
        settings.amqp.batch = batch;
        settings.amqp.prefetch = 4 * batch;
        settings.amqp.pipeline = 2;
        settings.amqp.pipeline_from = pipeline_from;
        let fixture = Fixture::with(db, settings).await;
        let pool = fixture.db.pool().await;
        let held = person(people.0);
        let free = person(people.1);
        let mut holder = pool.acquire().await.expect("a connection");
        assert!(
            person_lock_free(&mut holder, &held).await,
            "the test holds the first person's lock"
        );
        Self {
            fixture,
            pool,
            holder,
            held,
            free,
        }
    }

    /// Whether a transaction of the hub waits on a lock.
    /// (`pg_locks` is the whole server's: only this test's database counts.)
    async fn hub_waits(&self) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted)",
        )
        .fetch_one(&self.pool)
        .await
        .expect("reading pg_locks")
    }

    /// A registration of `household` with `person` alone.
    fn registration(id: &str, household: &str, person: &str) -> (String, Vec<u8>) {
        (
            "household.registered".to_string(),
            event(
                id,
                "household.registered",
                registration(household, person, "王伟"),
            )
            .to_string()
            .into_bytes(),
        )
    }

    async fn committed(&self, household: &str) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM household WHERE household_id = $1)",
        )
        .bind(household)
        .fetch_one(&self.pool)
        .await
        .expect("reading household")
    }

    async fn let_go(&mut self) {
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut *self.holder)
            .await
            .expect("letting go");
    }
}

/// While a backlog lasts, a consumer applies the next batch while an
/// earlier one still waits (`amqp.pipeline`), but settles it only after
/// the earlier one: cut from the broker before the earlier commits, both
/// come again, the later one although it committed long before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_batch_commits_while_an_earlier_one_waits_and_is_acked_only_after_it() {
    let proxy = TcpProxy::start(amqp_addr()).expect("a proxy in front of RabbitMQ");
    let mut t = OneLockHeld::new(&amqp_url_via(proxy.port()), (31, 32)).await;
    t.fixture
        .publish(&[
            OneLockHeld::registration("pipe-1", "H-WAITS", &t.held),
            OneLockHeld::registration("pipe-2", "H-PASSES", &t.free),
        ])
        .await;
    let hub = t.fixture.start().await;
    eventually(
        Duration::from_secs(60),
        "the second batch committed while the first waits",
        || async { t.committed("H-PASSES").await.then_some(()) },
    )
    .await;
    assert!(!t.committed("H-WAITS").await, "the first batch still waits");
    assert_eq!(
        hub.hub.metrics.processed_count(),
        0,
        "nothing settled while the first batch waits"
    );

    proxy.cut_and_wait().await;
    proxy.restore();
    t.let_go().await;
    // The first batch's ack (and the second's after it) may still be
    // written to the dead socket before the hub notices the cut: settled
    // counts say nothing here. What the broker hands out again does.
    eventually(
        Duration::from_secs(60),
        "both messages came again and the first committed",
        || async {
            (hub.hub.metrics.redeliveries_count() >= 2 && t.committed("H-WAITS").await)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        hub.hub.metrics.redeliveries_count(),
        2,
        "both came again: the second was not acked before the first committed"
    );
    hub.stop().await;
    drop(t.holder);
    t.pool.close().await;
}

/// A batch taken while another is in flight leaves out the messages that
/// name someone the batch in flight names: they wait (without a
/// transaction) until it lands, while the rest commit. The acks go only as
/// far as every delivery before them has committed, and once the first
/// batch lands nothing is left unacked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_naming_someone_in_flight_waits_for_that_batch_and_nothing_stays_unacked() {
    let mut t = OneLockHeld::new(&amqp_url(), (41, 42)).await;
    t.fixture
        .publish(&[
            OneLockHeld::registration("held-1", "H-FIRST", &t.held),
            // Names the person of the batch in flight: it must wait.
            OneLockHeld::registration("held-2", "H-MOVED", &t.held),
            OneLockHeld::registration("held-3", "H-PASSES", &t.free),
        ])
        .await;
    let hub = t.fixture.start().await;
    eventually(
        Duration::from_secs(60),
        "the third message committed while the first waits on its lock",
        || async { t.committed("H-PASSES").await.then_some(()) },
    )
    .await;
    assert_eq!(
        hub.hub.metrics.held_back_count(),
        1,
        "the second message was held back"
    );
    // Without holding it back, it would fill the second batch in flight,
    // waiting on the same lock, and the third could not start at all.
    assert!(
        !t.committed("H-MOVED").await,
        "the held message is not applied yet"
    );
    assert!(!t.committed("H-FIRST").await, "the first batch still waits");
    assert_eq!(
        hub.hub.metrics.processed_count(),
        0,
        "nothing settled while the first batch waits"
    );

    t.let_go().await;
    eventually(Duration::from_secs(60), "all three applied", || async {
        (hub.hub.metrics.processed_count() == 3).then_some(())
    })
    .await;
    assert!(t.committed("H-FIRST").await && t.committed("H-MOVED").await);
    assert_eq!(hub.hub.metrics.redeliveries_count(), 0);
    hub.stop().await;
    // Unacked deliveries would be back in the queue now that the hub is gone.
    let queue = t
        .fixture
        .broker
        .channel()
        .queue_declare(
            t.fixture.settings.amqp.queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("the hub's queue");
    assert_eq!(queue.message_count(), 0, "every delivery was acked");
    drop(t.holder);
    t.pool.close().await;
}

/// A working-age person, told apart by `n`.
fn person(n: u32) -> String {
    let born = chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap();
    dynzero_simulator::id_number("210302", born, n % 2 == 1, n)
}

/// Beside a batch in flight that was not full, the next batch goes once
/// `amqp.pipeline_from` messages wait: a rate one batch at a time cannot
/// keep up with gets a second transaction, not only a full backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_enough_messages_wait_a_batch_goes_beside_one_in_flight_that_was_not_full() {
    let mut t = OneLockHeld::with_batches(&amqp_url(), (51, 52), 4, 2).await;
    t.fixture
        .publish(&[OneLockHeld::registration("beside-1", "H-WAITS", &t.held)])
        .await;
    let hub = t.fixture.start().await;
    eventually(
        Duration::from_secs(60),
        "the first batch (one message of at most four) waits on its lock",
        || async { t.hub_waits().await.then_some(()) },
    )
    .await;
    // One message waiting is not enough for a second batch; two are.
    let third = person(53);
    t.fixture
        .publish(&[
            OneLockHeld::registration("beside-2", "H-SECOND", &t.free),
            OneLockHeld::registration("beside-3", "H-THIRD", &third),
        ])
        .await;
    eventually(
        Duration::from_secs(60),
        "the two later messages committed beside the batch in flight",
        || async { (t.committed("H-SECOND").await && t.committed("H-THIRD").await).then_some(()) },
    )
    .await;
    assert!(!t.committed("H-WAITS").await, "the first batch still waits");
    t.let_go().await;
    eventually(Duration::from_secs(60), "all three applied", || async {
        (hub.hub.metrics.processed_count() == 3).then_some(())
    })
    .await;
    hub.stop().await;
    drop(t.holder);
    t.pool.close().await;
}

/// Whether `connection` can take a person's lock (the hub's person lock
/// space); if it can, it holds it (session level) until it lets go.
async fn person_lock_free(connection: &mut sqlx::PgConnection, person: &str) -> bool {
    sqlx::query_scalar("SELECT pg_try_advisory_lock(25723, $1)")
        .bind(locks::person_key(person))
        .fetch_one(connection)
        .await
        .expect("trying a person lock")
}

/// Of two hubs, one relay publishes and the other waits; when the one
/// publishing stops, the other takes over and publishes what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_publishes_and_another_takes_over_when_it_stops() {
    let fixture = Fixture::new().await;
    let first = fixture.start().await;
    let second = fixture.start().await;
    let leading = || {
        (
            first.hub.metrics.relay_leading_now(),
            second.hub.metrics.relay_leading_now(),
        )
    };
    let first_leads = eventually(
        Duration::from_secs(30),
        "one relay leads and the other waits",
        || async {
            match leading() {
                (Some(true), Some(false)) => Some(true),
                (Some(false), Some(true)) => Some(false),
                _ => None,
            }
        },
    )
    .await;
    let (leader, waiting) = if first_leads {
        (first, second)
    } else {
        (second, first)
    };
    leader.stop().await;
    eventually(
        Duration::from_secs(30),
        "the waiting relay takes over",
        || async { (waiting.hub.metrics.relay_leading_now() == Some(true)).then_some(()) },
    )
    .await;

    let person = dynzero_simulator::id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap(),
        true,
        31,
    );
    let body = event(
        "relay-1",
        "household.registered",
        registration("H-RELAY", &person, "王伟"),
    )
    .to_string()
    .into_bytes();
    fixture
        .publish(&[("household.registered".to_string(), body)])
        .await;
    let mut seen = BTreeMap::new();
    fixture
        .latest_states(&mut seen, Duration::from_secs(60), |seen| {
            seen.contains_key("H-RELAY")
        })
        .await;
    waiting.stop().await;
    fixture.db.drop_database().await;
}

/// A backlog in the outbox of several reads (after the broker was away,
/// say) leaves whole, in outbox order, and the outbox ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_a_backlog_of_several_reads_whole_and_in_order() {
    const ROWS: usize = 2_600;
    let fixture = Fixture::new().await;
    let pool = fixture.db.pool().await;
    dynzero_reconciler::service::MIGRATOR
        .run(&pool)
        .await
        .expect("migrations");
    sqlx::query(
        "INSERT INTO outbox (stream, routing_key, message_id, body) \
         SELECT 'households', 'backlog.' || n, 'backlog-' || n, convert_to('{\"n\":' || n || '}', 'UTF8') \
         FROM generate_series(1, $1) n",
    )
    .bind(ROWS as i32)
    .execute(&pool)
    .await
    .expect("outbox backlog");
    let hub = fixture.start().await;
    let taken = fixture
        .broker
        .drain(
            &fixture.states,
            |taken| taken.len() >= ROWS,
            Duration::from_secs(120),
        )
        .await;
    let keys: Vec<String> = taken.iter().map(|d| d.routing_key.to_string()).collect();
    let expected: Vec<String> = (1..=ROWS).map(|n| format!("backlog.{n}")).collect();
    assert_eq!(keys.len(), ROWS, "every row of the backlog is published");
    assert!(keys == expected, "in outbox order");
    eventually(Duration::from_secs(30), "the outbox is empty", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("count");
        (left == 0).then_some(())
    })
    .await;
    hub.stop().await;
    pool.close().await;
    fixture.db.drop_database().await;
}

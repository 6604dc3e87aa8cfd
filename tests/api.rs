//! The read side against the real hub: scope, masking, audit and roles;
//! statistics against a recomputation from the published states; paging
//! while the hub ingests; the live alert stream; replaying a rejection.

use chrono::{DateTime, FixedOffset, NaiveDate};
use dynzero_api::access::{PiiPolicy, Role};
use dynzero_simulator::{City, CityConfig, id_number};
use dynzero_tests::api::TestApi;
use dynzero_tests::eventually;
use dynzero_tests::hub::{Fixture, RunningHub, noon};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
}

fn messages(city: Vec<dynzero_simulator::Message>) -> Vec<(String, Vec<u8>)> {
    city.into_iter().map(|m| (m.routing_key, m.body)).collect()
}

fn event(id: &str, event_type: &str, data: Value) -> (String, Vec<u8>) {
    let body = json!({
        "specversion": "1.0", "id": id, "source": "test/api", "type": event_type,
        "time": "2026-11-01T08:00:00+08:00", "data": data,
    });
    (event_type.to_string(), body.to_string().into_bytes())
}

/// Publish, then wait until every message is settled and the relay has
/// published every output.
async fn ingest(fixture: &Fixture, hub: &RunningHub, batch: &[(String, Vec<u8>)], total: &mut u64) {
    fixture.publish(batch).await;
    *total += batch.len() as u64;
    let pool = fixture.db.pool().await;
    let want = *total;
    eventually(
        Duration::from_secs(60),
        "messages settled and relayed",
        || {
            let pool = pool.clone();
            async move {
                let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (hub.settled() >= want && outbox == 0).then_some(())
            }
        },
    )
    .await;
}

/// Every state version published so far, per household, in version order.
async fn published_versions(
    fixture: &Fixture,
) -> BTreeMap<String, Vec<(Value, DateTime<FixedOffset>)>> {
    let pool = fixture.db.pool().await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM household_version")
        .fetch_one(&pool)
        .await
        .expect("counting versions");
    let got = fixture
        .broker
        .drain(
            &fixture.states,
            |got| got.len() as i64 >= count,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(got.len() as i64, count, "every version was published");
    let mut out: BTreeMap<String, Vec<(Value, DateTime<FixedOffset>)>> = BTreeMap::new();
    for d in got {
        let event: Value = serde_json::from_slice(&d.data).expect("JSON");
        let time = DateTime::parse_from_rfc3339(event["time"].as_str().expect("a time"))
            .expect("RFC 3339");
        let data = event["data"].clone();
        out.entry(
            data["household_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .or_default()
        .push((data, time));
    }
    for versions in out.values_mut() {
        versions.sort_by_key(|(d, _)| d["version"].as_i64());
    }
    out
}

fn latest(
    versions: &BTreeMap<String, Vec<(Value, DateTime<FixedOffset>)>>,
) -> BTreeMap<String, Value> {
    versions
        .iter()
        .filter_map(|(h, v)| v.last().map(|(d, _)| (h.clone(), d.clone())))
        .collect()
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["household_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn under(states: &BTreeMap<String, Value>, prefix: &str) -> BTreeSet<String> {
    states
        .iter()
        .filter(|(_, s)| {
            s["division_code"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
        })
        .map(|(h, _)| h.clone())
        .collect()
}

/// Tokens for two communities of different districts, a street and the
/// city each see exactly their households; 401, 403 and 404; masking; the
/// audit of full-PII reads; what a worker and a supervisor may not do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_sees_exactly_its_scope_masked_as_it_may() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let mut total = 0;
    let mut city = City::new(CityConfig::small(11, 48, 0, date(2026, 11, 28)));
    ingest(&fixture, &hub, &messages(city.backfill()), &mut total).await;
    let states = latest(&published_versions(&fixture).await);
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;

    let a = api
        .token("a", "210302001001", Role::Worker, PiiPolicy::Masked)
        .await;
    let b = api
        .token("b", "210303002002", Role::Worker, PiiPolicy::Full)
        .await;
    let street = api
        .token("street", "210302001", Role::Supervisor, PiiPolicy::Masked)
        .await;
    let city_token = api
        .token("city", "2103", Role::Admin, PiiPolicy::Full)
        .await;
    for (token, prefix) in [
        (&a, "210302001001"),
        (&b, "210303002002"),
        (&street, "210302001"),
        (&city_token, "2103"),
    ] {
        let seen = api.all_households(token, "", 5).await;
        let expected = under(&states, prefix);
        assert!(!expected.is_empty(), "{prefix} has households");
        assert_eq!(ids(&seen), expected, "{prefix} sees exactly its households");
        assert_eq!(seen.len(), expected.len(), "{prefix}: each once");
    }

    // 401, 403, 404, with problem documents.
    let (status, problem) = api.get(None, "/api/v1/households").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["status"], 401);
    assert_eq!(
        api.get(Some("dz_nonsense"), "/api/v1/stats").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, problem) = api
        .get(Some(&a), "/api/v1/households?division=210303")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(
        api.get(Some(&street), "/api/v1/stats?division=210302002")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let b_household = under(&states, "210303002002")
        .into_iter()
        .next()
        .expect("one in b");
    let (status, _) = api
        .get(Some(&a), &format!("/api/v1/households/{b_household}"))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "outside the scope is not found"
    );
    assert_eq!(
        api.get(Some(&a), "/api/v1/households/NO-SUCH").await.0,
        StatusCode::NOT_FOUND
    );

    // Masked and full.
    let masked = api.all_households(&a, "", 50).await;
    for item in &masked {
        for m in item["members"].as_array().expect("members") {
            let id = m["id_number"].as_str().expect("an id number");
            assert_eq!(&id[6..14], "********", "{id} masked");
            assert!(m["name"].as_str().expect("a name").contains('*'));
        }
    }
    let full = api.all_households(&b, "", 50).await;
    for item in &full {
        assert_eq!(
            item,
            &states[item["household_id"].as_str().unwrap()],
            "full: as published"
        );
    }
    let (status, detail) = api
        .get(Some(&b), &format!("/api/v1/households/{b_household}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["state"], states[&b_household]);
    assert!(
        !detail["versions"][0]["caused_by"]
            .as_array()
            .expect("lineage")
            .is_empty()
    );

    // The audit: every household b read, and nothing for the masked tokens.
    let audited: Vec<(String, String)> =
        sqlx::query_as("SELECT token_name, household_id FROM api_audit ORDER BY seq")
            .fetch_all(&api.pool)
            .await
            .expect("audit rows");
    let b_reads: BTreeSet<String> = audited
        .iter()
        .filter(|(t, _)| t == "b")
        .map(|(_, h)| h.clone())
        .collect();
    assert_eq!(b_reads, under(&states, "210303002002"));
    assert!(
        audited.iter().all(|(t, _)| t == "b" || t == "city"),
        "masked reads are not audited"
    );
    assert!(audited.iter().any(|(t, h)| t == "b" && h == &b_household));

    // Roles.
    assert_eq!(
        api.get(Some(&a), "/api/v1/rejections").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get(Some(&street), "/api/v1/rejections").await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.post(&a, "/api/v1/rejections/1/replay").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.post(&street, "/api/v1/rejections/1/replay").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.post(&city_token, "/api/v1/rejections/999999/replay")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    api.stop().await;
    hub.stop().await;
}

/// What the statistics must be, recomputed from the published versions.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    households: i64,
    zero_employment: i64,
    new_this_month: i64,
    resolved_this_month: i64,
    days: Vec<i64>,
    placement_overdue: i64,
    dual_employment: i64,
    dibao_among_zero: i64,
    employed_after_spell: i64,
    stable_after_spell: i64,
}

fn shanghai_date(t: &DateTime<FixedOffset>) -> NaiveDate {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive()
}

fn recompute(
    versions: &BTreeMap<String, Vec<(Value, DateTime<FixedOffset>)>>,
    prefix: &str,
    month: (i32, u32),
    today: NaiveDate,
) -> Expected {
    let mut e = Expected::default();
    let in_month =
        |d: NaiveDate| (d.format("%Y-%m").to_string()) == format!("{}-{:02}", month.0, month.1);
    let window_start = date(month.0 - 1, month.1, 1) + chrono::Months::new(1);
    let window_end = date(month.0, month.1, 1) + chrono::Months::new(1);
    let is = |v: &Value, s: &str| v["status"] == s;
    for history in versions.values() {
        let (last, _) = history.last().expect("a version");
        if last["division_code"].as_str().unwrap().starts_with(prefix) {
            e.households += 1;
            let zero = is(last, "zero_employment");
            e.zero_employment += zero as i64;
            e.dual_employment += (last["dual_employment"] == true) as i64;
            e.dibao_among_zero += (zero && last["dibao"].is_object()) as i64;
            if let Some(since) = last["zero_since"].as_str() {
                let since = NaiveDate::parse_from_str(since, "%Y-%m-%d").unwrap();
                e.placement_overdue += (zero && (today - since).num_days() > 30) as i64;
            }
        }
        for pair in history.windows(2) {
            let ((prev, _), (v, time)) = (&pair[0], &pair[1]);
            if !v["division_code"].as_str().unwrap().starts_with(prefix) {
                continue;
            }
            let day = shanghai_date(time);
            if is(prev, "zero_employment") && !is(v, "zero_employment") {
                if in_month(day) {
                    e.resolved_this_month += 1;
                    let since =
                        NaiveDate::parse_from_str(prev["zero_since"].as_str().unwrap(), "%Y-%m-%d")
                            .unwrap();
                    e.days.push((day - since).num_days());
                }
                if day >= window_start && day < window_end {
                    for m in v["members"].as_array().unwrap() {
                        if m["employed"] == true {
                            e.employed_after_spell += 1;
                            e.stable_after_spell += (m["stable"] == true) as i64;
                        }
                    }
                }
            }
            if !is(prev, "zero_employment") && is(v, "zero_employment") && in_month(day) {
                e.new_this_month += 1;
            }
        }
        let (first, time) = history.first().expect("a version");
        if is(first, "zero_employment")
            && first["division_code"].as_str().unwrap().starts_with(prefix)
            && in_month(shanghai_date(time))
        {
            e.new_this_month += 1;
        }
    }
    e
}

fn median(days: &mut [i64]) -> Option<f64> {
    days.sort();
    let n = days.len();
    (n > 0).then(|| {
        if n % 2 == 1 {
            days[n / 2] as f64
        } else {
            (days[n / 2 - 1] + days[n / 2]) as f64 / 2.0
        }
    })
}

fn check(figures: &Value, expected: &mut Expected, what: &str) {
    let n = |k: &str| figures[k].as_i64().unwrap_or(-1);
    assert_eq!(n("households"), expected.households, "{what}: households");
    assert_eq!(
        n("zero_employment"),
        expected.zero_employment,
        "{what}: zero_employment"
    );
    assert_eq!(
        n("new_this_month"),
        expected.new_this_month,
        "{what}: new_this_month"
    );
    assert_eq!(
        n("resolved_this_month"),
        expected.resolved_this_month,
        "{what}: resolved_this_month"
    );
    assert_eq!(
        n("placement_overdue"),
        expected.placement_overdue,
        "{what}: placement_overdue"
    );
    assert_eq!(
        n("dual_employment"),
        expected.dual_employment,
        "{what}: dual_employment"
    );
    assert_eq!(
        n("dibao_among_zero"),
        expected.dibao_among_zero,
        "{what}: dibao_among_zero"
    );
    assert_eq!(
        n("employed_after_spell"),
        expected.employed_after_spell,
        "{what}: employed"
    );
    assert_eq!(
        n("stable_after_spell"),
        expected.stable_after_spell,
        "{what}: stable"
    );
    assert_eq!(
        figures["median_days_to_placement"].as_f64(),
        median(&mut expected.days),
        "{what}: median"
    );
}

/// The statistics equal a recomputation from the published versions, at
/// all four levels, on both sides of a month boundary the clock crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_equal_a_recomputation_at_all_four_levels() {
    let fixture = Fixture::new().await;
    let october = date(2026, 10, 31);
    let november = date(2026, 11, 2);
    fixture.clock.set(noon(october));
    let hub = fixture.start().await;
    let mut total = 0;
    let mut city = City::new(CityConfig::small(5, 64, 400, november));
    ingest(&fixture, &hub, &messages(city.backfill()), &mut total).await;
    // The API's migrations count the households there are (the backfill);
    // its triggers count what the hub changes after.
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    fixture.clock.set(noon(november));
    ingest(&fixture, &hub, &messages(city.events()), &mut total).await;
    let versions = published_versions(&fixture).await;
    let token = api
        .token("city", "2103", Role::Admin, PiiPolicy::Masked)
        .await;

    let mut resolved_somewhere = 0;
    for month in [(2026, 10), (2026, 11)] {
        for prefix in ["2103", "210302", "210303001", "210302001002"] {
            let path = format!(
                "/api/v1/stats?division={prefix}&month={}-{:02}",
                month.0, month.1
            );
            let (status, stats) = api.get(Some(&token), &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {stats}");
            let mut expected = recompute(&versions, prefix, month, november);
            check(&stats["total"], &mut expected, &path);
            resolved_somewhere += expected.resolved_this_month + expected.new_this_month;
            let children = stats["children"].as_array().expect("children");
            assert_eq!(children.is_empty(), prefix.len() == 12);
            for child in children {
                let code = child["division_code"].as_str().unwrap();
                let mut expected = recompute(&versions, code, month, november);
                check(child, &mut expected, &format!("{path} child {code}"));
            }
            for key in [
                "households",
                "zero_employment",
                "new_this_month",
                "visit_overdue",
            ] {
                let sum: i64 = children.iter().map(|c| c[key].as_i64().unwrap()).sum();
                if !children.is_empty() {
                    assert_eq!(
                        sum,
                        stats["total"][key].as_i64().unwrap(),
                        "{path}: total {key} is the sum"
                    );
                }
            }
        }
    }
    assert!(
        resolved_somewhere > 0,
        "the scenario opens and closes spells"
    );
    // The totals equal what the household list shows for the same scope.
    let (_, stats) = api.get(Some(&token), "/api/v1/stats?division=210302").await;
    for (query, key) in [
        ("status=zero_employment", "zero_employment"),
        ("overdue=placement", "placement_overdue"),
        ("overdue=visit", "visit_overdue"),
    ] {
        let listed = api
            .all_households(&token, &format!("division=210302&{query}"), 100)
            .await;
        assert_eq!(
            listed.len() as i64,
            stats["total"][key].as_i64().unwrap(),
            "{query}"
        );
    }
    let (status, _) = api.get(Some(&token), "/api/v1/stats?month=2025-10").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "more than 12 months back");

    // Folding the counters' deltas leaves one row per community and changes
    // no figure.
    let pool = fixture.db.pool().await;
    let (_, before) = api.get(Some(&token), "/api/v1/stats?division=2103").await;
    dynzero_api::stats::compact_counts(&pool).await.unwrap();
    let (rows, communities): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT division_code) FROM api_household_count")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, communities, "one row per community after folding");
    let (_, after) = api.get(Some(&token), "/api/v1/stats?division=2103").await;
    assert_eq!(before, after);
    api.stop().await;
    hub.stop().await;
}

/// Paging through every household while the hub ingests shows each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_shows_every_household_once_while_the_hub_ingests() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let mut total = 0;
    let mut city = City::new(CityConfig::small(3, 60, 600, date(2026, 11, 28)));
    ingest(&fixture, &hub, &messages(city.backfill()), &mut total).await;
    let before = latest(&published_versions(&fixture).await);
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let token = api
        .token("city", "2103", Role::Worker, PiiPolicy::Masked)
        .await;
    let events = messages(city.events());
    let publishing = fixture.publish(&events);
    let paging = async {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(api.all_households(&token, "", 4).await);
        }
        seen
    };
    let ((), passes) = tokio::join!(publishing, paging);
    for items in passes {
        let got = ids(&items);
        assert_eq!(got.len(), items.len(), "no household twice");
        assert!(
            got.is_superset(&before.keys().cloned().collect()),
            "none missing"
        );
    }
    api.stop().await;
    hub.stop().await;
}

/// Reads SSE `data:` lines of `alert` events from a response.
async fn next_alert<B: AsRef<[u8]>>(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(data.trim()).expect("an alert as JSON");
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream stays open")
            .expect("a chunk");
        buffer.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
}

fn jobless_household(id: &str, division: &str, serial: u32) -> Value {
    let person = id_number(&division[..6], date(1988, 4, 2), true, serial);
    json!({"household_id": id, "division_code": division, "effective_date": "2026-01-01",
           "members": [{"id_number": person, "name": "赵磊", "relation": "head"}]})
}

/// An alert raised by a published message arrives on its community's
/// stream and not on another community's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_stream_carries_its_communitys_alerts_only() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let a = api
        .token("a", "210302001001", Role::Worker, PiiPolicy::Masked)
        .await;
    let b = api
        .token("b", "210303001001", Role::Worker, PiiPolicy::Masked)
        .await;
    let open = |token: String| {
        let request = api
            .client
            .get(format!("{}/api/v1/alerts/stream", api.base))
            .bearer_auth(token);
        async move {
            let response = request.send().await.expect("the stream opens");
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes_stream()
        }
    };
    let mut stream_a = open(a).await;
    let mut stream_b = open(b).await;
    fixture
        .publish(&[event(
            "z-a",
            "household.registered",
            jobless_household("H-A", "210302001001", 1),
        )])
        .await;
    let (mut buf_a, mut buf_b) = (String::new(), String::new());
    let alert = next_alert(&mut stream_a, &mut buf_a).await;
    assert_eq!(alert["household_id"], "H-A");
    assert_eq!(alert["kind"], "zero_employment_new");
    // b's first alert is its own, published after a's: a's never reached it.
    fixture
        .publish(&[event(
            "z-b",
            "household.registered",
            jobless_household("H-B", "210303001001", 2),
        )])
        .await;
    let alert = next_alert(&mut stream_b, &mut buf_b).await;
    assert_eq!(
        alert["household_id"], "H-B",
        "a's alert is not on b's stream"
    );
    drop((stream_a, stream_b));
    api.stop().await;
    hub.stop().await;
}

/// A message rejected as `poison` (a fault the test injects and then
/// removes) is replayed by an admin and applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_rejected_message_is_replayed_and_applied() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let admin = api
        .token("admin", "2103", Role::Admin, PiiPolicy::Full)
        .await;
    // The injected fault: storing this household's registration fails, every time.
    sqlx::raw_sql(
        "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.household_id = 'H-POISON' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER test_fault BEFORE INSERT ON registration FOR EACH ROW EXECUTE FUNCTION test_fault();",
    )
    .execute(&api.pool)
    .await
    .expect("injecting the fault");
    let message = event(
        "p-1",
        "household.registered",
        jobless_household("H-POISON", "210302001001", 7),
    );
    fixture.publish(std::slice::from_ref(&message)).await;
    let id: i64 = eventually(
        Duration::from_secs(60),
        "the message rejected as poison",
        || async {
            sqlx::query_scalar("SELECT seq FROM rejection WHERE reason = 'poison'")
                .fetch_optional(&api.pool)
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    let (status, listed) = api
        .get(Some(&admin), "/api/v1/rejections?reason=poison")
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = listed[0]["body"].as_str().expect("the body, masked");
    let person = id_number("210302", date(1988, 4, 2), true, 7);
    assert!(body.contains("H-POISON"), "{body}");
    assert!(!body.contains(&person), "the id number is masked: {body}");
    sqlx::raw_sql("DROP TRIGGER test_fault ON registration")
        .execute(&api.pool)
        .await
        .expect("removing the fault");
    let (status, replayed) = api
        .post(&admin, &format!("/api/v1/rejections/{id}/replay"))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    eventually(
        Duration::from_secs(60),
        "the replayed message applied",
        || async {
            let (status, detail) = api.get(Some(&admin), "/api/v1/households/H-POISON").await;
            (status == StatusCode::OK).then_some(detail)
        },
    )
    .await;
    api.stop().await;
    hub.stop().await;
}

/// The household counters follow every way a household's counts change: a
/// first publication, dual employment gained and lost, a spell opened with
/// 低保 and closed, a move to another community, several households in one
/// statement, a delete; and a fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_counters_follow_every_change() {
    type Counts = (String, i64, i64, i64, i64);
    let fixture = Fixture::new().await;
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let pool = fixture.db.pool().await;
    let counts = || async {
        let rows: Vec<Counts> = sqlx::query_as(
            "SELECT division_code, sum(households)::bigint, sum(dual_employment)::bigint,
                    sum(zero_employment)::bigint, sum(dibao_among_zero)::bigint
             FROM api_household_count GROUP BY 1
             HAVING sum(households) <> 0 OR sum(dual_employment) <> 0
                 OR sum(zero_employment) <> 0 OR sum(dibao_among_zero) <> 0
             ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let recount: Vec<Counts> = sqlx::query_as(
            "SELECT division_code, count(*),
                    count(*) FILTER (WHERE content->'dual_employment' = 'true'::jsonb),
                    count(*) FILTER (WHERE status = 'zero_employment'),
                    count(*) FILTER (WHERE status = 'zero_employment'
                                     AND jsonb_typeof(content->'dibao') = 'object')
             FROM household WHERE version > 0 GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows, recount, "the counters equal a recount");
        rows
    };
    let run = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    let a = |h, d, z, b| ("210302001001".to_string(), h, d, z, b);
    let b = |h, d, z, b| ("210303002001".to_string(), h, d, z, b);
    run("INSERT INTO household (household_id) VALUES ('H1'), ('H2'), ('H3')").await;
    assert!(counts().await.is_empty(), "nothing published yet");
    run(
        "UPDATE household SET version = 1, division_code = '210302001001', status = 'employed',
                content = '{\"dual_employment\": false}' WHERE household_id IN ('H1', 'H2')",
    )
    .await;
    assert_eq!(counts().await, vec![a(2, 0, 0, 0)]);
    run(
        "UPDATE household SET version = version + 1, content = '{\"dual_employment\": true}'
         WHERE household_id = 'H1'",
    )
    .await;
    assert_eq!(counts().await, vec![a(2, 1, 0, 0)]);
    run(
        "UPDATE household SET version = version + 1, status = 'zero_employment',
                content = '{\"dual_employment\": false, \"dibao\": {\"case_id\": \"C1\"}}'
         WHERE household_id = 'H2'",
    )
    .await;
    assert_eq!(
        counts().await,
        vec![a(2, 1, 1, 1)],
        "a spell with 低保 opens"
    );
    run(
        "UPDATE household SET version = version + 1, division_code = '210303002001'
         WHERE household_id = 'H1'",
    )
    .await;
    assert_eq!(
        counts().await,
        vec![a(1, 0, 1, 1), b(1, 1, 0, 0)],
        "a move takes its counts along"
    );
    run(
        "UPDATE household SET version = 1, division_code = '210303002001', status = 'employed',
                content = '{\"dual_employment\": true}' WHERE household_id = 'H3'",
    )
    .await;
    run(
        "UPDATE household SET version = version + 1, status = 'employed',
                content = '{\"dual_employment\": false}'
         WHERE household_id IN ('H1', 'H2', 'H3')",
    )
    .await;
    assert_eq!(counts().await, vec![a(1, 0, 0, 0), b(2, 0, 0, 0)]);
    run("DELETE FROM household WHERE household_id = 'H2'").await;
    assert_eq!(counts().await, vec![b(2, 0, 0, 0)]);
    dynzero_api::stats::compact_counts(&pool).await.unwrap();
    assert_eq!(
        counts().await,
        vec![b(2, 0, 0, 0)],
        "folding changes no count"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_household_count")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "one row per community after folding, none for an empty one"
    );
    api.stop().await;
}

/// The API keeps the callers of valid tokens in memory, and a revocation
/// still takes effect at once: the database announces it and every cached
/// caller is dropped (the cache would otherwise keep it for a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_though_its_caller_was_cached() {
    let fixture = Fixture::new().await;
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let token = api
        .token("leaver", "210302001001", Role::Worker, PiiPolicy::Masked)
        .await;
    let other = api
        .token("stayer", "210302001001", Role::Worker, PiiPolicy::Masked)
        .await;
    for t in [&token, &other] {
        let (status, _) = api.get(Some(t), "/api/v1/stats").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the token works, and its caller is cached"
        );
    }
    let pool = fixture.db.pool().await;
    assert!(
        dynzero_api::access::revoke_token(&pool, "leaver")
            .await
            .unwrap()
    );
    eventually(
        Duration::from_secs(5),
        "the revoked token refused",
        || async {
            let (status, _) = api.get(Some(&token), "/api/v1/stats").await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    let (status, _) = api.get(Some(&other), "/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK, "another token still works");
    api.stop().await;
}

//! Alerts through the running hub: date-driven changes raised by the sweeper
//! with the clock moved by the test, and the alerts that messages raise.

use chrono::{Duration as Days, NaiveDate};
use dynzero_reconciler::service::sweep_all;
use dynzero_simulator::{id_number, uscc};
use dynzero_tests::eventually;
use dynzero_tests::hub::{Fixture, RunningHub};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
}

fn event(id: &str, event_type: &str, time: &str, data: Value) -> (String, Vec<u8>) {
    let body = json!({
        "specversion": "1.0", "id": id, "source": "test/alerts", "type": event_type,
        "time": time, "data": data,
    });
    (event_type.to_string(), body.to_string().into_bytes())
}

struct Alerts {
    by_kind: BTreeMap<String, Vec<Value>>,
}

impl Alerts {
    fn count(&self, kind: &str) -> usize {
        self.by_kind.get(kind).map_or(0, Vec::len)
    }
}

async fn collect_alerts(fixture: &Fixture, alerts: &mut Alerts) {
    let got = fixture
        .broker
        .drain(&fixture.alerts, |_| false, Duration::from_millis(400))
        .await;
    for d in got {
        let event: Value = serde_json::from_slice(&d.data).expect("alerts are JSON");
        let kind = event["data"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            d.routing_key.as_str().split('.').next(),
            Some(kind.as_str())
        );
        alerts.by_kind.entry(kind).or_default().push(event);
    }
}

async fn settle(hub: &RunningHub, n: u64) {
    eventually(Duration::from_secs(30), "messages settled", || async {
        (hub.settled() >= n).then_some(())
    })
    .await;
}

async fn wait_for(fixture: &Fixture, alerts: &mut Alerts, kind: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while alerts.count(kind) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {n} {kind}, have {}",
            alerts.count(kind)
        );
        collect_alerts(fixture, alerts).await;
    }
}

/// A member turning 16 makes a household zero-employment without any
/// message; the overdue alerts come once per occurrence as the days pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_raises_date_driven_alerts_once_per_occurrence() {
    let fixture = Fixture::new().await;
    let today = date(2026, 11, 28);
    fixture.clock.set(dynzero_tests::hub::noon(today));
    let teen = id_number("210302", date(2010, 11, 29), true, 1);
    let hub = fixture.start().await;
    fixture
        .publish(&[event(
            "reg-1",
            "household.registered",
            "2026-01-01T09:00:00+08:00",
            json!({"household_id": "H-TEEN", "division_code": "210302001002", "effective_date": "2026-01-01",
                   "members": [{"id_number": teen, "name": "张明", "relation": "head"}]}),
        )])
        .await;
    settle(&hub, 1).await;
    let mut alerts = Alerts {
        by_kind: BTreeMap::new(),
    };
    let mut states = BTreeMap::new();
    fixture
        .latest_states(&mut states, Duration::from_secs(30), |s| {
            s.contains_key("H-TEEN")
        })
        .await;
    assert_eq!(states["H-TEEN"]["status"], "no_labour_force");
    assert_eq!(states["H-TEEN"]["version"], 1);

    // The 16th birthday.
    fixture.clock.advance(Days::days(1));
    sweep_all(&hub.hub).await.expect("sweep");
    fixture
        .latest_states(&mut states, Duration::from_secs(30), |s| {
            s["H-TEEN"]["version"] == 2
        })
        .await;
    assert_eq!(states["H-TEEN"]["status"], "zero_employment");
    assert_eq!(states["H-TEEN"]["zero_since"], "2026-11-29");
    assert_eq!(
        states["H-TEEN"]["caused_by"],
        json!([]),
        "only the date changed it"
    );
    wait_for(&fixture, &mut alerts, "zero_employment_new", 1).await;

    // 30 days open: not yet overdue; 31: placement overdue; 32: visit overdue.
    fixture.clock.advance(Days::days(30));
    sweep_all(&hub.hub).await.expect("sweep");
    fixture.clock.advance(Days::days(1));
    sweep_all(&hub.hub).await.expect("sweep");
    wait_for(&fixture, &mut alerts, "placement_overdue", 1).await;
    assert_eq!(alerts.by_kind["placement_overdue"][0]["data"]["days"], 31);
    assert_eq!(alerts.count("visit_overdue"), 0);
    fixture.clock.advance(Days::days(1));
    sweep_all(&hub.hub).await.expect("sweep");
    sweep_all(&hub.hub)
        .await
        .expect("a second sweep raises nothing new");
    wait_for(&fixture, &mut alerts, "visit_overdue", 1).await;
    assert_eq!(
        alerts.by_kind["visit_overdue"][0]["data"]["last_visit"],
        Value::Null
    );

    // A visit starts a new gap: 32 days later, a second visit_overdue, but
    // the spell's placement_overdue is not raised again.
    let visit_day = today + Days::days(33);
    fixture
        .publish(&[event(
            "visit-1",
            "household.visited",
            "2026-12-31T10:00:00+08:00",
            json!({"household_id": "H-TEEN", "visit_date": visit_day.to_string(), "worker": "李网格",
                   "findings": [{"id_number": teen, "employment": "unemployed"}]}),
        )])
        .await;
    settle(&hub, 2).await;
    fixture.clock.advance(Days::days(32));
    sweep_all(&hub.hub).await.expect("sweep");
    fixture.clock.advance(Days::days(1));
    sweep_all(&hub.hub).await.expect("sweep");
    wait_for(&fixture, &mut alerts, "visit_overdue", 2).await;
    collect_alerts(&fixture, &mut alerts).await;
    assert_eq!(alerts.count("visit_overdue"), 2);
    assert_eq!(alerts.count("placement_overdue"), 1);
    assert_eq!(alerts.count("zero_employment_new"), 1);
    assert_eq!(
        alerts.by_kind["visit_overdue"][1]["data"]["last_visit"],
        json!(visit_day.to_string())
    );
    hub.stop().await;
}

/// A planned layoff warns early and flags the household it would leave with
/// nobody employed; a posting is offered to zero-employment households of
/// its county; a visit contradicting an HR record raises a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_raise_layoff_at_risk_job_match_and_conflict_alerts() {
    let fixture = Fixture::new().await;
    let today = date(2026, 11, 28);
    fixture.clock.set(dynzero_tests::hub::noon(today));
    let worker = id_number("210302", date(1980, 3, 1), true, 1);
    let spouse = id_number("210302", date(1982, 6, 1), false, 2);
    let jobless = id_number("210302", date(1990, 1, 15), true, 3);
    let employer = uscc("210302", 1);
    let hub = fixture.start().await;
    let messages = vec![
        event(
            "r-1",
            "household.registered",
            "2026-01-01T09:00:00+08:00",
            json!({"household_id": "H-RISK", "division_code": "210302001002", "effective_date": "2026-01-01",
                   "members": [{"id_number": worker, "name": "王强", "relation": "head"},
                               {"id_number": spouse, "name": "刘芳", "relation": "spouse", "seeking_work": true}]}),
        ),
        event(
            "r-2",
            "household.registered",
            "2026-01-01T09:01:00+08:00",
            json!({"household_id": "H-ZERO", "division_code": "210302002001", "effective_date": "2026-01-01",
                   "members": [{"id_number": jobless, "name": "赵磊", "relation": "head"}]}),
        ),
        event(
            "e-1",
            "employment.started",
            "2026-02-01T09:00:00+08:00",
            json!({"id_number": worker, "name": "王强", "employer": {"uscc": employer, "name": "鞍山钢铁机械厂"},
                   "start_date": "2026-02-01", "contract_months": null, "monthly_wage": 4200,
                   "social_insurance": true, "kind": "formal"}),
        ),
        // 1 of 5 staff: 20 %, over the 10 % threshold.
        event(
            "l-1",
            "layoff.notice",
            "2026-11-20T09:00:00+08:00",
            json!({"notice_id": "N-1", "stage": "planned", "effective_date": "2026-12-20",
                   "enterprise": {"uscc": employer, "name": "鞍山钢铁机械厂", "headcount": 5, "division_code": "210302000000"},
                   "employees": [{"id_number": worker, "name": "王强"}]}),
        ),
        event(
            "p-1",
            "job.posting",
            "2026-11-27T09:00:00+08:00",
            json!({"posting_id": "P-1", "employer": {"uscc": employer, "name": "鞍山钢铁机械厂"}, "title": "保安",
                   "openings": 1, "division_code": "210302001001", "monthly_wage": 2600, "contract_months": 12,
                   "social_insurance": true, "public_welfare": false, "age_min": 18, "age_max": 50,
                   "valid_until": "2026-12-31"}),
        ),
        event(
            "v-1",
            "household.visited",
            "2026-11-25T15:00:00+08:00",
            json!({"household_id": "H-RISK", "visit_date": "2026-11-25", "worker": "李网格",
                   "findings": [{"id_number": worker, "employment": "unemployed"}]}),
        ),
    ];
    // The posting must find H-ZERO already zero: publish in two steps.
    fixture.publish(&messages[..4]).await;
    settle(&hub, 4).await;
    fixture.publish(&messages[4..]).await;
    settle(&hub, 6).await;
    // Redelivering everything raises nothing new.
    fixture.publish(&messages).await;
    settle(&hub, 12).await;

    let mut alerts = Alerts {
        by_kind: BTreeMap::new(),
    };
    for kind in [
        "layoff_early_warning",
        "household_at_risk",
        "job_match",
        "data_conflict",
    ] {
        wait_for(&fixture, &mut alerts, kind, 1).await;
    }
    collect_alerts(&fixture, &mut alerts).await;
    for kind in [
        "layoff_early_warning",
        "household_at_risk",
        "job_match",
        "data_conflict",
    ] {
        assert_eq!(alerts.count(kind), 1, "{kind} once");
    }
    let warning = &alerts.by_kind["layoff_early_warning"][0]["data"];
    assert_eq!(warning["count"], 1);
    assert_eq!(warning["ratio"], 0.2);
    let at_risk = &alerts.by_kind["household_at_risk"][0]["data"];
    assert_eq!(at_risk["household_id"], "H-RISK");
    assert_eq!(at_risk["members"][0]["id_number"], json!(worker));
    let matched = &alerts.by_kind["job_match"][0]["data"];
    assert_eq!(matched["household_id"], "H-ZERO");
    assert_eq!(matched["matched_members"][0]["age"], 36);
    let conflict = &alerts.by_kind["data_conflict"][0]["data"];
    assert_eq!(conflict["employer_uscc"], json!(employer));
    assert_eq!(conflict["visit_date"], "2026-11-25");
    // Every alert validates against its published schema.
    let schemas = dynzero_contracts::schemas::Schemas::get();
    for (kind, list) in &alerts.by_kind {
        for event in list {
            schemas
                .validate_output_envelope(event)
                .unwrap_or_else(|v| panic!("{kind}: {v}"));
        }
    }
    hub.stop().await;
}

/// §6a 14 through the broker: a late employment fact moves `zero_since` of a
/// household already overdue, in separate messages and batches; a community
/// worker still gets one `placement_overdue` and one `visit_overdue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_facts_that_move_zero_since_raise_one_alert_per_spell_and_gap() {
    let fixture = Fixture::new().await;
    let today = date(2026, 11, 28);
    fixture.clock.set(dynzero_tests::hub::noon(today));
    let head = id_number("210302", date(1980, 3, 1), true, 1);
    let employer = uscc("210302", 1);
    let hub = fixture.start().await;
    let registration = event(
        "s-reg",
        "household.registered",
        "2026-01-01T09:00:00+08:00",
        json!({"household_id": "H-SPELL", "division_code": "210302001002", "effective_date": "2026-01-01",
               "members": [{"id_number": head, "name": "孙伟", "relation": "head"}]}),
    );
    // Arrives first: an end with no start known, so zero since 2026-01-01.
    let ended = event(
        "s-end",
        "employment.ended",
        "2026-06-01T09:00:00+08:00",
        json!({"id_number": head, "employer": {"uscc": employer}, "end_date": "2026-06-01",
               "reason": "dismissed"}),
    );
    // Arrives late: the start, so zero only since 2026-06-01 — the same spell.
    let started = event(
        "s-start",
        "employment.started",
        "2025-03-01T09:00:00+08:00",
        json!({"id_number": head, "name": "孙伟", "employer": {"uscc": employer, "name": "鞍山钢铁机械厂"},
               "start_date": "2025-03-01", "contract_months": null, "monthly_wage": 4200,
               "social_insurance": true, "kind": "formal"}),
    );
    fixture.publish(&[registration, ended]).await;
    settle(&hub, 2).await;
    let mut alerts = Alerts {
        by_kind: BTreeMap::new(),
    };
    wait_for(&fixture, &mut alerts, "placement_overdue", 1).await;
    wait_for(&fixture, &mut alerts, "visit_overdue", 1).await;
    fixture.publish(&[started]).await;
    settle(&hub, 3).await;
    let mut states = BTreeMap::new();
    fixture
        .latest_states(&mut states, Duration::from_secs(30), |s| {
            s.get("H-SPELL")
                .is_some_and(|h| h["zero_since"] == "2026-06-01")
        })
        .await;
    assert_eq!(states["H-SPELL"]["status"], "zero_employment");
    // The sweeper looks again; nothing new comes.
    sweep_all(&hub.hub).await.expect("sweep");
    fixture.clock.advance(Days::days(1));
    sweep_all(&hub.hub).await.expect("sweep");
    collect_alerts(&fixture, &mut alerts).await;
    assert_eq!(alerts.count("zero_employment_new"), 1);
    assert_eq!(alerts.count("placement_overdue"), 1, "one per spell");
    assert_eq!(alerts.count("visit_overdue"), 1, "one per gap");
    hub.stop().await;
}

//! Each alert kind's occurrence rule, decided by the planner alone: when it
//! fires, and what makes two decisions the same alert (the store raises each
//! occurrence once, so equal occurrences are one alert).

#[path = "../../domain/tests/common/mod.rs"]
mod common;
mod simulated;

use common::*;
use dynzero_domain::alerts::{AlertKind, job_matches};
use dynzero_domain::facts::{Finding, JobPosting, LayoffStage};
use dynzero_domain::ids::{HouseholdId, IdNumber};
use dynzero_domain::reconcile::HouseholdStatus;
use dynzero_domain::rules::Rules;
use dynzero_planner::layoff::{KnownStage, LayoffAlert, layoff_alert};
use dynzero_planner::{HouseholdAlert, Loaded, Published, occurrence, plan};
use simulated::Hub;

fn rules() -> Rules {
    Rules::default()
}

/// Two working-age members, both employed by `employer(1)` from 2020.
fn two_workers() -> (Household, IdNumber, IdNumber) {
    let mut h = Household::new("H1");
    let a = man("1985-03-01", 1);
    let b = woman("1987-07-01", 2);
    h.register(d("2020-01-01"), vec![member(&a), member(&b)]);
    (h, a, b)
}

#[test]
fn zero_employment_new_occurs_once_per_version_that_becomes_zero() {
    let (mut h, a, b) = two_workers();
    h.start(&a, &employer(1), d("2020-01-01"));
    let mut hub = Hub::new(h.id());
    hub.plan(h.facts(), d("2026-01-10"));
    assert_eq!(
        hub.raised(AlertKind::ZeroEmploymentNew),
        0,
        "employed: no alert"
    );
    h.end(&a, &employer(1), d("2026-01-05"));
    hub.plan(h.facts(), d("2026-01-10"));
    hub.plan(h.facts(), d("2026-01-10"));
    assert_eq!(hub.raised(AlertKind::ZeroEmploymentNew), 1);
    assert_eq!(
        hub.occurrences(AlertKind::ZeroEmploymentNew),
        vec![occurrence::status_change(&h.id(), 2)]
    );
    let _ = b;
}

#[test]
fn zero_employment_resolved_occurs_once_per_version_that_leaves_zero() {
    let (mut h, a, _b) = two_workers();
    let mut hub = Hub::new(h.id());
    hub.plan(h.facts(), d("2026-01-10"));
    assert_eq!(
        hub.published_status(),
        Some(HouseholdStatus::ZeroEmployment)
    );
    h.start(&a, &employer(1), d("2026-01-08"));
    hub.plan(h.facts(), d("2026-01-10"));
    hub.plan(h.facts(), d("2026-01-11"));
    assert_eq!(hub.raised(AlertKind::ZeroEmploymentResolved), 1);
    let resolved = hub.alerts(AlertKind::ZeroEmploymentResolved);
    assert_eq!(
        resolved[0],
        HouseholdAlert::ZeroEmploymentResolved {
            days: (d("2026-01-08") - d("2020-01-01")).num_days()
        }
    );
}

#[test]
fn placement_overdue_occurs_once_per_spell_when_a_late_fact_moves_zero_since() {
    let (mut h, a, _b) = two_workers();
    h.end(&a, &employer(1), d("2026-02-01"));
    let mut hub = Hub::new(h.id());
    // Never seen employed: zero since the registration, long overdue.
    hub.plan(h.facts(), d("2026-06-01"));
    assert_eq!(hub.raised(AlertKind::PlacementOverdue), 1);
    // The start arrives late: zero only from 2026-02-01, still the same spell.
    h.start(&a, &employer(1), d("2025-12-01"));
    hub.plan(h.facts(), d("2026-06-01"));
    assert_eq!(
        hub.published_version(),
        2,
        "zero_since moved: a new version"
    );
    assert_eq!(
        hub.published_status(),
        Some(HouseholdStatus::ZeroEmployment)
    );
    assert_eq!(hub.raised(AlertKind::PlacementOverdue), 1, "one per spell");
    assert_eq!(
        hub.occurrences(AlertKind::PlacementOverdue),
        vec![occurrence::placement_overdue(&h.id(), 1)]
    );
    // Employed, then zero again: a new spell, a new alert when it is overdue.
    h.start(&a, &employer(2), d("2026-06-02"));
    hub.plan(h.facts(), d("2026-06-03"));
    h.end(&a, &employer(2), d("2026-06-04"));
    hub.plan(h.facts(), d("2026-08-01"));
    assert_eq!(hub.raised(AlertKind::PlacementOverdue), 2);
}

#[test]
fn placement_overdue_waits_for_the_configured_limit() {
    let (mut h, a, _b) = two_workers();
    h.start(&a, &employer(1), d("2020-01-01"));
    h.end(&a, &employer(1), d("2026-03-01"));
    let mut hub = Hub::new(h.id());
    let limit = i64::from(rules().placement_limit_days);
    hub.plan(h.facts(), d("2026-03-01") + chrono::Days::new(limit as u64));
    assert_eq!(
        hub.raised(AlertKind::PlacementOverdue),
        0,
        "exactly the limit"
    );
    hub.plan(
        h.facts(),
        d("2026-03-01") + chrono::Days::new(limit as u64 + 1),
    );
    assert_eq!(hub.raised(AlertKind::PlacementOverdue), 1);
}

#[test]
fn visit_overdue_occurs_once_per_gap_and_a_new_visit_starts_a_new_gap() {
    let (mut h, a, b) = two_workers();
    h.start(&a, &employer(1), d("2020-01-01"));
    h.end(&a, &employer(1), d("2026-02-01"));
    let mut hub = Hub::new(h.id());
    hub.plan(h.facts(), d("2026-03-10"));
    assert_eq!(
        hub.raised(AlertKind::VisitOverdue),
        1,
        "no visit for 37 days"
    );
    // A late fact moving zero_since starts no new gap.
    h.end(&b, &employer(3), d("2026-01-20"));
    hub.plan(h.facts(), d("2026-03-10"));
    assert_eq!(hub.raised(AlertKind::VisitOverdue), 1);
    // A visit starts a new gap, overdue 32 days later.
    h.visit(d("2026-03-11"), &[(&a, Finding::Unemployed)]);
    hub.plan(h.facts(), d("2026-04-11"));
    assert_eq!(hub.raised(AlertKind::VisitOverdue), 1, "31 days: not yet");
    hub.plan(h.facts(), d("2026-04-12"));
    assert_eq!(hub.raised(AlertKind::VisitOverdue), 2);
    // A visit dated before the last one arriving late is no new gap.
    h.visit(d("2026-03-05"), &[(&a, Finding::Unemployed)]);
    hub.plan(h.facts(), d("2026-04-20"));
    assert_eq!(hub.raised(AlertKind::VisitOverdue), 2);
}

#[test]
fn data_conflict_occurs_once_per_visit_and_person() {
    let (mut h, a, _b) = two_workers();
    h.start(&a, &employer(1), d("2026-01-01"));
    let visit = h.visit(d("2026-02-01"), &[(&a, Finding::Unemployed)]);
    let mut hub = Hub::new(h.id());
    hub.plan(h.facts(), d("2026-02-02"));
    hub.plan(h.facts(), d("2026-02-03"));
    assert_eq!(hub.raised(AlertKind::DataConflict), 1);
    assert_eq!(
        hub.occurrences(AlertKind::DataConflict),
        vec![occurrence::data_conflict(&visit.key, &a)]
    );
}

#[test]
fn household_at_risk_occurs_once_per_household_and_notice() {
    let (mut h, a, _b) = two_workers();
    h.start(&a, &employer(1), d("2020-01-01"));
    let order = h.next_order(d("2026-05-01"));
    let notice = layoff(
        "N1",
        LayoffStage::Planned,
        &employer(1),
        100,
        &[a.clone()],
        order,
    );
    let loaded = Loaded {
        facts: h.facts().clone(),
        causes: Vec::new(),
        unnamed: Vec::new(),
        notices: vec![notice.clone()],
        published: Published::default(),
    };
    let planned = plan(&loaded, d("2026-03-01"), &rules());
    let current = planned.current.expect("the household exists");
    let at_risk: Vec<&HouseholdAlert> = current
        .alerts
        .iter()
        .filter(|a| a.kind() == AlertKind::HouseholdAtRisk)
        .collect();
    assert_eq!(at_risk.len(), 1);
    assert_eq!(
        at_risk[0].occurrence(&h.id(), current.version),
        occurrence::household_at_risk(&h.id(), &employer(1), &notice.notice_id)
    );
    // On or after the effective date it is no longer a warning.
    let late = plan(&loaded, d("2026-05-01"), &rules()).current.unwrap();
    assert!(
        late.alerts
            .iter()
            .all(|a| a.kind() != AlertKind::HouseholdAtRisk)
    );
}

fn stage(
    notice: &dynzero_domain::facts::LayoffNotice,
    stage: LayoffStage,
    time: &str,
    arrival: i64,
    in_batch: bool,
) -> KnownStage {
    KnownStage {
        uscc: notice.enterprise.uscc.clone(),
        notice_id: notice.notice_id.clone(),
        stage,
        time: t(time),
        arrival,
        in_batch,
    }
}

#[test]
fn layoff_early_warning_occurs_once_per_notice_unless_withdrawn_before_it() {
    let planned = layoff(
        "N7",
        LayoffStage::Planned,
        &employer(5),
        1000,
        &people(20),
        order(d("2026-06-01"), 10),
    );
    assert!(
        matches!(layoff_alert(&planned, &[]), Some(LayoffAlert::EarlyWarning(s)) if s.count == 20)
    );
    let small = layoff(
        "N8",
        LayoffStage::Planned,
        &employer(5),
        1000,
        &people(19),
        order(d("2026-06-01"), 11),
    );
    assert_eq!(
        layoff_alert(&small, &[]),
        None,
        "19 of 1000: under both thresholds"
    );
    let withdrawn_before = stage(
        &planned,
        LayoffStage::Withdrawn,
        "2026-04-01T00:00:00Z",
        9,
        true,
    );
    assert_eq!(layoff_alert(&planned, &[withdrawn_before]), None);
    let withdrawn_after = stage(
        &planned,
        LayoffStage::Withdrawn,
        "2026-04-01T00:00:00Z",
        12,
        true,
    );
    assert!(
        layoff_alert(&planned, &[withdrawn_after]).is_some(),
        "withdrawn later in the batch"
    );
    assert_eq!(
        occurrence::layoff(&planned.enterprise.uscc, &planned.notice_id),
        occurrence::layoff(&employer(5), &planned.notice_id)
    );
}

#[test]
fn layoff_unreported_occurs_once_per_notice_and_counts_only_planned_notices_known_in_time() {
    let effective = layoff(
        "N9",
        LayoffStage::Effective,
        &employer(6),
        100,
        &people(10),
        order(d("2026-06-01"), 20),
    );
    assert!(
        matches!(layoff_alert(&effective, &[]), Some(LayoffAlert::Unreported(s)) if s.count == 10)
    );
    // 2026-05-02 is 30 days before 2026-06-01 (Asia/Shanghai date of `time`).
    let in_time = stage(
        &effective,
        LayoffStage::Planned,
        "2026-05-01T16:00:00Z",
        3,
        false,
    );
    assert_eq!(layoff_alert(&effective, &[in_time]), None);
    let too_late = stage(
        &effective,
        LayoffStage::Planned,
        "2026-05-02T16:00:00Z",
        3,
        false,
    );
    assert!(layoff_alert(&effective, &[too_late]).is_some());
    let later_in_batch = stage(
        &effective,
        LayoffStage::Planned,
        "2026-04-01T00:00:00Z",
        21,
        true,
    );
    assert!(
        layoff_alert(&effective, &[later_in_batch]).is_some(),
        "arrived after it"
    );
}

#[test]
fn job_match_occurs_once_per_posting_and_household() {
    let (h, _a, _b) = two_workers();
    let mut hub = Hub::new(h.id());
    hub.plan(h.facts(), d("2026-01-10"));
    let state = hub.published_state().expect("published");
    let posting = JobPosting {
        posting_id: key("P1"),
        employer: employer(9),
        employer_name: "某物业公司".into(),
        title: "保洁员".into(),
        openings: 1,
        division_code: division(DIVISION),
        monthly_wage: yuan(2500),
        contract_months: Some(12),
        social_insurance: true,
        public_welfare: false,
        age_min: None,
        age_max: None,
        valid_until: d("2026-12-31"),
    };
    let matches = job_matches(&posting, std::slice::from_ref(&state), d("2026-01-10"));
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].members.len(), 2);
    let household: HouseholdId = h.id();
    assert_eq!(
        occurrence::job_match(&posting.posting_id, &household),
        format!("P1 {household}")
    );
    let expired = JobPosting {
        valid_until: d("2026-01-09"),
        ..posting
    };
    assert!(job_matches(&expired, &[state], d("2026-01-10")).is_empty());
}

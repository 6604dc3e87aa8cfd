//! Alert decisions, against the thresholds of docs/contract.md section 6.

mod common;

use common::*;
use dynzero_domain::alerts::{
    AlertKind, JobMatch, LayoffSize, StatusAlert, household_at_risk, job_matches,
    layoff_early_warning, layoff_threshold, layoff_unreported, next_overdue_check,
    placement_overdue, shanghai_date, status_alert, visit_overdue,
};
use dynzero_domain::facts::{
    EmploymentKind, Finding, JobPosting, LayoffNotice, LayoffStage, MemberStatus,
};
use dynzero_domain::ids::{IdNumber, Sex};
use dynzero_domain::reconcile::{Dibao, HouseholdState, HouseholdStatus, MemberState, reconcile};
use dynzero_domain::rules::Rules;

use HouseholdStatus::{Employed, NoLabourForce, ZeroEmployment};

fn rules() -> Rules {
    Rules::default()
}

/// A state with no members, for the decisions that read only status and dates.
fn state(status: HouseholdStatus, zero_since: Option<&str>) -> HouseholdState {
    candidate("H1", DIVISION, status, zero_since, false, vec![])
}

fn candidate(
    household_id: &str,
    division_code: &str,
    status: HouseholdStatus,
    zero_since: Option<&str>,
    on_dibao: bool,
    members: Vec<MemberState>,
) -> HouseholdState {
    HouseholdState {
        household_id: key(household_id),
        division_code: division(division_code),
        status,
        zero_since: zero_since.map(d),
        dual_employment: false,
        dibao: on_dibao.then(|| Dibao {
            case_id: key("DB-1"),
            monthly_amount: yuan(800),
        }),
        members,
    }
}

fn member_state(id_number: &IdNumber, in_labour_force: bool) -> MemberState {
    MemberState {
        id_number: id_number.clone(),
        name: name_of(id_number),
        birth_date: id_number.birth_date(),
        sex: id_number.sex(),
        in_labour_force,
        employed: false,
        employment_kind: None,
        employer_uscc: None,
        stable: false,
    }
}

fn posting(
    division_code: &str,
    openings: u32,
    ages: (Option<u32>, Option<u32>),
    valid_until: &str,
) -> JobPosting {
    JobPosting {
        posting_id: key("JP-1"),
        employer: employer(7),
        employer_name: "鞍山某物业公司".to_owned(),
        title: "保洁员".to_owned(),
        openings,
        division_code: division(division_code),
        monthly_wage: yuan(2300),
        contract_months: Some(12),
        social_insurance: true,
        public_welfare: false,
        age_min: ages.0,
        age_max: ages.1,
        valid_until: d(valid_until),
    }
}

fn ids_of(matches: &[JobMatch]) -> Vec<String> {
    matches
        .iter()
        .map(|m| m.household_id.as_str().to_owned())
        .collect()
}

#[test]
fn alert_kinds_have_their_contract_names() {
    for kind in AlertKind::ALL {
        assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(AlertKind::LayoffUnreported.as_str(), "layoff_unreported");
    assert_eq!(AlertKind::parse("zero_employment"), None);
}

// ---- status alerts ----

#[test]
fn first_version_that_is_zero_is_new() {
    let next = state(ZeroEmployment, Some("2026-03-01"));
    assert_eq!(
        status_alert(None, &next, d("2026-03-01")),
        Some(StatusAlert::ZeroEmploymentNew)
    );
}

#[test]
fn first_version_that_is_not_zero_raises_nothing() {
    assert_eq!(
        status_alert(None, &state(Employed, None), d("2026-03-01")),
        None
    );
    assert_eq!(
        status_alert(None, &state(NoLabourForce, None), d("2026-03-01")),
        None
    );
}

#[test]
fn zero_to_employed_is_resolved_with_the_days_it_lasted() {
    let previous = state(ZeroEmployment, Some("2026-01-01"));
    let next = state(Employed, None);
    assert_eq!(
        status_alert(Some(&previous), &next, d("2026-03-01")),
        Some(StatusAlert::ZeroEmploymentResolved { days: 59 })
    );
    let next = state(NoLabourForce, None);
    assert_eq!(
        status_alert(Some(&previous), &next, d("2026-01-11")),
        Some(StatusAlert::ZeroEmploymentResolved { days: 10 })
    );
}

#[test]
fn unchanged_status_raises_nothing() {
    let employed = state(Employed, None);
    assert_eq!(
        status_alert(Some(&employed), &employed, d("2026-03-01")),
        None
    );
    let zero = state(ZeroEmployment, Some("2026-01-01"));
    assert_eq!(status_alert(Some(&zero), &zero, d("2026-01-01")), None);
}

#[test]
fn employed_to_zero_is_new() {
    let previous = state(Employed, None);
    let next = state(ZeroEmployment, Some("2026-02-01"));
    assert_eq!(
        status_alert(Some(&previous), &next, d("2026-02-01")),
        Some(StatusAlert::ZeroEmploymentNew)
    );
}

#[test]
fn resolved_days_from_reconciled_states() {
    let adult = man("1990-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2026-01-01"), vec![member(&adult)]);
    let first = reconcile(h.facts(), d("2026-01-05"), &rules()).unwrap();
    assert_eq!(
        status_alert(None, &first.state, first.status_since),
        Some(StatusAlert::ZeroEmploymentNew)
    );
    h.start(&adult, &employer(1), d("2026-02-15"));
    let next = reconcile(h.facts(), d("2026-02-20"), &rules()).unwrap();
    assert_eq!(
        status_alert(Some(&first.state), &next.state, next.status_since),
        Some(StatusAlert::ZeroEmploymentResolved { days: 45 })
    );
}

// ---- layoff thresholds ----

fn planned(count: u16, headcount: u32) -> LayoffNotice {
    layoff(
        "CY-2026-07",
        LayoffStage::Planned,
        &employer(1),
        headcount,
        &people(count),
        order(d("2026-07-01"), 1),
    )
}

#[test]
fn nineteen_of_two_hundred_is_no_early_warning() {
    assert_eq!(layoff_early_warning(&planned(19, 200)), None);
}

#[test]
fn twenty_of_two_hundred_is_an_early_warning() {
    assert_eq!(
        layoff_early_warning(&planned(20, 200)),
        Some(LayoffSize {
            count: 20,
            ratio: 0.1
        })
    );
}

#[test]
fn twenty_people_are_a_warning_whatever_the_headcount() {
    let size = layoff_early_warning(&planned(20, 1000)).expect("20 people meet the threshold");
    assert_eq!(size.count, 20);
    assert!((size.ratio - 0.02).abs() < 1e-12, "{}", size.ratio);
    assert_eq!(layoff_early_warning(&planned(19, 1000)), None);
}

#[test]
fn three_of_thirty_is_ten_percent_and_a_warning() {
    let size = layoff_early_warning(&planned(3, 30)).expect("10 % meets the threshold");
    assert_eq!(size.count, 3);
    assert!((size.ratio - 0.1).abs() < 1e-12, "{}", size.ratio);
}

#[test]
fn two_of_thirty_is_no_warning() {
    assert_eq!(layoff_early_warning(&planned(2, 30)), None);
}

#[test]
fn a_person_listed_twice_counts_once() {
    let mut notice = planned(19, 200);
    notice.employees.push(notice.employees[0].clone());
    assert_eq!(notice.count(), 19);
    assert_eq!(layoff_early_warning(&notice), None);
}

#[test]
fn only_planned_notices_are_early_warnings() {
    let mut notice = planned(20, 200);
    notice.stage = LayoffStage::Effective;
    assert!(layoff_threshold(&notice).is_some());
    assert_eq!(layoff_early_warning(&notice), None);
    notice.stage = LayoffStage::Withdrawn;
    assert_eq!(layoff_early_warning(&notice), None);
}

#[test]
fn ratio_is_count_over_headcount() {
    let size = layoff_threshold(&planned(25, 50)).unwrap();
    assert_eq!(size.count, 25);
    assert!((size.ratio - 0.5).abs() < 1e-12);
}

// ---- layoff_unreported ----

fn effective_on(date: &str, count: u16, headcount: u32) -> LayoffNotice {
    layoff(
        "CY-2026-07",
        LayoffStage::Effective,
        &employer(1),
        headcount,
        &people(count),
        order(d(date), 2),
    )
}

#[test]
fn shanghai_date_of_a_utc_evening_is_the_next_day() {
    assert_eq!(shanghai_date(t("2026-05-01T17:00:00Z")), d("2026-05-02"));
    assert_eq!(shanghai_date(t("2026-05-01T15:59:59Z")), d("2026-05-01"));
    assert_eq!(shanghai_date(t("2026-05-01T16:00:00Z")), d("2026-05-02"));
}

#[test]
fn planned_exactly_30_days_before_in_shanghai_is_reported() {
    // 2026-05-01T17:00Z is 2026-05-02 in Shanghai, 30 days before 2026-06-01.
    let notice = effective_on("2026-06-01", 20, 200);
    assert_eq!(
        layoff_unreported(&notice, [t("2026-05-01T17:00:00Z")]),
        None
    );
}

#[test]
fn planned_29_days_before_in_shanghai_is_unreported() {
    // The same instant is 30 days before 2026-05-31 in UTC, 29 in Shanghai.
    let notice = effective_on("2026-05-31", 20, 200);
    assert_eq!(
        layoff_unreported(&notice, [t("2026-05-01T17:00:00Z")]),
        Some(LayoffSize {
            count: 20,
            ratio: 0.1
        })
    );
    // The last instant of 2026-05-01 in Shanghai is still in time.
    assert_eq!(
        layoff_unreported(&notice, [t("2026-05-01T15:59:59Z")]),
        None
    );
}

#[test]
fn effective_without_any_planned_notice_is_unreported() {
    let notice = effective_on("2026-06-01", 3, 30);
    let size = layoff_unreported(&notice, []).expect("unreported");
    assert_eq!(size.count, 3);
}

#[test]
fn one_planned_in_time_among_late_ones_is_enough() {
    let notice = effective_on("2026-06-01", 20, 200);
    let times = [t("2026-05-20T01:00:00Z"), t("2026-04-01T01:00:00Z")];
    assert_eq!(layoff_unreported(&notice, times), None);
}

#[test]
fn effective_below_the_threshold_is_never_unreported() {
    let notice = effective_on("2026-06-01", 19, 200);
    assert_eq!(layoff_unreported(&notice, []), None);
    let notice = effective_on("2026-06-01", 2, 30);
    assert_eq!(layoff_unreported(&notice, []), None);
}

#[test]
fn a_planned_notice_is_not_unreported() {
    assert_eq!(layoff_unreported(&planned(20, 200), []), None);
}

// ---- household_at_risk ----

/// P works at the factory (employer 1), Q is in the labour force without work,
/// R (a student) lives there too. Registered 2025-01-01.
struct AtRisk {
    h: Household,
    p: IdNumber,
    q: IdNumber,
    r: IdNumber,
}

fn at_risk_household() -> AtRisk {
    let p = man("1980-01-01", 1);
    let q = woman("1982-01-01", 2);
    let r = woman("2006-01-01", 3);
    let mut h = Household::new("H1");
    h.register(
        d("2025-01-01"),
        vec![
            member(&p),
            member(&q),
            member_with(&r, MemberStatus::Student),
        ],
    );
    h.start(&p, &employer(1), d("2025-02-01"));
    AtRisk { h, p, q, r }
}

fn planned_of(
    notice_id: &str,
    enterprise: u32,
    employees: &[IdNumber],
    date: &str,
) -> LayoffNotice {
    layoff(
        notice_id,
        LayoffStage::Planned,
        &employer(enterprise),
        500,
        employees,
        order(d(date), 1000),
    )
}

#[test]
fn planned_notice_ending_the_only_job_puts_the_household_at_risk() {
    let AtRisk { h, p, .. } = at_risk_household();
    let stranger = man("1970-01-01", 9);
    let notice = planned_of("CY-1", 1, &[stranger, p.clone(), p.clone()], "2026-07-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        Some(vec![(p.clone(), name_of(&p))])
    );
}

#[test]
fn listed_members_are_those_living_there_on_the_effective_date() {
    let AtRisk { mut h, p, r, .. } = at_risk_household();
    // R, a student, also works at the factory, and moves out before the date.
    h.start(&r, &employer(1), d("2025-03-01"));
    h.register_other("H2", d("2026-06-01"), vec![member(&r)]);
    let notice = planned_of("CY-1", 1, &[r.clone(), p.clone()], "2026-07-01");
    let listed = household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()).expect("at risk");
    assert_eq!(listed, vec![(p.clone(), name_of(&p))]);
}

#[test]
fn no_risk_when_another_member_stays_employed_elsewhere() {
    let AtRisk { mut h, p, q, .. } = at_risk_household();
    h.start(&q, &employer(2), d("2025-06-01"));
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
}

#[test]
fn no_risk_when_the_listed_person_also_works_elsewhere() {
    let AtRisk { mut h, p, .. } = at_risk_household();
    h.start(&p, &employer(2), d("2025-06-01"));
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
}

#[test]
fn no_risk_when_already_zero_without_the_notice() {
    let AtRisk { mut h, p, .. } = at_risk_household();
    h.end(&p, &employer(1), d("2026-06-15"));
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
}

#[test]
fn no_risk_when_nobody_would_be_in_the_labour_force() {
    // A man who retires (2025-07-10) before the notice's date keeps a job.
    let elder = man("1965-05-10", 1);
    let mut h = Household::new("H1");
    h.register(d("2024-01-01"), vec![member(&elder)]);
    h.start(&elder, &employer(1), d("2024-02-01"));
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&elder), "2025-08-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2025-06-01"), &rules()),
        None
    );
}

#[test]
fn no_risk_once_the_effective_date_is_today_or_past() {
    let AtRisk { h, p, .. } = at_risk_household();
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    assert!(household_at_risk(h.facts(), &notice, d("2026-06-30"), &rules()).is_some());
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-07-01"), &rules()),
        None
    );
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-07-02"), &rules()),
        None
    );
}

#[test]
fn only_planned_notices_put_households_at_risk() {
    let AtRisk { h, p, .. } = at_risk_household();
    let mut notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    notice.stage = LayoffStage::Effective;
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
    notice.stage = LayoffStage::Withdrawn;
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
}

#[test]
fn a_notice_of_another_enterprise_is_no_risk() {
    let AtRisk { h, p, .. } = at_risk_household();
    let notice = planned_of("CY-1", 2, std::slice::from_ref(&p), "2026-07-01");
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()),
        None
    );
}

#[test]
fn two_planned_notices_are_evaluated_independently() {
    // P works at factory 1, Q at factory 2. Each notice alone leaves the other
    // employed; neither counts the other as having happened.
    let AtRisk { mut h, p, q, .. } = at_risk_household();
    h.start(&q, &employer(2), d("2025-06-01"));
    let first = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    let second = planned_of("CY-2", 2, std::slice::from_ref(&q), "2026-08-01");
    assert_eq!(
        household_at_risk(h.facts(), &first, d("2026-05-01"), &rules()),
        None
    );
    assert_eq!(
        household_at_risk(h.facts(), &second, d("2026-05-01"), &rules()),
        None
    );

    // Two notices of the same enterprise for the only employed member: each
    // raises on its own, so withdrawing one (the caller skips it) leaves the other.
    let AtRisk { h, p, .. } = at_risk_household();
    let withdrawn_later = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    let kept = planned_of("CY-3", 1, std::slice::from_ref(&p), "2026-09-01");
    assert!(household_at_risk(h.facts(), &withdrawn_later, d("2026-05-01"), &rules()).is_some());
    assert_eq!(
        household_at_risk(h.facts(), &kept, d("2026-05-01"), &rules()),
        Some(vec![(p.clone(), name_of(&p))])
    );
}

#[test]
fn at_risk_is_reevaluated_against_changed_facts() {
    let AtRisk { mut h, p, q, .. } = at_risk_household();
    let notice = planned_of("CY-1", 1, std::slice::from_ref(&p), "2026-07-01");
    assert!(household_at_risk(h.facts(), &notice, d("2026-05-01"), &rules()).is_some());
    // Q finds flexible work before the date: no longer at risk.
    h.visit(d("2026-06-01"), &[(&q, Finding::Flexible)]);
    assert_eq!(
        household_at_risk(h.facts(), &notice, d("2026-06-02"), &rules()),
        None
    );
}

// ---- job_match ----

const TODAY: &str = "2026-05-01";

fn zero_household(
    household_id: &str,
    division_code: &str,
    zero_since: &str,
    on_dibao: bool,
) -> HouseholdState {
    let adult = person(d("1990-01-01"), Sex::Male, household_id.len() as u16);
    candidate(
        household_id,
        division_code,
        ZeroEmployment,
        Some(zero_since),
        on_dibao,
        vec![member_state(&adult, true)],
    )
}

#[test]
fn job_match_is_limited_to_the_postings_county() {
    let candidates = [
        zero_household("SAME-COMMUNITY", "210302001002", "2026-01-01", false),
        zero_household("SAME-COUNTY", "210302004007", "2026-01-01", false),
        zero_household("OTHER-COUNTY", "210303001002", "2026-01-01", false),
        zero_household("OTHER-CITY", "210402001002", "2026-01-01", false),
    ];
    let matches = job_matches(
        &posting("210302001002", 5, (None, None), TODAY),
        &candidates,
        d(TODAY),
    );
    assert_eq!(ids_of(&matches), vec!["SAME-COMMUNITY", "SAME-COUNTY"]);
}

#[test]
fn job_match_only_offers_zero_employment_households() {
    let mut employed = zero_household("EMPLOYED", DIVISION, "2026-01-01", false);
    employed.status = Employed;
    employed.zero_since = None;
    let mut no_lf = zero_household("NO-LF", DIVISION, "2026-01-01", false);
    no_lf.status = NoLabourForce;
    no_lf.zero_since = None;
    let zero = zero_household("ZERO", DIVISION, "2026-01-01", false);
    let matches = job_matches(
        &posting(DIVISION, 5, (None, None), TODAY),
        &[employed, no_lf, zero],
        d(TODAY),
    );
    assert_eq!(ids_of(&matches), vec!["ZERO"]);
}

#[test]
fn job_match_age_bounds_are_inclusive_in_completed_years() {
    let aged_30 = man("1996-05-01", 1); // 30 today
    let aged_29 = man("1996-05-02", 2); // 30 tomorrow
    let aged_40 = man("1985-05-02", 3); // 41 tomorrow
    let aged_41 = man("1985-05-01", 4); // 41 today
    let h = candidate(
        "H1",
        DIVISION,
        ZeroEmployment,
        Some("2026-01-01"),
        false,
        vec![
            member_state(&aged_30, true),
            member_state(&aged_29, true),
            member_state(&aged_40, true),
            member_state(&aged_41, true),
        ],
    );
    let matches = job_matches(
        &posting(DIVISION, 1, (Some(30), Some(40)), TODAY),
        std::slice::from_ref(&h),
        d(TODAY),
    );
    assert_eq!(matches.len(), 1);
    assert_eq!(
        matches[0].members,
        vec![
            (aged_30.clone(), name_of(&aged_30), 30),
            (aged_40.clone(), name_of(&aged_40), 40),
        ]
    );

    let only_min = job_matches(
        &posting(DIVISION, 1, (Some(40), None), TODAY),
        std::slice::from_ref(&h),
        d(TODAY),
    );
    assert_eq!(only_min[0].members.len(), 2);
    let only_max = job_matches(
        &posting(DIVISION, 1, (None, Some(29)), TODAY),
        std::slice::from_ref(&h),
        d(TODAY),
    );
    assert_eq!(
        only_max[0].members,
        vec![(aged_29.clone(), name_of(&aged_29), 29)]
    );
    let none = job_matches(
        &posting(DIVISION, 1, (Some(50), Some(55)), TODAY),
        &[h],
        d(TODAY),
    );
    assert!(
        none.is_empty(),
        "a household without a member of the right age is not offered"
    );
}

#[test]
fn job_match_lists_only_labour_force_members() {
    let adult = man("1990-01-01", 1);
    let student = woman("2004-01-01", 2);
    let h = candidate(
        "H1",
        DIVISION,
        ZeroEmployment,
        Some("2026-01-01"),
        false,
        vec![member_state(&adult, true), member_state(&student, false)],
    );
    let matches = job_matches(&posting(DIVISION, 1, (None, None), TODAY), &[h], d(TODAY));
    assert_eq!(
        matches[0].members,
        vec![(adult.clone(), name_of(&adult), 36)]
    );

    let only_student = candidate(
        "H2",
        DIVISION,
        ZeroEmployment,
        Some("2026-01-01"),
        false,
        vec![member_state(&student, false)],
    );
    assert!(
        job_matches(
            &posting(DIVISION, 1, (None, None), TODAY),
            &[only_student],
            d(TODAY)
        )
        .is_empty()
    );
}

#[test]
fn job_match_offers_at_most_three_households_per_opening() {
    let candidates: Vec<HouseholdState> = (0..10)
        .map(|i| zero_household(&format!("H{i:02}"), DIVISION, "2026-01-01", false))
        .collect();
    let matches = job_matches(
        &posting(DIVISION, 2, (None, None), TODAY),
        &candidates,
        d(TODAY),
    );
    assert_eq!(
        ids_of(&matches),
        vec!["H00", "H01", "H02", "H03", "H04", "H05"]
    );
    let matches = job_matches(
        &posting(DIVISION, 4, (None, None), TODAY),
        &candidates,
        d(TODAY),
    );
    assert_eq!(matches.len(), 10);
}

#[test]
fn job_match_order_is_longest_zero_since_then_dibao_then_household_id_bytes() {
    let candidates = [
        zero_household("b-late", DIVISION, "2026-03-01", true),
        zero_household("Z-mid", DIVISION, "2026-02-01", false),
        zero_household("a-mid", DIVISION, "2026-02-01", false),
        zero_household("H2-mid", DIVISION, "2026-02-01", false),
        zero_household("H10-mid", DIVISION, "2026-02-01", false),
        zero_household("y-mid-dibao", DIVISION, "2026-02-01", true),
        zero_household("x-early", DIVISION, "2025-06-01", false),
    ];
    let matches = job_matches(
        &posting(DIVISION, 3, (None, None), TODAY),
        &candidates,
        d(TODAY),
    );
    assert_eq!(
        ids_of(&matches),
        vec![
            "x-early",
            "y-mid-dibao",
            "H10-mid",
            "H2-mid",
            "Z-mid",
            "a-mid",
            "b-late"
        ]
    );
}

#[test]
fn expired_posting_matches_nobody() {
    let candidates = [zero_household("H1", DIVISION, "2026-01-01", false)];
    assert!(
        job_matches(
            &posting(DIVISION, 1, (None, None), "2026-04-30"),
            &candidates,
            d(TODAY)
        )
        .is_empty()
    );
    assert_eq!(
        job_matches(
            &posting(DIVISION, 1, (None, None), TODAY),
            &candidates,
            d(TODAY)
        )
        .len(),
        1,
        "valid_until today is still valid"
    );
}

#[test]
fn job_match_from_reconciled_states() {
    let adult = man("1986-03-01", 1);
    let retired = woman("1955-03-01", 2);
    let mut h = Household::new("H1");
    h.register(
        d("2025-01-01"),
        vec![member(&adult), member_with(&retired, MemberStatus::Retired)],
    );
    let state = reconcile(h.facts(), d(TODAY), &rules()).unwrap().state;
    let matches = job_matches(
        &posting("210302009009", 1, (Some(18), Some(45)), TODAY),
        &[state],
        d(TODAY),
    );
    assert_eq!(matches.len(), 1);
    assert_eq!(
        matches[0].members,
        vec![(adult.clone(), name_of(&adult), 40)]
    );
}

// ---- placement_overdue and visit_overdue ----

#[test]
fn placement_overdue_only_past_the_limit() {
    let zero = state(ZeroEmployment, Some("2026-03-01"));
    assert_eq!(placement_overdue(&zero, d("2026-03-31"), 30), None);
    assert_eq!(placement_overdue(&zero, d("2026-04-01"), 30), Some(31));
    assert_eq!(placement_overdue(&zero, d("2026-03-11"), 10), None);
    assert_eq!(placement_overdue(&zero, d("2026-03-12"), 10), Some(11));
    assert_eq!(
        placement_overdue(&state(Employed, None), d("2027-01-01"), 30),
        None
    );
}

#[test]
fn visit_overdue_after_more_than_31_days() {
    let zero = state(ZeroEmployment, Some("2026-01-01"));
    let last = Some(d("2026-03-01"));
    assert_eq!(visit_overdue(&zero, last, d("2026-04-01")), None);
    assert_eq!(
        visit_overdue(&zero, last, d("2026-04-02")),
        Some(d("2026-03-01"))
    );
}

#[test]
fn a_new_visit_starts_a_new_gap() {
    let zero = state(ZeroEmployment, Some("2026-01-01"));
    assert_eq!(
        visit_overdue(&zero, Some(d("2026-03-01")), d("2026-04-02")),
        Some(d("2026-03-01"))
    );
    assert_eq!(
        visit_overdue(&zero, Some(d("2026-04-02")), d("2026-04-02")),
        None
    );
    assert_eq!(
        visit_overdue(&zero, Some(d("2026-04-02")), d("2026-05-04")),
        Some(d("2026-04-02"))
    );
}

#[test]
fn visit_gap_counts_from_zero_since_when_later_or_never_visited() {
    let zero = state(ZeroEmployment, Some("2026-03-01"));
    assert_eq!(visit_overdue(&zero, None, d("2026-04-01")), None);
    assert_eq!(
        visit_overdue(&zero, None, d("2026-04-02")),
        Some(d("2026-03-01"))
    );
    assert_eq!(
        visit_overdue(&zero, Some(d("2025-12-01")), d("2026-04-01")),
        None
    );
    assert_eq!(
        visit_overdue(&zero, Some(d("2025-12-01")), d("2026-04-02")),
        Some(d("2026-03-01"))
    );
    assert_eq!(
        visit_overdue(&state(Employed, None), None, d("2027-01-01")),
        None
    );
}

#[test]
fn next_overdue_check_is_the_first_day_an_overdue_alert_can_be_raised() {
    let zero = state(ZeroEmployment, Some("2026-03-01"));
    let check = next_overdue_check(&zero, None, d("2026-03-01"), 30).unwrap();
    assert_eq!(check, d("2026-04-01"));
    assert!(placement_overdue(&zero, check, 30).is_some());
    assert!(placement_overdue(&zero, check.pred_opt().unwrap(), 30).is_none());

    // A long limit: the visit gap comes first.
    let check = next_overdue_check(&zero, Some(d("2026-03-10")), d("2026-03-10"), 90).unwrap();
    assert_eq!(check, d("2026-04-11"));
    assert!(visit_overdue(&zero, Some(d("2026-03-10")), check).is_some());
    assert!(visit_overdue(&zero, Some(d("2026-03-10")), check.pred_opt().unwrap()).is_none());

    assert_eq!(
        next_overdue_check(&state(Employed, None), None, d("2026-03-01"), 30),
        None
    );
}

#[test]
fn next_overdue_check_never_names_a_day_that_has_passed() {
    let zero = state(ZeroEmployment, Some("2026-03-01"));
    // Placement overdue from 2026-04-01 (already raised); the visit gap from 2026-04-02.
    assert_eq!(
        next_overdue_check(&zero, None, d("2026-04-01"), 30),
        Some(d("2026-04-02"))
    );
    // Both passed: nothing to look at until a new fact comes.
    assert_eq!(next_overdue_check(&zero, None, d("2026-05-01"), 30), None);
}

#[test]
fn overdue_alerts_from_a_reconciled_state() {
    let adult = man("1990-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2026-01-01"), vec![member(&adult)]);
    h.start_with(
        &adult,
        &employer(1),
        d("2026-01-10"),
        terms(EmploymentKind::Flexible, Some(1), yuan(1500), false),
    );
    h.end(&adult, &employer(1), d("2026-02-01"));
    h.visit(d("2026-02-20"), &[]);
    let r = reconcile(h.facts(), d("2026-03-05"), &rules()).unwrap();
    assert_eq!(r.state.zero_since, Some(d("2026-02-01")));
    assert_eq!(r.last_visit, Some(d("2026-02-20")));
    assert_eq!(placement_overdue(&r.state, d("2026-03-05"), 30), Some(32));
    assert_eq!(visit_overdue(&r.state, r.last_visit, d("2026-03-05")), None);
    assert_eq!(
        next_overdue_check(&r.state, r.last_visit, d("2026-03-05"), 30),
        Some(d("2026-03-24"))
    );
}

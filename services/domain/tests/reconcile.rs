//! Reconciliation, rule by rule of docs/contract.md sections 4–5: each
//! test builds a household from facts and reads its state on chosen days.

mod common;

use common::*;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, EmploymentKind, Finding, LayoffStage, MemberStatus,
    SubsidyChangeKind, Terms,
};
use dynzero_domain::ids::IdNumber;
use dynzero_domain::reconcile::{
    Dibao, HouseholdStatus, MemberState, Reconciled, members_on, reconcile, status_on,
};
use dynzero_domain::retirement::{FemaleCategory, RetirementCategory, retirement_date};
use dynzero_domain::rules::{MinimumWage, Rules};

use HouseholdStatus::{Employed, NoLabourForce, ZeroEmployment};

fn rules() -> Rules {
    Rules::default()
}

fn on(h: &Household, day: &str) -> Reconciled {
    reconcile(h.facts(), d(day), &rules())
        .unwrap_or_else(|| panic!("household {} does not exist on {day}", h.id()))
}

fn status(h: &Household, day: &str) -> HouseholdStatus {
    on(h, day).state.status
}

fn member_of<'a>(r: &'a Reconciled, id: &IdNumber) -> &'a MemberState {
    r.state
        .members
        .iter()
        .find(|m| &m.id_number == id)
        .unwrap_or_else(|| panic!("{id} is not a member"))
}

/// A household of one adult (born 1990) registered on 2025-01-01.
fn one_adult() -> (Household, IdNumber) {
    let adult = man("1990-06-15", 1);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&adult)]);
    (h, adult)
}

// ---- working age and the labour force ----

#[test]
fn member_turning_16_joins_the_labour_force_on_the_birthday() {
    let child = woman("2010-03-15", 1);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&child)]);

    let before = on(&h, "2026-03-14");
    assert_eq!(before.state.status, NoLabourForce);
    assert!(!before.state.members[0].in_labour_force);
    assert_eq!(before.state.zero_since, None);

    let birthday = on(&h, "2026-03-15");
    assert_eq!(birthday.state.status, ZeroEmployment);
    assert!(birthday.state.members[0].in_labour_force);
    assert_eq!(birthday.state.zero_since, Some(d("2026-03-15")));
}

#[test]
fn member_reaching_retirement_date_leaves_the_labour_force() {
    // Born 1965-05: 60 years 2 months under the 2024 decision.
    let elder = man("1965-05-10", 1);
    assert_eq!(
        retirement_date(d("1965-05-10"), RetirementCategory::M60),
        d("2025-07-10")
    );
    let mut h = Household::new("H1");
    h.register(d("2024-01-01"), vec![member(&elder)]);

    let before = on(&h, "2025-07-09");
    assert_eq!(before.state.status, ZeroEmployment);
    assert!(before.state.members[0].in_labour_force);
    assert_eq!(before.next_change, Some(d("2025-07-10")));

    let retired = on(&h, "2025-07-10");
    assert_eq!(retired.state.status, NoLabourForce);
    assert!(!retired.state.members[0].in_labour_force);
}

#[test]
fn female_category_f50_moves_a_womans_retirement_date() {
    // Born 1975-03: F55 retires in 2033, F50 at 50y2m in 2025-05.
    let woman_1975 = woman("1975-03-10", 1);
    let mut h = Household::new("H1");
    h.register(d("2024-01-01"), vec![member(&woman_1975)]);
    let f50 = Rules {
        female_category: FemaleCategory::F50,
        ..Rules::default()
    };
    let status_f50 = |day: &str| reconcile(h.facts(), d(day), &f50).unwrap().state.status;
    assert_eq!(status_f50("2025-05-09"), ZeroEmployment);
    assert_eq!(status_f50("2025-05-10"), NoLabourForce);
    assert_eq!(status(&h, "2025-05-10"), ZeroEmployment);
}

#[test]
fn students_retired_and_military_are_outside_the_labour_force_disabled_are_in_it() {
    for (member_status, expected) in [
        (MemberStatus::None, ZeroEmployment),
        (MemberStatus::Disabled, ZeroEmployment),
        (MemberStatus::Student, NoLabourForce),
        (MemberStatus::Retired, NoLabourForce),
        (MemberStatus::Military, NoLabourForce),
    ] {
        let adult = man("1995-02-01", 1);
        let mut h = Household::new("H1");
        h.register(d("2025-01-01"), vec![member_with(&adult, member_status)]);
        let r = on(&h, "2026-01-01");
        assert_eq!(r.state.status, expected, "{member_status:?}");
        assert_eq!(
            r.state.members[0].in_labour_force,
            expected == ZeroEmployment,
            "{member_status:?}"
        );
    }
}

#[test]
fn not_able_to_work_or_not_seeking_work_is_outside_the_labour_force() {
    let adult = man("1995-02-01", 1);
    for (able, seeking) in [(false, true), (true, false), (false, false)] {
        let mut h = Household::new("H1");
        let mut m = member(&adult);
        m.able_to_work = able;
        m.seeking_work = seeking;
        h.register(d("2025-01-01"), vec![m]);
        let r = on(&h, "2026-01-01");
        assert_eq!(
            r.state.status, NoLabourForce,
            "able {able} seeking {seeking}"
        );
        assert!(!r.state.members[0].in_labour_force);
    }
}

// ---- household status ----

#[test]
fn status_is_zero_employment_when_a_labour_force_member_and_nobody_employed() {
    let (h, _) = one_adult();
    let r = on(&h, "2026-01-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2025-01-01")));
    assert!(!r.state.dual_employment);
}

#[test]
fn status_is_employed_when_a_member_is_employed() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2025-03-01"));
    let r = on(&h, "2026-01-01");
    assert_eq!(r.state.status, Employed);
    assert_eq!(r.state.zero_since, None);
    assert_eq!(r.status_since, d("2025-03-01"));
    let m = &r.state.members[0];
    assert!(m.employed && m.in_labour_force && m.stable);
    assert_eq!(m.employment_kind, Some(EmploymentKind::Formal));
    assert_eq!(m.employer_uscc, Some(employer(1)));
}

#[test]
fn status_is_no_labour_force_when_nobody_is_in_it() {
    let elder = woman("1950-01-01", 1);
    let child = man("2015-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&elder), member(&child)]);
    let r = on(&h, "2026-01-01");
    assert_eq!(r.state.status, NoLabourForce);
    assert_eq!(r.state.zero_since, None);
}

#[test]
fn employed_when_any_member_is_employed_even_outside_the_labour_force() {
    let student = woman("2004-09-01", 1);
    let adult = man("1975-09-01", 2);
    let mut h = Household::new("H1");
    h.register(
        d("2025-01-01"),
        vec![member(&adult), member_with(&student, MemberStatus::Student)],
    );
    h.start_with(
        &student,
        &employer(1),
        d("2025-07-01"),
        terms(EmploymentKind::Flexible, Some(2), yuan(800), false),
    );
    let r = on(&h, "2025-08-01");
    assert_eq!(r.state.status, Employed);
    let s = member_of(&r, &student);
    assert!(s.employed && !s.in_labour_force);
    assert!(!member_of(&r, &adult).employed);

    // A retired grandfather's job counts too.
    let grandfather = man("1950-01-01", 3);
    let mut h2 = Household::new("H2");
    h2.register(d("2025-01-01"), vec![member(&adult), member(&grandfather)]);
    h2.visit(d("2025-05-01"), &[(&grandfather, Finding::Employed)]);
    assert_eq!(status(&h2, "2025-04-30"), ZeroEmployment);
    assert_eq!(status(&h2, "2025-05-01"), Employed);
}

#[test]
fn members_empty_is_no_labour_force() {
    let (mut h, _) = one_adult();
    h.register(d("2026-01-01"), vec![]);
    let r = on(&h, "2026-01-01");
    assert_eq!(r.state.status, NoLabourForce);
    assert!(r.state.members.is_empty());
    assert_eq!(r.state.zero_since, None);
    assert_eq!(status(&h, "2025-12-31"), ZeroEmployment);
}

#[test]
fn dual_employment_needs_two_employed_members() {
    let a = man("1980-01-01", 1);
    let b = woman("1982-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&a), member(&b)]);
    h.start(&a, &employer(1), d("2025-02-01"));
    h.visit(d("2025-04-01"), &[(&b, Finding::Flexible)]);
    assert!(!on(&h, "2025-03-31").state.dual_employment);
    let r = on(&h, "2025-04-01");
    assert!(r.state.dual_employment);
    assert_eq!(r.state.status, Employed);
}

// ---- employments: HR facts and layoffs ----

#[test]
fn employment_ends_on_its_end_date() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2025-03-01"));
    h.end(&adult, &employer(1), d("2026-02-10"));
    assert_eq!(status(&h, "2026-02-09"), Employed);
    let r = on(&h, "2026-05-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2026-02-10")));
    let m = &r.state.members[0];
    assert!(!m.employed && !m.stable);
    assert_eq!(m.employment_kind, None);
    assert_eq!(m.employer_uscc, None);
}

#[test]
fn effective_layoff_of_an_employer_never_seen_still_ends_that_employment() {
    let (mut h, adult) = one_adult();
    let factory = employer(1);
    // The layoff arrives first; the hub has never heard of the employment ...
    h.layoff_effective(
        "CY-2026-01",
        &factory,
        std::slice::from_ref(&adult),
        d("2026-03-01"),
    );
    assert_eq!(status(&h, "2026-03-01"), ZeroEmployment);
    // ... whose registration arrives later: it was already closed on 2026-03-01.
    h.start(&adult, &factory, d("2025-06-01"));
    // A job with someone else started after the layoff is another employment.
    let next_job = employer(2);
    h.start(&adult, &next_job, d("2026-04-01"));

    let r = on(&h, "2026-02-28");
    assert_eq!(r.state.status, Employed);
    assert_eq!(r.state.members[0].employer_uscc, Some(factory.clone()));

    let r = on(&h, "2026-03-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2026-03-01")));

    let r = on(&h, "2026-04-01");
    assert_eq!(r.state.status, Employed);
    assert_eq!(r.state.members[0].employer_uscc, Some(next_job));
}

#[test]
fn layoff_ends_only_the_employment_with_that_enterprise() {
    let (mut h, adult) = one_adult();
    let (a, b) = (employer(1), employer(2));
    h.start(&adult, &a, d("2025-02-01"));
    h.start_with(
        &adult,
        &b,
        d("2025-03-01"),
        terms(EmploymentKind::PublicWelfare, Some(6), yuan(1800), true),
    );
    h.layoff_effective("CY-1", &b, std::slice::from_ref(&adult), d("2026-01-01"));
    let r = on(&h, "2026-01-01");
    let m = &r.state.members[0];
    assert!(m.employed && m.stable);
    assert_eq!(m.employer_uscc, Some(a.clone()));
    assert_eq!(m.employment_kind, Some(EmploymentKind::Formal));

    h.layoff_effective("CY-2", &a, std::slice::from_ref(&adult), d("2026-02-01"));
    assert_eq!(status(&h, "2026-01-31"), Employed);
    assert_eq!(status(&h, "2026-02-01"), ZeroEmployment);
}

#[test]
fn repeated_start_with_the_same_employer_stays_one_employment_with_the_latest_terms() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start_with(
        &adult,
        &a,
        d("2025-02-01"),
        terms(EmploymentKind::Formal, Some(6), yuan(3000), true),
    );
    h.start_with(
        &adult,
        &a,
        d("2025-08-01"),
        terms(EmploymentKind::PublicWelfare, Some(24), yuan(2500), true),
    );
    let r = on(&h, "2025-07-31");
    assert!(!r.state.members[0].stable);
    let r = on(&h, "2025-09-01");
    let m = &r.state.members[0];
    assert_eq!(m.employment_kind, Some(EmploymentKind::PublicWelfare));
    assert!(m.stable);
    // One employment: a single end closes it.
    h.end(&adult, &a, d("2026-01-01"));
    assert_eq!(status(&h, "2026-01-01"), ZeroEmployment);
}

#[test]
fn repeated_start_applies_the_latest_start_date_whatever_the_arrival_order() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start_with(
        &adult,
        &a,
        d("2025-08-01"),
        terms(EmploymentKind::PublicWelfare, Some(24), yuan(2500), true),
    );
    // Arrives later, but starts earlier: its terms are superseded.
    h.start_with(
        &adult,
        &a,
        d("2025-02-01"),
        terms(EmploymentKind::Formal, Some(6), yuan(3000), false),
    );
    let m = on(&h, "2025-09-01").state.members[0].clone();
    assert_eq!(m.employment_kind, Some(EmploymentKind::PublicWelfare));
    assert_eq!(m.employer_uscc, Some(a));
    assert!(m.stable);
}

#[test]
fn kind_and_employer_are_those_of_the_open_employment_with_the_latest_start() {
    let (mut h, adult) = one_adult();
    let (a, b) = (employer(1), employer(2));
    // The later start arrives first.
    h.start_with(
        &adult,
        &b,
        d("2025-06-01"),
        terms(EmploymentKind::PublicWelfare, Some(12), yuan(2200), true),
    );
    h.start(&adult, &a, d("2025-01-01"));
    let m = on(&h, "2025-07-01").state.members[0].clone();
    assert_eq!(m.employment_kind, Some(EmploymentKind::PublicWelfare));
    assert_eq!(m.employer_uscc, Some(b.clone()));

    h.end(&adult, &b, d("2025-09-01"));
    let m = on(&h, "2025-09-01").state.members[0].clone();
    assert_eq!(m.employment_kind, Some(EmploymentKind::Formal));
    assert_eq!(m.employer_uscc, Some(a));
}

#[test]
fn same_date_starts_are_ordered_by_time_then_arrival() {
    let (mut h, adult) = one_adult();
    let (a, b) = (employer(1), employer(2));
    let day = d("2025-06-01");
    let mut late = order(day, 10);
    late.time = t("2025-06-01T08:00:00Z");
    let mut early = order(day, 20);
    early.time = t("2025-06-01T02:00:00Z");
    for (employer_uscc, kind, order) in [
        (&a, EmploymentKind::Formal, late),
        (&b, EmploymentKind::Flexible, early),
    ] {
        h.employment(EmploymentFact {
            id_number: adult.clone(),
            order,
            event: EmploymentEvent::Started {
                employer: employer_uscc.clone(),
                terms: terms(kind, None, yuan(3000), true),
            },
        });
    }
    let m = on(&h, "2025-06-01").state.members[0].clone();
    assert_eq!(
        m.employer_uscc,
        Some(a),
        "the later time wins over the later arrival"
    );
}

// ---- stable employment ----

fn stable_with(t: Terms, rules: &Rules) -> bool {
    let (mut h, adult) = one_adult();
    h.start_with(&adult, &employer(1), d("2025-03-01"), t);
    reconcile(h.facts(), d("2025-06-01"), rules)
        .unwrap()
        .state
        .members[0]
        .stable
}

#[test]
fn stable_employment_with_all_three_conditions() {
    let r = Rules::default();
    assert!(stable_with(
        terms(EmploymentKind::Formal, Some(12), yuan(2100), true),
        &r
    ));
    assert!(stable_with(
        terms(EmploymentKind::PublicWelfare, Some(36), yuan(5000), true),
        &r
    ));
}

#[test]
fn open_ended_contract_counts_as_long_enough() {
    assert!(stable_with(
        terms(EmploymentKind::Formal, None, yuan(2100), true),
        &Rules::default()
    ));
}

#[test]
fn contract_under_12_months_is_not_stable() {
    assert!(!stable_with(
        terms(EmploymentKind::Formal, Some(11), yuan(3000), true),
        &Rules::default()
    ));
}

#[test]
fn wage_under_the_minimum_wage_is_not_stable() {
    assert!(!stable_with(
        terms(EmploymentKind::Formal, Some(12), fen(209_999), true),
        &Rules::default()
    ));
}

#[test]
fn no_social_insurance_is_not_stable() {
    assert!(!stable_with(
        terms(EmploymentKind::Formal, Some(24), yuan(3000), false),
        &Rules::default()
    ));
}

#[test]
fn minimum_wage_is_that_of_the_longest_matching_division_prefix() {
    let table = MinimumWage::new(
        yuan(2100),
        [
            ("21".to_owned(), yuan(1900)),
            ("210302".to_owned(), yuan(2500)),
            ("2103".to_owned(), yuan(2300)),
        ],
    );
    assert_eq!(table.for_division(&division("210302001002")), yuan(2500));
    assert_eq!(table.for_division(&division("210303001002")), yuan(2300));
    assert_eq!(table.for_division(&division("210102001002")), yuan(1900));
    assert_eq!(table.for_division(&division("110102001002")), yuan(2100));
    assert_eq!(
        MinimumWage::default().for_division(&division("650102001001")),
        yuan(2100)
    );

    // A household in 210302 earns 2,400: under its 2,500, though over the city's 2,300.
    let rules = Rules {
        minimum_wage: table,
        ..Rules::default()
    };
    assert!(!stable_with(
        terms(EmploymentKind::Formal, Some(12), yuan(2400), true),
        &rules
    ));
    assert!(stable_with(
        terms(EmploymentKind::Formal, Some(12), yuan(2500), true),
        &rules
    ));
}

#[test]
fn stability_uses_the_households_division() {
    let table = MinimumWage::new(yuan(2100), [("210303".to_owned(), yuan(2600))]);
    let rules = Rules {
        minimum_wage: table,
        ..Rules::default()
    };
    let adult = man("1990-06-15", 1);
    let mut h = Household::in_division("H9", "210303004005");
    h.register(d("2025-01-01"), vec![member(&adult)]);
    h.start_with(
        &adult,
        &employer(1),
        d("2025-02-01"),
        terms(EmploymentKind::Formal, None, yuan(2500), true),
    );
    let r = reconcile(h.facts(), d("2025-03-01"), &rules).unwrap();
    assert!(r.state.members[0].employed);
    assert!(!r.state.members[0].stable);
}

// ---- visits ----

#[test]
fn flexible_finding_makes_a_zero_employment_household_employed_without_employer() {
    let (mut h, adult) = one_adult();
    h.visit(d("2026-03-10"), &[(&adult, Finding::Flexible)]);
    assert_eq!(status(&h, "2026-03-09"), ZeroEmployment);
    let r = on(&h, "2026-03-10");
    assert_eq!(r.state.status, Employed);
    let m = &r.state.members[0];
    assert!(m.employed);
    assert_eq!(m.employment_kind, Some(EmploymentKind::Flexible));
    assert_eq!(m.employer_uscc, None);
    assert!(!m.stable, "a visit-opened employment is never stable");
    assert_eq!(r.last_visit, Some(d("2026-03-10")));
}

#[test]
fn employed_finding_opens_an_employment_of_unknown_kind() {
    let (mut h, adult) = one_adult();
    h.visit(d("2026-03-10"), &[(&adult, Finding::Employed)]);
    let r = on(&h, "2026-03-10");
    assert_eq!(r.state.status, Employed);
    let m = &r.state.members[0];
    assert!(m.employed && !m.stable);
    assert_eq!(m.employment_kind, None);
    assert_eq!(m.employer_uscc, None);
}

#[test]
fn finding_for_someone_already_employed_opens_nothing() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start(&adult, &a, d("2025-03-01"));
    h.visit(d("2025-06-01"), &[(&adult, Finding::Flexible)]);
    h.visit(d("2025-07-01"), &[(&adult, Finding::Employed)]);
    let m = on(&h, "2025-07-01").state.members[0].clone();
    assert_eq!(m.employment_kind, Some(EmploymentKind::Formal));
    assert_eq!(m.employer_uscc, Some(a.clone()));
    assert!(m.stable);
    // Had the visits opened employments, the person would still be employed.
    h.end(&adult, &a, d("2025-08-01"));
    assert_eq!(status(&h, "2025-08-01"), ZeroEmployment);
}

#[test]
fn repeated_employed_findings_stay_one_employment() {
    let (mut h, adult) = one_adult();
    h.visit(d("2025-06-01"), &[(&adult, Finding::Flexible)]);
    h.visit(d("2025-07-01"), &[(&adult, Finding::Employed)]);
    let m = on(&h, "2025-07-01").state.members[0].clone();
    assert_eq!(
        m.employment_kind,
        Some(EmploymentKind::Flexible),
        "confirmed, not replaced"
    );
    h.visit(d("2025-08-01"), &[(&adult, Finding::Unemployed)]);
    assert_eq!(status(&h, "2025-08-01"), ZeroEmployment);
}

#[test]
fn unemployed_finding_closes_every_open_employment() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2025-02-01"));
    h.start(&adult, &employer(2), d("2025-03-01"));
    h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    assert_eq!(status(&h, "2025-05-31"), Employed);
    let r = on(&h, "2025-06-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2025-06-01")));
    let m = &r.state.members[0];
    assert!(!m.employed && !m.stable);
    assert_eq!(m.employer_uscc, None);
    // A later end from either employer changes nothing more.
    h.end(&adult, &employer(1), d("2025-07-01"));
    assert_eq!(on(&h, "2025-07-01").state.zero_since, Some(d("2025-06-01")));
}

// ---- data conflicts ----

#[test]
fn unemployed_finding_while_hr_employment_is_open_is_one_conflict() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start(&adult, &a, d("2025-03-01"));
    let visit = h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    let r = on(&h, "2025-06-01");
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    let c = &r.conflicts[0];
    assert_eq!(c.visit, visit);
    assert_eq!(c.id_number, adult);
    assert_eq!(c.visit_date, d("2025-06-01"));
    assert_eq!(c.employer_uscc, a);
    // The finding still applies.
    assert_eq!(r.state.status, ZeroEmployment);
}

#[test]
fn no_conflict_when_the_hr_employment_ended_before_the_visit() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start(&adult, &a, d("2025-03-01"));
    h.end(&adult, &a, d("2025-05-20"));
    h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    assert!(on(&h, "2025-06-01").conflicts.is_empty());
}

#[test]
fn no_conflict_with_an_employment_only_a_visit_knew_of() {
    let (mut h, adult) = one_adult();
    h.visit(d("2025-03-01"), &[(&adult, Finding::Flexible)]);
    h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    assert!(on(&h, "2025-06-01").conflicts.is_empty());
}

#[test]
fn late_hr_fact_still_yields_the_conflict() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    let visit = h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    assert!(on(&h, "2025-06-01").conflicts.is_empty());
    // Started before the visit, arrives after it.
    h.start(&adult, &a, d("2025-05-01"));
    let r = on(&h, "2025-06-01");
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].visit, visit);
    assert_eq!(r.conflicts[0].employer_uscc, a);
    assert_eq!(r.state.status, ZeroEmployment);
}

#[test]
fn hr_employment_starting_after_the_visit_is_no_conflict() {
    let (mut h, adult) = one_adult();
    h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    h.start(&adult, &employer(1), d("2025-06-02"));
    let r = on(&h, "2025-06-02");
    assert!(r.conflicts.is_empty());
    assert_eq!(r.state.status, Employed);
}

#[test]
fn one_conflict_per_visit_and_person_even_with_two_open_employers() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2025-02-01"));
    h.start(&adult, &employer(2), d("2025-03-01"));
    h.visit(d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    let r = on(&h, "2025-06-01");
    assert_eq!(r.conflicts.len(), 1);
    assert!([employer(1), employer(2)].contains(&r.conflicts[0].employer_uscc));
}

#[test]
fn conflicts_of_another_households_visits_are_not_this_households() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2025-02-01"));
    h.register_other("H2", d("2025-05-01"), vec![member(&adult)]);
    h.visit_of(key("H2"), d("2025-06-01"), &[(&adult, Finding::Unemployed)]);
    assert!(on(&h, "2025-06-01").conflicts.is_empty());
}

// ---- composition: moves and dates ----

#[test]
fn later_registration_of_another_household_moves_the_person_from_that_date() {
    let mover = man("1988-01-01", 1);
    let stayer = woman("1990-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&mover), member(&stayer)]);
    h.start(&mover, &employer(1), d("2025-02-01"));
    h.register_other("H2", d("2025-06-01"), vec![member(&mover)]);

    let before = on(&h, "2025-05-31");
    assert_eq!(before.state.members.len(), 2);
    assert_eq!(before.state.status, Employed);
    assert_eq!(
        members_on(h.facts(), d("2025-05-31"), &rules()),
        vec![mover.clone(), stayer.clone()]
    );

    let after = on(&h, "2025-06-01");
    assert_eq!(after.state.members.len(), 1);
    assert_eq!(after.state.members[0].id_number, stayer);
    assert_eq!(after.state.status, ZeroEmployment);
    assert_eq!(after.state.zero_since, Some(d("2025-06-01")));
    assert_eq!(
        members_on(h.facts(), d("2025-06-01"), &rules()),
        vec![stayer]
    );
}

#[test]
fn older_registration_of_another_household_does_not_take_the_person() {
    let mover = man("1988-01-01", 1);
    let mut h = Household::new("H1");
    h.register_other("H2", d("2024-01-01"), vec![member(&mover)]);
    h.register(d("2025-01-01"), vec![member(&mover)]);
    assert_eq!(on(&h, "2025-06-01").state.members.len(), 1);
}

#[test]
fn a_person_moving_back_belongs_to_the_newest_snapshot_again() {
    let mover = man("1988-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&mover)]);
    h.register_other("H2", d("2025-03-01"), vec![member(&mover)]);
    h.register(d("2025-09-01"), vec![member(&mover)]);
    assert_eq!(on(&h, "2025-02-28").state.members.len(), 1);
    assert_eq!(on(&h, "2025-03-01").state.status, NoLabourForce);
    assert!(on(&h, "2025-03-01").state.members.is_empty());
    let back = on(&h, "2025-09-01");
    assert_eq!(back.state.members.len(), 1);
    assert_eq!(back.state.zero_since, Some(d("2025-09-01")));
}

#[test]
fn same_date_registrations_are_decided_by_time() {
    let mover = man("1988-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&mover)]);
    // H2's snapshot has the same effective date but an earlier time.
    let own = h.register(d("2025-06-01"), vec![member(&mover)]);
    h.register_other("H2", d("2025-06-01"), vec![member(&mover)]);
    let other = h.facts().registrations.last().unwrap().order;
    assert!(other > own);
    assert!(on(&h, "2025-06-01").state.members.is_empty());
}

#[test]
fn a_household_does_not_exist_before_its_first_snapshot() {
    let adult = man("1990-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2026-06-01"), vec![member(&adult)]);
    assert_eq!(reconcile(h.facts(), d("2026-05-31"), &rules()), None);
    assert_eq!(status_on(h.facts(), &[], d("2026-05-31"), &rules()), None);
    assert!(members_on(h.facts(), d("2026-05-31"), &rules()).is_empty());
    let r = on(&h, "2026-06-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2026-06-01")));
}

#[test]
fn a_future_registration_takes_effect_on_its_date() {
    let (mut h, adult) = one_adult();
    let newcomer = woman("1992-01-01", 2);
    h.start(&newcomer, &employer(1), d("2025-01-01"));
    h.register(d("2026-06-01"), vec![member(&adult), member(&newcomer)]);

    let r = on(&h, "2026-05-01");
    assert_eq!(r.state.members.len(), 1);
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.next_change, Some(d("2026-06-01")));

    let r = on(&h, "2026-06-01");
    assert_eq!(r.state.members.len(), 2);
    assert_eq!(r.state.status, Employed);
}

// ---- zero_since ----

#[test]
fn zero_since_is_the_first_day_of_the_run_reaching_today() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start(&adult, &a, d("2025-05-01"));
    h.end(&adult, &a, d("2025-08-01"));
    assert_eq!(on(&h, "2025-04-30").state.zero_since, Some(d("2025-01-01")));
    assert_eq!(on(&h, "2025-06-01").state.zero_since, None);
    let r = on(&h, "2026-05-01");
    assert_eq!(r.state.zero_since, Some(d("2025-08-01")));
    assert_eq!(r.status_since, d("2025-08-01"));
}

#[test]
fn zero_since_starts_on_a_16th_birthday() {
    let retired = woman("1955-01-01", 1);
    let child = man("2010-03-15", 2);
    let mut h = Household::new("H1");
    h.register(
        d("2025-01-01"),
        vec![member_with(&retired, MemberStatus::Retired), member(&child)],
    );
    let r = on(&h, "2026-05-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.state.zero_since, Some(d("2026-03-15")));
}

#[test]
fn zero_since_counts_across_a_change_of_composition_that_keeps_it_zero() {
    let a = man("1988-01-01", 1);
    let b = woman("1990-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&a)]);
    h.register(d("2025-06-01"), vec![member(&a), member(&b)]);
    assert_eq!(on(&h, "2025-07-01").state.zero_since, Some(d("2025-01-01")));
}

#[test]
fn status_since_of_a_no_labour_force_household() {
    let elder = man("1940-01-01", 1);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&elder)]);
    let r = on(&h, "2025-07-01");
    assert_eq!(r.state.zero_since, None);
    assert_eq!(r.status_since, d("2025-01-01"));
}

// ---- 低保 ----

#[test]
fn dibao_granted_then_revoked_is_none() {
    let (mut h, adult) = one_adult();
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Granted,
        yuan(800),
        d("2025-02-01"),
    );
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Revoked,
        yuan(0),
        d("2025-10-01"),
    );
    assert_eq!(
        on(&h, "2025-09-30").state.dibao,
        Some(Dibao {
            case_id: key("DB-1"),
            monthly_amount: yuan(800)
        })
    );
    assert_eq!(on(&h, "2025-10-01").state.dibao, None);
}

#[test]
fn dibao_carries_the_monthly_amount_of_the_latest_change() {
    let (mut h, adult) = one_adult();
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Granted,
        yuan(800),
        d("2025-02-01"),
    );
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Adjusted,
        fen(95_050),
        d("2025-07-01"),
    );
    let dibao = on(&h, "2025-08-01").state.dibao.unwrap();
    assert_eq!(dibao.monthly_amount, fen(95_050));
    assert_eq!(dibao.case_id, key("DB-1"));
}

#[test]
fn dibao_of_two_active_cases_is_the_newest_by_effective_date_time_arrival() {
    let a = man("1980-01-01", 1);
    let b = woman("1982-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&a), member(&b)]);
    h.subsidy(
        "DB-A",
        &a,
        SubsidyChangeKind::Granted,
        yuan(700),
        d("2025-04-01"),
    );
    h.subsidy(
        "DB-B",
        &b,
        SubsidyChangeKind::Granted,
        yuan(600),
        d("2025-03-01"),
    );
    assert_eq!(
        on(&h, "2025-05-01").state.dibao.unwrap().case_id,
        key("DB-A")
    );
    // B's case changes later: now it is the newest.
    h.subsidy(
        "DB-B",
        &b,
        SubsidyChangeKind::Adjusted,
        yuan(650),
        d("2025-06-01"),
    );
    let dibao = on(&h, "2025-06-01").state.dibao.unwrap();
    assert_eq!(
        (dibao.case_id, dibao.monthly_amount),
        (key("DB-B"), yuan(650))
    );

    // Same effective date: the later `time` wins, even if it arrived first.
    let day = d("2025-08-01");
    let mut later_time = order(day, 100);
    later_time.time = t("2025-08-01T06:00:00Z");
    let mut earlier_time = order(day, 101);
    earlier_time.time = t("2025-08-01T03:00:00Z");
    h.subsidy_at(
        "DB-A",
        &a,
        SubsidyChangeKind::Adjusted,
        yuan(710),
        later_time,
    );
    h.subsidy_at(
        "DB-B",
        &b,
        SubsidyChangeKind::Adjusted,
        yuan(660),
        earlier_time,
    );
    assert_eq!(
        on(&h, "2025-08-01").state.dibao.unwrap().case_id,
        key("DB-A")
    );

    // Same date and time: the later arrival wins.
    let day = d("2025-09-01");
    let mut first = order(day, 200);
    first.time = t("2025-09-01T03:00:00Z");
    let mut second = order(day, 201);
    second.time = first.time;
    h.subsidy_at("DB-B", &b, SubsidyChangeKind::Adjusted, yuan(670), second);
    h.subsidy_at("DB-A", &a, SubsidyChangeKind::Adjusted, yuan(720), first);
    assert_eq!(
        on(&h, "2025-09-01").state.dibao.unwrap().case_id,
        key("DB-B")
    );
}

#[test]
fn revoking_the_newest_case_leaves_the_other_active_one() {
    let a = man("1980-01-01", 1);
    let b = woman("1982-01-01", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&a), member(&b)]);
    h.subsidy(
        "DB-A",
        &a,
        SubsidyChangeKind::Granted,
        yuan(700),
        d("2025-03-01"),
    );
    h.subsidy(
        "DB-B",
        &b,
        SubsidyChangeKind::Granted,
        yuan(600),
        d("2025-04-01"),
    );
    h.subsidy(
        "DB-B",
        &b,
        SubsidyChangeKind::Revoked,
        yuan(0),
        d("2025-05-01"),
    );
    assert_eq!(
        on(&h, "2025-05-01").state.dibao.unwrap().case_id,
        key("DB-A")
    );
}

#[test]
fn dibao_case_follows_its_applicant_into_another_household() {
    let mover = man("1985-01-01", 1);
    let stayer = woman("1987-01-01", 2);
    let host = man("1960-01-01", 3);

    let mut h1 = Household::new("H1");
    h1.register(d("2025-01-01"), vec![member(&mover), member(&stayer)]);
    h1.subsidy(
        "DB-1",
        &mover,
        SubsidyChangeKind::Granted,
        yuan(800),
        d("2025-02-01"),
    );
    h1.register_other("H2", d("2025-09-01"), vec![member(&host), member(&mover)]);
    assert!(on(&h1, "2025-08-31").state.dibao.is_some());
    assert_eq!(on(&h1, "2025-09-01").state.dibao, None);

    let mut h2 = Household::new("H2");
    h2.register(d("2024-01-01"), vec![member(&host)]);
    h2.register_other("H1", d("2025-01-01"), vec![member(&mover), member(&stayer)]);
    h2.register(d("2025-09-01"), vec![member(&host), member(&mover)]);
    h2.subsidy(
        "DB-1",
        &mover,
        SubsidyChangeKind::Granted,
        yuan(800),
        d("2025-02-01"),
    );
    assert_eq!(on(&h2, "2025-08-31").state.dibao, None);
    assert_eq!(
        on(&h2, "2025-09-01").state.dibao,
        Some(Dibao {
            case_id: key("DB-1"),
            monthly_amount: yuan(800)
        })
    );
}

#[test]
fn a_future_dated_subsidy_change_does_not_count_yet() {
    let (mut h, adult) = one_adult();
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Granted,
        yuan(800),
        d("2025-02-01"),
    );
    h.subsidy(
        "DB-1",
        &adult,
        SubsidyChangeKind::Adjusted,
        yuan(900),
        d("2025-12-01"),
    );
    h.subsidy(
        "DB-2",
        &adult,
        SubsidyChangeKind::Granted,
        yuan(999),
        d("2026-01-01"),
    );
    let r = on(&h, "2025-11-30");
    assert_eq!(r.state.dibao.unwrap().monthly_amount, yuan(800));
    assert_eq!(r.next_change, Some(d("2025-12-01")));
    assert_eq!(
        on(&h, "2025-12-01").state.dibao.unwrap().monthly_amount,
        yuan(900)
    );
    assert_eq!(
        on(&h, "2026-01-01").state.dibao.unwrap().case_id,
        key("DB-2")
    );

    let (mut fresh, adult) = one_adult();
    fresh.subsidy(
        "DB-9",
        &adult,
        SubsidyChangeKind::Granted,
        yuan(500),
        d("2026-01-01"),
    );
    assert_eq!(on(&fresh, "2025-12-31").state.dibao, None);
}

// ---- next_change ----

#[test]
fn next_change_is_the_next_16th_birthday() {
    let adult = man("1980-01-01", 1);
    let child = woman("2011-02-20", 2);
    let mut h = Household::new("H1");
    h.register(d("2025-01-01"), vec![member(&adult), member(&child)]);
    h.start(&adult, &employer(1), d("2025-02-01"));
    assert_eq!(on(&h, "2026-05-01").next_change, Some(d("2027-02-20")));
}

#[test]
fn next_change_is_a_future_registration_date() {
    let (mut h, adult) = one_adult();
    h.register(d("2026-09-01"), vec![member(&adult)]);
    assert_eq!(on(&h, "2026-05-01").next_change, Some(d("2026-09-01")));
}

#[test]
fn next_change_includes_a_future_dated_employment_fact() {
    let (mut h, adult) = one_adult();
    h.start(&adult, &employer(1), d("2026-07-01"));
    let r = on(&h, "2026-05-01");
    assert_eq!(r.state.status, ZeroEmployment);
    assert_eq!(r.next_change, Some(d("2026-07-01")));
}

// ---- status_on with extra facts (the "what if" of household_at_risk) ----

#[test]
fn status_on_with_extra_facts_does_not_change_the_known_facts() {
    let (mut h, adult) = one_adult();
    let a = employer(1);
    h.start(&adult, &a, d("2025-02-01"));
    let notice = layoff(
        "CY-9",
        LayoffStage::Planned,
        &a,
        100,
        std::slice::from_ref(&adult),
        order(d("2026-07-01"), 99),
    );
    let what_if = notice.employment_ends();
    assert_eq!(
        status_on(h.facts(), &what_if, d("2026-07-01"), &rules()),
        Some(ZeroEmployment)
    );
    assert_eq!(
        status_on(h.facts(), &what_if, d("2026-06-30"), &rules()),
        Some(Employed)
    );
    assert_eq!(
        status_on(h.facts(), &[], d("2026-07-01"), &rules()),
        Some(Employed)
    );
}

#[test]
fn a_visit_naming_a_person_twice_gives_the_same_state_in_any_order() {
    let (mut h, adult) = one_adult();
    h.visit(
        d("2025-06-01"),
        &[(&adult, Finding::Employed), (&adult, Finding::Flexible)],
    );
    let forward = on(&h, "2025-06-01");
    let mut reversed = h.facts().clone();
    reversed.employment.reverse();
    let backward = reconcile(&reversed, d("2025-06-01"), &rules()).unwrap();
    assert_eq!(forward.state.status, Employed);
    assert_eq!(forward, backward);
    // The more specific finding gives the kind.
    assert_eq!(
        forward.state.members[0].employment_kind,
        Some(EmploymentKind::Flexible)
    );
}

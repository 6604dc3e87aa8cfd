//! How long one reconciliation takes: a household of four with twenty facts,
//! the size the reconciler folds on every inbound event and every sweep.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentKind, Finding, MemberStatus, SubsidyChangeKind,
};
use dynzero_domain::reconcile::{HouseholdFacts, reconcile};
use dynzero_domain::rules::Rules;
use std::hint::black_box;

/// Father, mother, a son turning 16 in the period, a retired grandmother; 20
/// facts: registrations (one moving the son's cousin out), HR starts and ends,
/// an effective layoff, visits with findings and 低保 changes.
fn household() -> HouseholdFacts {
    let father = man("1978-04-12", 1);
    let mother = woman("1980-09-30", 2);
    let son = man("2009-11-05", 3);
    let grandmother = woman("1952-02-29", 4);
    let cousin = man("1999-07-01", 5);
    let (factory, mall, sanitation) = (employer(1), employer(2), employer(3));

    let mut h = Household::new("210302001002-0001");
    h.register(
        d("2024-03-01"),
        vec![
            member(&father),
            member(&mother),
            member_with(&son, MemberStatus::Student),
            member_with(&grandmother, MemberStatus::Retired),
            member(&cousin),
        ],
    );
    h.start(&father, &factory, d("2019-05-06"));
    h.start_with(
        &mother,
        &mall,
        d("2023-02-01"),
        terms(EmploymentKind::Formal, Some(6), yuan(2300), false),
    );
    h.subsidy(
        "DB-0042",
        &grandmother,
        SubsidyChangeKind::Granted,
        yuan(760),
        d("2024-04-01"),
    );
    h.visit(
        d("2024-06-15"),
        &[(&father, Finding::Employed), (&mother, Finding::Employed)],
    );
    h.register_other("210302001002-0077", d("2024-08-01"), vec![member(&cousin)]);
    h.start_with(
        &mother,
        &mall,
        d("2024-08-01"),
        terms(EmploymentKind::Formal, Some(12), yuan(2300), true),
    );
    h.end(&mother, &mall, d("2025-01-31"));
    h.visit(d("2025-02-20"), &[(&mother, Finding::Flexible)]);
    h.subsidy(
        "DB-0042",
        &grandmother,
        SubsidyChangeKind::Adjusted,
        yuan(810),
        d("2025-01-01"),
    );
    h.layoff_effective(
        "CY-2025-03",
        &factory,
        std::slice::from_ref(&father),
        d("2025-04-01"),
    );
    h.visit(
        d("2025-04-18"),
        &[
            (&father, Finding::Unemployed),
            (&mother, Finding::Unemployed),
        ],
    );
    h.start_with(
        &father,
        &sanitation,
        d("2025-06-01"),
        terms(EmploymentKind::PublicWelfare, Some(12), yuan(2100), true),
    );
    h.end(&father, &sanitation, d("2025-12-01"));
    h.subsidy(
        "DB-0042",
        &grandmother,
        SubsidyChangeKind::Adjusted,
        yuan(850),
        d("2026-01-01"),
    );
    h.register(
        d("2025-12-15"),
        vec![
            member(&father),
            member(&mother),
            member(&son),
            member_with(&grandmother, MemberStatus::Retired),
        ],
    );
    h.visit(d("2026-01-12"), &[(&father, Finding::Unemployed)]);
    h.start(&mother, &factory, d("2026-03-02"));
    h.end(&mother, &factory, d("2026-04-01"));
    h.visit(d("2026-04-20"), &[(&mother, Finding::Unemployed)]);
    h.facts().clone()
}

fn bench_reconcile(c: &mut Criterion) {
    let facts = household();
    let rules = Rules::default();
    let today = d("2026-05-01");
    // Findings are employment facts of their visit: count the visit once.
    let hr_facts = facts
        .employment
        .iter()
        .filter(|f| !matches!(f.event, EmploymentEvent::Visited { .. }))
        .count();
    let facts_count =
        facts.registrations.len() + facts.visits.len() + facts.subsidy_changes.len() + hr_facts;
    assert_eq!(facts_count, 20, "the benchmark's household has 20 facts");
    let state = reconcile(&facts, today, &rules).expect("registered");
    assert_eq!(state.state.members.len(), 4);

    c.bench_function("reconcile 4 members 20 facts", |b| {
        b.iter(|| reconcile(black_box(&facts), black_box(today), black_box(&rules)))
    });
}

criterion_group!(benches, bench_reconcile);
criterion_main!(benches);

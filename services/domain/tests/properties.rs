//! Properties of `reconcile` over random small households and random facts,
//! checked against a deliberately naive re-implementation of section 5 that
//! replays the facts day by day in (date, time, arrival) order.

mod common;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use common::*;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, EmploymentKind, Finding, LayoffStage, MemberStatus, Order,
    RegisteredMember, Registration, Relation, SubsidyChange, SubsidyChangeKind, Terms, Visit,
    VisitRef,
};
use dynzero_domain::ids::{DivisionCode, IdNumber, Money, Sex, Uscc};
use dynzero_domain::reconcile::{
    Dibao, HouseholdFacts, HouseholdStatus, Reconciled, reconcile, status_on,
};
use dynzero_domain::retirement::{RetirementCategory, is_working_age};
use dynzero_domain::rules::{MinimumWage, Rules};
use proptest::prelude::*;
use std::collections::BTreeSet;

// ---- the random world ----

/// Day 0 of every scenario.
fn base() -> NaiveDate {
    d("2025-01-01")
}

fn day(offset: i64) -> NaiveDate {
    if offset >= 0 {
        base() + Days::new(offset as u64)
    } else {
        base() - Days::new(offset.unsigned_abs())
    }
}

/// The divisions a household may be registered in, and the minimum wage table
/// that tells them apart (longest prefix wins).
const DIVISIONS: [&str; 2] = ["210302001002", "210303004005"];

fn rules() -> Rules {
    Rules {
        minimum_wage: MinimumWage::new(
            yuan(2100),
            [
                ("2103".to_owned(), yuan(2300)),
                ("210302".to_owned(), yuan(2500)),
            ],
        ),
        ..Rules::default()
    }
}

#[derive(Debug, Clone)]
struct PersonSpec {
    birth: NaiveDate,
    sex: Sex,
    able_to_work: bool,
    seeking_work: bool,
    status: MemberStatus,
}

#[derive(Debug, Clone)]
enum FactSpec {
    Start {
        person: usize,
        employer: u32,
        day: i64,
        kind: EmploymentKind,
        contract_months: Option<u32>,
        wage: i64,
        social_insurance: bool,
        /// A matching `employment.ended` this many days later (arriving later).
        ends_after: Option<i64>,
    },
    End {
        person: usize,
        employer: u32,
        day: i64,
    },
    /// An `effective` layoff, as its `employment_ends()`.
    Layoff {
        people: Vec<usize>,
        employer: u32,
        day: i64,
    },
    Visit {
        day: i64,
        findings: Vec<(usize, Finding)>,
    },
    Subsidy {
        case: usize,
        change: SubsidyChangeKind,
        amount: i64,
        day: i64,
    },
    /// A snapshot of another household naming some of the people.
    Move {
        household: usize,
        people: Vec<usize>,
        day: i64,
    },
    /// A new snapshot of the household itself.
    Reregister {
        people: Vec<usize>,
        division: usize,
        day: i64,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    people: Vec<PersonSpec>,
    first_registration: i64,
    facts: Vec<FactSpec>,
    /// Per fact (and the first registration, last): a `time` component, made
    /// distinct by the index.
    times: Vec<u32>,
    /// Days to look at, as offsets from `base()`.
    days: Vec<i64>,
    /// Seed of the permutations.
    seed: u64,
}

fn date_between(from: &str, to: &str) -> impl Strategy<Value = NaiveDate> {
    let (from, to) = (d(from), d(to));
    let span = (to - from).num_days() as u64;
    (0..=span).prop_map(move |k| from + Days::new(k))
}

fn person_spec() -> impl Strategy<Value = PersonSpec> {
    let birth = prop_oneof![
        4 => date_between("1973-01-01", "2000-12-31"),
        1 => date_between("1940-01-01", "1963-01-01"),
        // Turning 16 inside the window.
        2 => date_between("2008-06-01", "2011-06-30"),
        // Reaching retirement inside the window (men M60, women F55).
        2 => date_between("1963-06-01", "1972-12-31"),
        1 => date_between("2012-01-01", "2020-12-31"),
    ];
    let status = prop_oneof![
        6 => Just(MemberStatus::None),
        1 => Just(MemberStatus::Student),
        1 => Just(MemberStatus::Retired),
        1 => Just(MemberStatus::Military),
        1 => Just(MemberStatus::Disabled),
    ];
    (
        birth,
        any::<bool>(),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        status,
    )
        .prop_map(
            |(birth, male, able_to_work, seeking_work, status)| PersonSpec {
                birth,
                sex: if male { Sex::Male } else { Sex::Female },
                able_to_work,
                seeking_work,
                status,
            },
        )
}

/// Days cluster on a few dates, so that same-date facts (ordered by time,
/// then arrival) are common.
fn fact_day() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => (0i64..19, 0i64..3).prop_map(|(month, k)| month * 30 + k),
        1 => 0i64..560,
    ]
}

fn finding() -> impl Strategy<Value = Finding> {
    prop_oneof![
        Just(Finding::Employed),
        Just(Finding::Flexible),
        Just(Finding::Unemployed)
    ]
}

fn fact_spec() -> impl Strategy<Value = FactSpec> {
    let kind = prop_oneof![
        Just(EmploymentKind::Formal),
        Just(EmploymentKind::PublicWelfare),
        Just(EmploymentKind::Flexible)
    ];
    let change = prop_oneof![
        2 => Just(SubsidyChangeKind::Granted),
        1 => Just(SubsidyChangeKind::Adjusted),
        1 => Just(SubsidyChangeKind::Revoked)
    ];
    prop_oneof![
        4 => (
            0usize..4,
            1u32..=3,
            fact_day(),
            kind,
            prop::option::weighted(0.8, 1u32..=36),
            1800i64..3200,
            any::<bool>(),
            prop::option::weighted(0.5, 1i64..200)
        )
            .prop_map(
                |(person, employer, day, kind, contract_months, wage, social_insurance, ends_after)| {
                    FactSpec::Start {
                        person,
                        employer,
                        day,
                        kind,
                        contract_months,
                        wage,
                        social_insurance,
                        ends_after,
                    }
                }
            ),
        3 => (0usize..4, 1u32..=3, fact_day())
            .prop_map(|(person, employer, day)| FactSpec::End { person, employer, day }),
        2 => (prop::collection::vec(0usize..4, 1..3), 1u32..=3, fact_day())
            .prop_map(|(people, employer, day)| FactSpec::Layoff { people, employer, day }),
        3 => (fact_day(), prop::collection::vec((0usize..4, finding()), 0..3))
            .prop_map(|(day, findings)| FactSpec::Visit { day, findings }),
        2 => (0usize..2, change, 0i64..1500, fact_day())
            .prop_map(|(case, change, amount, day)| FactSpec::Subsidy { case, change, amount, day }),
        1 => (0usize..2, prop::collection::vec(0usize..4, 0..3), fact_day())
            .prop_map(|(household, people, day)| FactSpec::Move { household, people, day }),
        1 => (prop::collection::vec(0usize..4, 0..4), 0usize..2, fact_day())
            .prop_map(|(people, division, day)| FactSpec::Reregister { people, division, day }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(person_spec(), 1..=4),
        0i64..90,
        prop::collection::vec(fact_spec(), 0..=20),
        prop::collection::vec(0u32..1000, 21),
        prop::collection::vec(-10i64..570, 4),
        any::<u64>(),
    )
        .prop_map(
            |(people, first_registration, facts, times, mut days, seed)| {
                // Always look at the first day too.
                days.push(first_registration);
                Scenario {
                    people,
                    first_registration,
                    facts,
                    times,
                    days,
                    seed,
                }
            },
        )
}

// ---- building the facts ----

struct World {
    facts: HouseholdFacts,
    people: Vec<IdNumber>,
}

fn other_household(i: usize) -> &'static str {
    ["H2", "H3"][i % 2]
}

impl Scenario {
    fn ids(&self) -> Vec<IdNumber> {
        self.people
            .iter()
            .enumerate()
            .map(|(i, p)| person(p.birth, p.sex, i as u16))
            .collect()
    }

    fn registered(&self, ids: &[IdNumber], which: &[usize]) -> Vec<RegisteredMember> {
        let mut seen = BTreeSet::new();
        which
            .iter()
            .map(|i| i % ids.len())
            .filter(|i| seen.insert(*i))
            .map(|i| {
                let spec = &self.people[i];
                RegisteredMember {
                    id_number: ids[i].clone(),
                    name: name_of(&ids[i]),
                    relation: if i == 0 {
                        Relation::Head
                    } else {
                        Relation::Child
                    },
                    able_to_work: spec.able_to_work,
                    seeking_work: spec.seeking_work,
                    status: spec.status,
                }
            })
            .collect()
    }

    /// Distinct arrivals and times for distinct indexes: the facts are 0–19,
    /// the first registration 20, the ends paired with starts 30–49.
    fn order(&self, index: usize, day_offset: i64) -> Order {
        let epoch: DateTime<Utc> = t("2025-01-01T00:00:00Z");
        Order {
            date: day(day_offset),
            time: epoch
                + Duration::minutes(
                    i64::from(self.times[index % self.times.len()]) * 100 + index as i64,
                ),
            arrival: index as i64 + 1,
        }
    }

    fn world(&self) -> World {
        let ids = self.ids();
        let n = ids.len();
        let all: Vec<usize> = (0..n).collect();
        let mut facts = HouseholdFacts {
            household_id: key("H1"),
            registrations: vec![Registration {
                household_id: key("H1"),
                division_code: division(DIVISIONS[0]),
                address: None,
                members: self.registered(&ids, &all),
                order: self.order(20, self.first_registration),
            }],
            employment: Vec::new(),
            visits: Vec::new(),
            subsidy_changes: Vec::new(),
        };
        for (index, spec) in self.facts.iter().enumerate() {
            match spec {
                FactSpec::Start {
                    person,
                    employer: e,
                    day,
                    kind,
                    contract_months,
                    wage,
                    social_insurance,
                    ends_after,
                } => {
                    facts.employment.push(EmploymentFact {
                        id_number: ids[person % n].clone(),
                        order: self.order(index, *day),
                        event: EmploymentEvent::Started {
                            employer: employer(*e),
                            terms: Terms {
                                kind: *kind,
                                contract_months: *contract_months,
                                monthly_wage: yuan(*wage),
                                social_insurance: *social_insurance,
                            },
                        },
                    });
                    if let Some(after) = ends_after {
                        facts.employment.push(EmploymentFact {
                            id_number: ids[person % n].clone(),
                            order: self.order(index + 30, day + after),
                            event: EmploymentEvent::Ended {
                                employer: employer(*e),
                            },
                        });
                    }
                }
                FactSpec::End {
                    person,
                    employer: e,
                    day,
                } => facts.employment.push(EmploymentFact {
                    id_number: ids[person % n].clone(),
                    order: self.order(index, *day),
                    event: EmploymentEvent::Ended {
                        employer: employer(*e),
                    },
                }),
                FactSpec::Layoff {
                    people,
                    employer: e,
                    day,
                } => {
                    let listed: Vec<IdNumber> = people.iter().map(|i| ids[i % n].clone()).collect();
                    let notice = layoff(
                        &format!("CY-{index}"),
                        LayoffStage::Effective,
                        &employer(*e),
                        50,
                        &listed,
                        self.order(index, *day),
                    );
                    let mut ends = notice.employment_ends();
                    let mut seen = BTreeSet::new();
                    ends.retain(|f| seen.insert(f.id_number.clone()));
                    facts.employment.extend(ends);
                }
                FactSpec::Visit { day, findings } => {
                    let order = self.order(index, *day);
                    let visit = VisitRef {
                        household_id: key("H1"),
                        key: format!("community-app visit-{index}"),
                    };
                    facts.visits.push(Visit {
                        household_id: key("H1"),
                        order,
                    });
                    let mut seen = BTreeSet::new();
                    for (who, found) in findings {
                        if seen.insert(who % n) {
                            facts.employment.push(EmploymentFact {
                                id_number: ids[who % n].clone(),
                                order,
                                event: EmploymentEvent::Visited {
                                    visit: visit.clone(),
                                    finding: *found,
                                },
                            });
                        }
                    }
                }
                FactSpec::Subsidy {
                    case,
                    change,
                    amount,
                    day,
                } => facts.subsidy_changes.push(SubsidyChange {
                    case_id: key(&format!("DB-{case}")),
                    // A case keeps its applicant.
                    applicant: ids[case % n].clone(),
                    change: *change,
                    monthly_amount: if *change == SubsidyChangeKind::Revoked {
                        Money::ZERO
                    } else {
                        yuan(*amount)
                    },
                    order: self.order(index, *day),
                }),
                FactSpec::Move {
                    household,
                    people,
                    day,
                } => facts.registrations.push(Registration {
                    household_id: key(other_household(*household)),
                    division_code: division(DIVISIONS[0]),
                    address: None,
                    members: self.registered(&ids, people),
                    order: self.order(index, *day),
                }),
                FactSpec::Reregister {
                    people,
                    division: which,
                    day,
                } => facts.registrations.push(Registration {
                    household_id: key("H1"),
                    division_code: division(DIVISIONS[which % DIVISIONS.len()]),
                    address: None,
                    members: self.registered(&ids, people),
                    order: self.order(index, *day),
                }),
            }
        }
        World { facts, people: ids }
    }
}

/// A small deterministic generator for permutations (xorshift64*).
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }

    fn pick(&mut self) -> bool {
        self.next().is_multiple_of(3)
    }
}

fn shuffled(facts: &HouseholdFacts, seed: u64) -> HouseholdFacts {
    let mut rng = Shuffler(seed);
    let mut out = facts.clone();
    rng.shuffle(&mut out.registrations);
    rng.shuffle(&mut out.employment);
    rng.shuffle(&mut out.visits);
    rng.shuffle(&mut out.subsidy_changes);
    out
}

fn with_duplicates(facts: &HouseholdFacts, seed: u64) -> HouseholdFacts {
    fn dup<T: Clone>(items: &mut Vec<T>, rng: &mut Shuffler) {
        let copies: Vec<T> = items.iter().filter(|_| rng.pick()).cloned().collect();
        items.extend(copies);
        rng.shuffle(items);
    }
    let mut rng = Shuffler(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut out = facts.clone();
    dup(&mut out.registrations, &mut rng);
    dup(&mut out.employment, &mut rng);
    dup(&mut out.visits, &mut rng);
    dup(&mut out.subsidy_changes, &mut rng);
    out
}

// ---- the naive model ----

/// One open employment in the naive replay.
#[derive(Debug, Clone)]
struct Job {
    employer: Option<Uscc>,
    kind: Option<EmploymentKind>,
    terms: Option<Terms>,
    start: Order,
}

/// Replays one person's facts dated on or before `day` (all of them when
/// `day` is `None`), in (date, time, arrival) order, word for word as section
/// 5 says. Calls `on_unemployed` with the jobs open just before each
/// `unemployed` finding.
fn replay(
    facts: &HouseholdFacts,
    person: &IdNumber,
    day: Option<NaiveDate>,
    mut on_unemployed: impl FnMut(&VisitRef, NaiveDate, &[Job]),
) -> Vec<Job> {
    let mut mine: Vec<&EmploymentFact> = facts
        .employment
        .iter()
        .filter(|f| &f.id_number == person && day.is_none_or(|day| f.order.date <= day))
        .collect();
    mine.sort_by_key(|f| f.order);
    let mut open: Vec<Job> = Vec::new();
    for fact in mine {
        match &fact.event {
            EmploymentEvent::Started { employer, terms } => {
                // One per employer: a repeated start takes the later terms.
                open.retain(|j| j.employer.as_ref() != Some(employer));
                open.push(Job {
                    employer: Some(employer.clone()),
                    kind: Some(terms.kind),
                    terms: Some(terms.clone()),
                    start: fact.order,
                });
            }
            EmploymentEvent::Ended { employer } => {
                open.retain(|j| j.employer.as_ref() != Some(employer));
            }
            EmploymentEvent::Visited { visit, finding } => match finding {
                Finding::Employed | Finding::Flexible => {
                    if open.is_empty() {
                        open.push(Job {
                            employer: None,
                            kind: (*finding == Finding::Flexible)
                                .then_some(EmploymentKind::Flexible),
                            terms: None,
                            start: fact.order,
                        });
                    }
                }
                Finding::Unemployed => {
                    on_unemployed(visit, fact.order.date, &open);
                    open.clear();
                }
            },
        }
    }
    open
}

fn naive_jobs(facts: &HouseholdFacts, person: &IdNumber, day: NaiveDate) -> Vec<Job> {
    replay(facts, person, Some(day), |_, _, _| {})
}

/// A household's newest snapshot on or before `day`.
fn naive_snapshot<'a>(
    facts: &'a HouseholdFacts,
    household: &str,
    day: NaiveDate,
) -> Option<&'a Registration> {
    facts
        .registrations
        .iter()
        .filter(|r| r.household_id.as_str() == household && r.order.date <= day)
        .max_by_key(|r| r.order)
}

/// Who lives in H1 on `day`: those its snapshot names, unless a newer current
/// snapshot of another household names them too.
fn naive_members(facts: &HouseholdFacts, day: NaiveDate) -> Option<Vec<RegisteredMember>> {
    let own = naive_snapshot(facts, "H1", day)?;
    let households: BTreeSet<&str> = facts
        .registrations
        .iter()
        .map(|r| r.household_id.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    Some(
        own.members
            .iter()
            .filter(|m| seen.insert(m.id_number.clone()))
            .filter(|m| {
                let newest = households
                    .iter()
                    .filter_map(|h| naive_snapshot(facts, h, day))
                    .filter(|r| r.members.iter().any(|o| o.id_number == m.id_number))
                    .max_by_key(|r| r.order);
                newest.is_some_and(|r| r.household_id.as_str() == "H1")
            })
            .cloned()
            .collect(),
    )
}

fn naive_in_labour_force(m: &RegisteredMember, day: NaiveDate) -> bool {
    let category = match m.id_number.sex() {
        Sex::Male => RetirementCategory::M60,
        Sex::Female => RetirementCategory::F55,
    };
    m.able_to_work
        && m.seeking_work
        && matches!(m.status, MemberStatus::None | MemberStatus::Disabled)
        && is_working_age(m.id_number.birth_date(), category, day)
}

fn naive_status(facts: &HouseholdFacts, day: NaiveDate) -> Option<HouseholdStatus> {
    let members = naive_members(facts, day)?;
    Some(
        if members
            .iter()
            .any(|m| !naive_jobs(facts, &m.id_number, day).is_empty())
        {
            HouseholdStatus::Employed
        } else if members.iter().any(|m| naive_in_labour_force(m, day)) {
            HouseholdStatus::ZeroEmployment
        } else {
            HouseholdStatus::NoLabourForce
        },
    )
}

/// Walk back day by day while the household was zero-employment.
fn naive_zero_since(facts: &HouseholdFacts, today: NaiveDate) -> Option<NaiveDate> {
    if naive_status(facts, today)? != HouseholdStatus::ZeroEmployment {
        return None;
    }
    let mut since = today;
    while let Some(before) = since.pred_opt() {
        if naive_status(facts, before) != Some(HouseholdStatus::ZeroEmployment) {
            break;
        }
        since = before;
    }
    Some(since)
}

fn naive_minimum_wage(division_code: &DivisionCode) -> Money {
    let table = [("2103", yuan(2300)), ("210302", yuan(2500))];
    table
        .iter()
        .filter(|(prefix, _)| division_code.as_str().starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(yuan(2100), |(_, wage)| *wage)
}

fn naive_dibao(
    facts: &HouseholdFacts,
    members: &[RegisteredMember],
    day: NaiveDate,
) -> Option<Dibao> {
    let cases: BTreeSet<_> = facts
        .subsidy_changes
        .iter()
        .map(|c| c.case_id.clone())
        .collect();
    cases
        .iter()
        .filter_map(|case| {
            facts
                .subsidy_changes
                .iter()
                .filter(|c| &c.case_id == case && c.order.date <= day)
                .max_by_key(|c| c.order)
        })
        .filter(|c| c.change != SubsidyChangeKind::Revoked)
        .filter(|c| members.iter().any(|m| m.id_number == c.applicant))
        .max_by_key(|c| c.order)
        .map(|c| Dibao {
            case_id: c.case_id.clone(),
            monthly_amount: c.monthly_amount,
        })
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn reconcile_on(facts: &HouseholdFacts, offset: i64) -> Option<Reconciled> {
    reconcile(facts, day(offset), &rules())
}

proptest! {
    #![proptest_config(config())]

    /// (1) The order the facts are handed over in does not matter.
    #[test]
    fn any_permutation_of_the_facts_gives_the_same_result(s in scenario()) {
        let world = s.world();
        let permuted = shuffled(&world.facts, s.seed);
        for &offset in &s.days {
            prop_assert_eq!(reconcile_on(&world.facts, offset), reconcile_on(&permuted, offset));
        }
    }

    /// (2) Redelivered facts (same order) change nothing.
    #[test]
    fn duplicating_facts_changes_nothing(s in scenario()) {
        let world = s.world();
        let doubled = with_duplicates(&world.facts, s.seed);
        for &offset in &s.days {
            prop_assert_eq!(reconcile_on(&world.facts, offset), reconcile_on(&doubled, offset));
        }
    }

    /// (3) Without anyone in the labour force a household is never zero-employment.
    #[test]
    fn nobody_in_the_labour_force_is_never_zero_employment(s in scenario()) {
        let world = s.world();
        for &offset in &s.days {
            let Some(r) = reconcile_on(&world.facts, offset) else { continue };
            let members = naive_members(&world.facts, day(offset)).expect("exists");
            let anyone = members.iter().any(|m| naive_in_labour_force(m, day(offset)));
            if !anyone {
                prop_assert_ne!(r.state.status, HouseholdStatus::ZeroEmployment);
            }
            if r.state.status == HouseholdStatus::ZeroEmployment {
                prop_assert!(r.state.members.iter().any(|m| m.in_labour_force));
                prop_assert!(r.state.members.iter().all(|m| !m.employed));
            }
        }
    }

    /// (4) zero_since is never after today, and is there exactly when zero-employment.
    #[test]
    fn zero_since_is_not_after_today_and_only_when_zero(s in scenario()) {
        let world = s.world();
        for &offset in &s.days {
            let Some(r) = reconcile_on(&world.facts, offset) else { continue };
            let zero = r.state.status == HouseholdStatus::ZeroEmployment;
            prop_assert_eq!(r.state.zero_since.is_some(), zero);
            if let Some(z) = r.state.zero_since {
                prop_assert!(z <= day(offset));
                let exists_from = world
                    .facts
                    .registrations
                    .iter()
                    .filter(|r| r.household_id.as_str() == "H1")
                    .map(|r| r.order.date)
                    .min()
                    .expect("registered");
                prop_assert!(z >= exists_from);
                prop_assert_eq!(z, r.status_since);
            }
            prop_assert!(r.status_since <= day(offset));
        }
    }

    /// (5) Each member's employment, and the household's composition, status
    /// and 低保, agree with the naive replay.
    #[test]
    fn state_agrees_with_a_naive_replay(s in scenario()) {
        let world = s.world();
        for &offset in &s.days {
            let today = day(offset);
            let r = reconcile_on(&world.facts, offset);
            let members = naive_members(&world.facts, today);
            prop_assert_eq!(r.is_some(), members.is_some());
            let (Some(r), Some(members)) = (r, members) else { continue };

            let ids: Vec<&IdNumber> = members.iter().map(|m| &m.id_number).collect();
            let reported: Vec<&IdNumber> = r.state.members.iter().map(|m| &m.id_number).collect();
            prop_assert_eq!(&reported, &ids);

            let division_code = &naive_snapshot(&world.facts, "H1", today).expect("exists").division_code;
            prop_assert_eq!(&r.state.division_code, division_code);
            let minimum_wage = naive_minimum_wage(division_code);

            let mut employed = 0;
            for m in &r.state.members {
                let jobs = naive_jobs(&world.facts, &m.id_number, today);
                prop_assert_eq!(m.employed, !jobs.is_empty(), "employed {} on {}", m.id_number, today);
                let latest = jobs.iter().max_by_key(|j| j.start);
                prop_assert_eq!(m.employment_kind, latest.and_then(|j| j.kind));
                prop_assert_eq!(&m.employer_uscc, &latest.and_then(|j| j.employer.clone()));
                let stable = jobs.iter().any(|j| j.terms.as_ref().is_some_and(|t| {
                    t.contract_months.is_none_or(|months| months >= 12)
                        && t.monthly_wage >= minimum_wage
                        && t.social_insurance
                }));
                prop_assert_eq!(m.stable, stable, "stable {} on {}", m.id_number, today);
                let member = members.iter().find(|x| x.id_number == m.id_number).expect("listed");
                prop_assert_eq!(m.in_labour_force, naive_in_labour_force(member, today));
                prop_assert_eq!(m.birth_date, m.id_number.birth_date());
                employed += usize::from(m.employed);
            }
            prop_assert_eq!(r.state.dual_employment, employed >= 2);
            prop_assert_eq!(Some(r.state.status), naive_status(&world.facts, today));
            prop_assert_eq!(&r.state.dibao, &naive_dibao(&world.facts, &members, today));
            prop_assert_eq!(r.state.zero_since, naive_zero_since(&world.facts, today));
            let last_visit = world.facts.visits.iter().map(|v| v.order.date).filter(|v| *v <= today).max();
            prop_assert_eq!(r.last_visit, last_visit);
        }
    }

    /// (6) zero_since z: zero-employment on every day from z to today, and not
    /// on the day before z (or the household did not exist yet).
    #[test]
    fn zero_since_starts_the_run_of_zero_days_reaching_today(s in scenario()) {
        let world = s.world();
        let rules = rules();
        for &offset in &s.days {
            let today = day(offset);
            let Some(r) = reconcile(&world.facts, today, &rules) else { continue };
            let Some(z) = r.state.zero_since else { continue };
            let length = (today - z).num_days();
            // Short runs day by day; long ones at both ends.
            let days = (0..=length).filter(|k| length <= 90 || *k < 45 || *k > length - 45);
            for k in days {
                let on = z + Days::new(k as u64);
                prop_assert_eq!(
                    status_on(&world.facts, &[], on, &rules),
                    Some(HouseholdStatus::ZeroEmployment),
                    "day {} of a run from {} to {}", on, z, today
                );
            }
            let before = z.pred_opt().expect("a real date");
            prop_assert_ne!(
                status_on(&world.facts, &[], before, &rules),
                Some(HouseholdStatus::ZeroEmployment),
                "the day before zero_since {}", z
            );
        }
    }

    /// Nothing about the state changes before `next_change` without a new fact.
    #[test]
    fn state_is_constant_until_next_change(s in scenario()) {
        let world = s.world();
        let rules = rules();
        for &offset in &s.days {
            let today = day(offset);
            let Some(r) = reconcile(&world.facts, today, &rules) else { continue };
            let until = r.next_change.unwrap_or(today + Days::new(800));
            prop_assert!(until > today);
            let span = (until - today).num_days();
            for k in [1, span / 2, span - 1].into_iter().filter(|k| (1..span).contains(k)) {
                let later = today + Days::new(k as u64);
                let state = reconcile(&world.facts, later, &rules).map(|r| r.state);
                prop_assert_eq!(state.as_ref(), Some(&r.state), "{} vs {}", later, today);
            }
        }
    }

    /// Conflicts are exactly the `unemployed` findings that meet an open HR
    /// employment, one per (visit, person).
    #[test]
    fn conflicts_agree_with_a_naive_replay(s in scenario()) {
        let world = s.world();
        let mut expected: BTreeSet<(String, IdNumber, NaiveDate)> = BTreeSet::new();
        let mut employers: Vec<(String, IdNumber, Vec<Uscc>)> = Vec::new();
        for person in &world.people {
            replay(&world.facts, person, None, |visit, date, open| {
                let hr: Vec<Uscc> = open.iter().filter_map(|j| j.employer.clone()).collect();
                if !hr.is_empty() {
                    expected.insert((visit.key.clone(), person.clone(), date));
                    employers.push((visit.key.clone(), person.clone(), hr));
                }
            });
        }
        for &offset in &s.days {
            let Some(r) = reconcile_on(&world.facts, offset) else { continue };
            let found: BTreeSet<(String, IdNumber, NaiveDate)> = r
                .conflicts
                .iter()
                .map(|c| (c.visit.key.clone(), c.id_number.clone(), c.visit_date))
                .collect();
            prop_assert_eq!(found.len(), r.conflicts.len(), "one per (visit, person)");
            prop_assert_eq!(&found, &expected);
            for c in &r.conflicts {
                let (_, _, hr) = employers
                    .iter()
                    .find(|(k, p, _)| *k == c.visit.key && *p == c.id_number)
                    .expect("expected");
                prop_assert!(hr.contains(&c.employer_uscc));
            }
        }
    }
}

//! Reconciliation: a household's facts and a date in, its state out.
//!
//! A pure fold. The caller hands over every fact that can bear on one household
//! ([`HouseholdFacts`]); this module decides who lives there on each day, who
//! is of working age and in the labour force, who is employed, and from that
//! the household's status, `zero_since`, dual employment and 低保.

use crate::facts::{
    EmploymentEvent, EmploymentFact, EmploymentKind, Finding, MemberStatus, Order,
    RegisteredMember, Registration, SubsidyChange, SubsidyChangeKind, Terms, Visit, VisitRef,
};
use crate::ids::{CaseId, DivisionCode, HouseholdId, IdNumber, Money, Sex, Uscc};
use crate::retirement::{RetirementCategory, is_working_age, retirement_date, sixteenth_birthday};
use crate::rules::Rules;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// Everything that can bear on one household's state.
///
/// The caller may hand over more than is needed (facts of people who never
/// lived there are ignored), never less:
/// - `registrations`: the household's own, and every registration of another
///   household that names a person the household ever named (that is how people move);
/// - `employment`: every employment fact of every person the household ever named;
/// - `visits`: the household's own visits;
/// - `subsidy_changes`: every change of a case whose applicant the household ever named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdFacts {
    pub household_id: HouseholdId,
    pub registrations: Vec<Registration>,
    pub employment: Vec<EmploymentFact>,
    pub visits: Vec<Visit>,
    pub subsidy_changes: Vec<SubsidyChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HouseholdStatus {
    /// 零就业家庭
    ZeroEmployment,
    Employed,
    NoLabourForce,
}

impl HouseholdStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HouseholdStatus::ZeroEmployment => "zero_employment",
            HouseholdStatus::Employed => "employed",
            HouseholdStatus::NoLabourForce => "no_labour_force",
        }
    }
}

/// The household's active 低保 case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dibao {
    pub case_id: CaseId,
    pub monthly_amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub id_number: IdNumber,
    pub name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub in_labour_force: bool,
    pub employed: bool,
    pub employment_kind: Option<EmploymentKind>,
    pub employer_uscc: Option<Uscc>,
    /// 稳定就业
    pub stable: bool,
}

/// A household's reconciled state as of one day: the `data` of
/// `dynzero.household.state` without `version` and `caused_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdState {
    pub household_id: HouseholdId,
    pub division_code: DivisionCode,
    pub status: HouseholdStatus,
    pub zero_since: Option<NaiveDate>,
    /// 双就业: two or more members employed.
    pub dual_employment: bool,
    pub dibao: Option<Dibao>,
    pub members: Vec<MemberState>,
}

/// A visit found a person unemployed while an HR system had them employed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conflict {
    pub visit: VisitRef,
    pub id_number: IdNumber,
    pub visit_date: NaiveDate,
    pub employer_uscc: Uscc,
}

/// The outcome of reconciling a household on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub state: HouseholdState,
    /// First day of the run of days with today's status that reaches today.
    pub status_since: NaiveDate,
    /// The latest visit on or before today.
    pub last_visit: Option<NaiveDate>,
    /// Every conflict among this household's visits, in (date, time, arrival) order.
    pub conflicts: Vec<Conflict>,
    /// The next day after today on which the state may change without any new
    /// fact (a dated fact comes into force, a member turns 16 or retires).
    pub next_change: Option<NaiveDate>,
}

/// Reconcile a household as of `today`. `None` when the household does not
/// exist yet (no registration on or before today).
pub fn reconcile(facts: &HouseholdFacts, today: NaiveDate, rules: &Rules) -> Option<Reconciled> {
    let fold = Fold::new(facts, &[], today, rules);
    let current = fold.snapshot_on(today)?;
    let members = fold.members_on(today);
    let minimum_wage = rules.minimum_wage.for_division(&current.division_code);
    let member_states: Vec<MemberState> = members
        .iter()
        .map(|m| fold.member_state(m, today, minimum_wage))
        .collect();
    let status = fold.status_on(today);
    let status_since = fold.status_since(today, status);
    let employed_count = member_states.iter().filter(|m| m.employed).count();
    let state = HouseholdState {
        household_id: facts.household_id.clone(),
        division_code: current.division_code.clone(),
        status,
        zero_since: (status == HouseholdStatus::ZeroEmployment).then_some(status_since),
        dual_employment: employed_count >= 2,
        dibao: fold.dibao(&members, today),
        members: member_states,
    };
    let last_visit = facts
        .visits
        .iter()
        .filter(|v| v.household_id == facts.household_id && v.order.date <= today)
        .map(|v| v.order.date)
        .max();
    Some(Reconciled {
        state,
        status_since,
        last_visit,
        conflicts: fold.conflicts(),
        next_change: fold.next_change(today),
    })
}

/// The household's status on `day`, with `extra` employment facts added to
/// what is known (to ask "what if"). `None` when it does not exist on `day`.
pub fn status_on(
    facts: &HouseholdFacts,
    extra: &[EmploymentFact],
    day: NaiveDate,
    rules: &Rules,
) -> Option<HouseholdStatus> {
    let fold = Fold::new(facts, extra, day, rules);
    fold.snapshot_on(day)?;
    Some(fold.status_on(day))
}

/// Who lives in the household on `day`.
pub fn members_on(facts: &HouseholdFacts, day: NaiveDate, rules: &Rules) -> Vec<IdNumber> {
    let fold = Fold::new(facts, &[], day, rules);
    fold.members_on(day)
        .into_iter()
        .map(|m| m.id_number.clone())
        .collect()
}

/// One employment as the timeline holds it.
#[derive(Debug, Clone)]
struct Employment {
    /// `None` for an employment only a visit knows of.
    employer: Option<Uscc>,
    kind: Option<EmploymentKind>,
    /// Only an HR registration carries terms; only it can be stable.
    terms: Option<Terms>,
    /// The order of the latest start: decides which open employment a member reports.
    started: Order,
}

/// One person's employment over time.
#[derive(Debug, Default)]
struct Timeline {
    /// Employed at the end of each date where that changed, in date order.
    changes: Vec<(NaiveDate, bool)>,
    /// Open employments at the end of `today`.
    open_today: Vec<Employment>,
    conflicts: Vec<(Order, Conflict)>,
}

impl Timeline {
    fn build(id_number: &IdNumber, mut events: Vec<&EmploymentFact>, today: NaiveDate) -> Self {
        events.sort_by(|a, b| {
            a.order
                .cmp(&b.order)
                .then(rank(&a.event).cmp(&rank(&b.event)))
        });
        let mut timeline = Timeline::default();
        let mut open: Vec<Employment> = Vec::new();
        let mut captured_today = false;
        for (i, fact) in events.iter().enumerate() {
            if !captured_today && fact.order.date > today {
                timeline.open_today = open.clone();
                captured_today = true;
            }
            match &fact.event {
                EmploymentEvent::Started { employer, terms } => {
                    match open
                        .iter_mut()
                        .find(|e| e.employer.as_ref() == Some(employer))
                    {
                        Some(e) => {
                            e.kind = Some(terms.kind);
                            e.terms = Some(terms.clone());
                            e.started = fact.order;
                        }
                        None => open.push(Employment {
                            employer: Some(employer.clone()),
                            kind: Some(terms.kind),
                            terms: Some(terms.clone()),
                            started: fact.order,
                        }),
                    }
                }
                EmploymentEvent::Ended { employer } => {
                    open.retain(|e| e.employer.as_ref() != Some(employer));
                }
                EmploymentEvent::Visited { visit, finding } => match finding {
                    Finding::Employed | Finding::Flexible => {
                        if open.is_empty() {
                            open.push(Employment {
                                employer: None,
                                kind: (*finding == Finding::Flexible)
                                    .then_some(EmploymentKind::Flexible),
                                terms: None,
                                started: fact.order,
                            });
                        }
                    }
                    Finding::Unemployed => {
                        // Only an HR registration has terms and an employer.
                        let hr = open
                            .iter()
                            .filter(|e| e.terms.is_some())
                            .filter_map(|e| e.employer.as_ref().map(|u| (e.started, u)))
                            .max_by_key(|(started, _)| *started);
                        if let Some((_, employer)) = hr {
                            let conflict = Conflict {
                                visit: visit.clone(),
                                id_number: id_number.clone(),
                                visit_date: fact.order.date,
                                employer_uscc: employer.clone(),
                            };
                            timeline.conflicts.push((fact.order, conflict));
                        }
                        open.clear();
                    }
                },
            }
            let end_of_day = events
                .get(i + 1)
                .is_none_or(|next| next.order.date != fact.order.date);
            if end_of_day {
                let employed = !open.is_empty();
                let last = timeline.changes.last().map(|(_, e)| *e).unwrap_or(false);
                if employed != last {
                    timeline.changes.push((fact.order.date, employed));
                }
            }
        }
        if !captured_today {
            timeline.open_today = open;
        }
        timeline
    }

    fn employed_on(&self, day: NaiveDate) -> bool {
        let i = self.changes.partition_point(|(d, _)| *d <= day);
        i > 0 && self.changes[i - 1].1
    }
}

/// Same-order facts of one person are applied ends first, then starts, so a
/// permutation of the input cannot change the outcome. A visit naming a person
/// twice applies `flexible` before `employed`: the first opens, the second
/// confirms, whatever order the findings were handed over in.
fn rank(event: &EmploymentEvent) -> u8 {
    match event {
        EmploymentEvent::Visited {
            finding: Finding::Unemployed,
            ..
        } => 0,
        EmploymentEvent::Ended { .. } => 1,
        EmploymentEvent::Started { .. } => 2,
        EmploymentEvent::Visited {
            finding: Finding::Flexible,
            ..
        } => 3,
        EmploymentEvent::Visited {
            finding: Finding::Employed,
            ..
        } => 4,
    }
}

struct Fold<'a> {
    facts: &'a HouseholdFacts,
    rules: &'a Rules,
    /// The household's own snapshots, in order.
    own: Vec<&'a Registration>,
    /// Other households' snapshots, in order, by household.
    others: BTreeMap<&'a HouseholdId, Vec<&'a Registration>>,
    /// Everyone the household ever named.
    timelines: BTreeMap<&'a IdNumber, Timeline>,
    /// Every day on which the status may change.
    change_points: BTreeSet<NaiveDate>,
}

impl<'a> Fold<'a> {
    fn new(
        facts: &'a HouseholdFacts,
        extra: &'a [EmploymentFact],
        today: NaiveDate,
        rules: &'a Rules,
    ) -> Self {
        let mut own: Vec<&Registration> = Vec::new();
        let mut others: BTreeMap<&HouseholdId, Vec<&Registration>> = BTreeMap::new();
        for registration in &facts.registrations {
            if registration.household_id == facts.household_id {
                own.push(registration);
            } else {
                others
                    .entry(&registration.household_id)
                    .or_default()
                    .push(registration);
            }
        }
        own.sort_by_key(|r| r.order);
        for list in others.values_mut() {
            list.sort_by_key(|r| r.order);
        }

        let people: BTreeSet<&IdNumber> = own
            .iter()
            .flat_map(|r| r.members.iter().map(|m| &m.id_number))
            .collect();
        let mut by_person: BTreeMap<&IdNumber, Vec<&EmploymentFact>> =
            people.iter().map(|p| (*p, Vec::new())).collect();
        for fact in facts.employment.iter().chain(extra) {
            if let Some(list) = by_person.get_mut(&fact.id_number) {
                list.push(fact);
            }
        }

        let mut change_points: BTreeSet<NaiveDate> = BTreeSet::new();
        change_points.extend(own.iter().map(|r| r.order.date));
        for list in others.values() {
            change_points.extend(list.iter().map(|r| r.order.date));
        }
        for person in &people {
            let birth = person.birth_date();
            change_points.insert(sixteenth_birthday(birth));
            change_points.insert(retirement_date(birth, category(person, rules)));
        }
        let timelines = by_person
            .into_iter()
            .map(|(person, events)| {
                change_points.extend(events.iter().map(|e| e.order.date));
                (person, Timeline::build(person, events, today))
            })
            .collect();
        Fold {
            facts,
            rules,
            own,
            others,
            timelines,
            change_points,
        }
    }

    fn snapshot_on(&self, day: NaiveDate) -> Option<&'a Registration> {
        current(&self.own, day)
    }

    fn members_on(&self, day: NaiveDate) -> Vec<&'a RegisteredMember> {
        let Some(snapshot) = self.snapshot_on(day) else {
            return Vec::new();
        };
        let mut seen: BTreeSet<&IdNumber> = BTreeSet::new();
        snapshot
            .members
            .iter()
            .filter(|m| seen.insert(&m.id_number))
            .filter(|m| {
                !self.others.values().any(|list| {
                    current(list, day).is_some_and(|other| {
                        (other.order, &other.household_id)
                            > (snapshot.order, &snapshot.household_id)
                            && other.members.iter().any(|o| o.id_number == m.id_number)
                    })
                })
            })
            .collect()
    }

    fn employed_on(&self, person: &IdNumber, day: NaiveDate) -> bool {
        self.timelines
            .get(person)
            .is_some_and(|t| t.employed_on(day))
    }

    fn in_labour_force(&self, member: &RegisteredMember, day: NaiveDate) -> bool {
        member.able_to_work
            && member.seeking_work
            && matches!(member.status, MemberStatus::None | MemberStatus::Disabled)
            && is_working_age(
                member.id_number.birth_date(),
                category(&member.id_number, self.rules),
                day,
            )
    }

    fn status_on(&self, day: NaiveDate) -> HouseholdStatus {
        let members = self.members_on(day);
        if members.iter().any(|m| self.employed_on(&m.id_number, day)) {
            HouseholdStatus::Employed
        } else if members.iter().any(|m| self.in_labour_force(m, day)) {
            HouseholdStatus::ZeroEmployment
        } else {
            HouseholdStatus::NoLabourForce
        }
    }

    /// The status is constant between change points, so walking back over
    /// them finds where today's run began.
    fn status_since(&self, today: NaiveDate, status: HouseholdStatus) -> NaiveDate {
        let exists_from = self.own[0].order.date;
        let points: Vec<NaiveDate> = self
            .change_points
            .range(exists_from..=today)
            .copied()
            .collect();
        let mut since = exists_from;
        for (i, point) in points.iter().enumerate().rev() {
            if self.status_on(*point) != status {
                since = points.get(i + 1).copied().unwrap_or(today);
                break;
            }
        }
        since
    }

    fn member_state(
        &self,
        member: &RegisteredMember,
        today: NaiveDate,
        minimum_wage: Money,
    ) -> MemberState {
        let open: &[Employment] = self
            .timelines
            .get(&member.id_number)
            .map_or(&[], |t| t.open_today.as_slice());
        let latest = open.iter().max_by_key(|e| e.started);
        let stable = open.iter().any(|e| {
            e.terms.as_ref().is_some_and(|t| {
                t.contract_months
                    .is_none_or(|months| months >= Rules::STABLE_CONTRACT_MONTHS)
                    && t.monthly_wage >= minimum_wage
                    && t.social_insurance
            })
        });
        MemberState {
            id_number: member.id_number.clone(),
            name: member.name.clone(),
            birth_date: member.id_number.birth_date(),
            sex: member.id_number.sex(),
            in_labour_force: self.in_labour_force(member, today),
            employed: self.employed_on(&member.id_number, today),
            employment_kind: latest.and_then(|e| e.kind),
            employer_uscc: latest.and_then(|e| e.employer.clone()),
            stable,
        }
    }

    /// Of the cases whose applicant lives here today and whose latest change
    /// on or before today is not a revocation, the newest.
    fn dibao(&self, members: &[&RegisteredMember], today: NaiveDate) -> Option<Dibao> {
        let mut latest: BTreeMap<&CaseId, &SubsidyChange> = BTreeMap::new();
        for change in self
            .facts
            .subsidy_changes
            .iter()
            .filter(|c| c.order.date <= today)
        {
            let entry = latest.entry(&change.case_id).or_insert(change);
            if (change.order, subsidy_rank(change)) > (entry.order, subsidy_rank(entry)) {
                *entry = change;
            }
        }
        latest
            .into_values()
            .filter(|c| c.change != SubsidyChangeKind::Revoked)
            .filter(|c| members.iter().any(|m| m.id_number == c.applicant))
            .max_by(|a, b| (a.order, &a.case_id).cmp(&(b.order, &b.case_id)))
            .map(|c| Dibao {
                case_id: c.case_id.clone(),
                monthly_amount: c.monthly_amount,
            })
    }

    fn conflicts(&self) -> Vec<Conflict> {
        let mut all: Vec<&(Order, Conflict)> = self
            .timelines
            .values()
            .flat_map(|t| t.conflicts.iter())
            .filter(|(_, c)| c.visit.household_id == self.facts.household_id)
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id_number.cmp(&b.1.id_number)));
        let mut seen = BTreeSet::new();
        all.into_iter()
            .filter(|(_, c)| seen.insert((c.visit.key.clone(), c.id_number.clone())))
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn next_change(&self, today: NaiveDate) -> Option<NaiveDate> {
        let after = today.succ_opt()?;
        let subsidy = self
            .facts
            .subsidy_changes
            .iter()
            .map(|c| c.order.date)
            .filter(|d| *d > today)
            .min();
        let point = self.change_points.range(after..).next().copied();
        [point, subsidy].into_iter().flatten().min()
    }
}

/// Same-order changes of one case: a revocation wins, so permutations agree.
fn subsidy_rank(change: &SubsidyChange) -> (u8, Money) {
    let kind = match change.change {
        SubsidyChangeKind::Granted => 0,
        SubsidyChangeKind::Adjusted => 1,
        SubsidyChangeKind::Revoked => 2,
    };
    (kind, change.monthly_amount)
}

fn category(person: &IdNumber, rules: &Rules) -> RetirementCategory {
    RetirementCategory::of(person.sex(), rules.female_category)
}

/// The newest snapshot on or before `day` of one household's ordered snapshots.
fn current<'a>(snapshots: &[&'a Registration], day: NaiveDate) -> Option<&'a Registration> {
    let n = snapshots.partition_point(|r| r.order.date <= day);
    n.checked_sub(1).map(|i| snapshots[i])
}

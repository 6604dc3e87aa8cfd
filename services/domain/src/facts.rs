//! The facts the hub learns from its sources, as domain values.
//!
//! Every fact carries its [`Order`]: facts are applied by effective date, then
//! the source's `time`, then arrival at the hub — never in order of arrival.

use crate::ids::{CaseId, DivisionCode, HouseholdId, IdNumber, Money, NoticeId, PostingId, Uscc};
use chrono::{DateTime, NaiveDate, Utc};

/// Where a fact stands in the order facts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Order {
    /// The fact's effective date (`effective_date`, `start_date`, `visit_date`, ...).
    pub date: NaiveDate,
    /// When the source produced the fact (CloudEvents `time`).
    pub time: DateTime<Utc>,
    /// Arrival sequence at the hub: the last tie-break.
    pub arrival: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Head,
    Spouse,
    Child,
    Parent,
    Sibling,
    Other,
}

/// A member's situation besides employment (在校生, 退休, 服兵役, 残疾).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    None,
    Student,
    Retired,
    Military,
    Disabled,
}

/// One person as a registration (申报登记) names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredMember {
    pub id_number: IdNumber,
    pub name: String,
    pub relation: Relation,
    /// 有劳动能力
    pub able_to_work: bool,
    /// 有就业愿望
    pub seeking_work: bool,
    pub status: MemberStatus,
}

/// A full snapshot of a household's composition from `order.date` (its `effective_date`) on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub household_id: HouseholdId,
    pub division_code: DivisionCode,
    pub address: Option<String>,
    pub members: Vec<RegisteredMember>,
    pub order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmploymentKind {
    Formal,
    PublicWelfare,
    Flexible,
}

/// The terms of an employment registration (就业登记).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub kind: EmploymentKind,
    /// `None` is open-ended (无固定期限).
    pub contract_months: Option<u32>,
    pub monthly_wage: Money,
    pub social_insurance: bool,
}

/// What a community worker found about one person on a home visit (入户调查).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finding {
    Employed,
    Flexible,
    Unemployed,
}

/// Which visit a finding came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitRef {
    pub household_id: HouseholdId,
    /// The inbound event's `"<source> <id>"`: one conflict alert per (visit, person).
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmploymentEvent {
    /// `employment.started` from an HR system.
    Started { employer: Uscc, terms: Terms },
    /// `employment.ended`, or an `effective` layoff listing the person.
    Ended { employer: Uscc },
    /// A visit finding.
    Visited { visit: VisitRef, finding: Finding },
}

/// One fact about one person's employment; `order.date` is its effective date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmploymentFact {
    pub id_number: IdNumber,
    pub order: Order,
    pub event: EmploymentEvent,
}

/// A home visit of a household; `order.date` is the `visit_date`. Its findings
/// are [`EmploymentFact`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub household_id: HouseholdId,
    pub order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubsidyChangeKind {
    Granted,
    Adjusted,
    Revoked,
}

/// A change of a 低保 case; `order.date` is its `effective_date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsidyChange {
    pub case_id: CaseId,
    pub applicant: IdNumber,
    pub change: SubsidyChangeKind,
    pub monthly_amount: Money,
    pub order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoffStage {
    Planned,
    Effective,
    Withdrawn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub uscc: Uscc,
    pub name: String,
    /// Staff before the layoff.
    pub headcount: u32,
    /// Of any level.
    pub division_code: DivisionCode,
}

/// An economic layoff report (经济性裁员报告); `order.date` is its `effective_date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoffNotice {
    pub notice_id: NoticeId,
    pub stage: LayoffStage,
    pub enterprise: Enterprise,
    pub employees: Vec<(IdNumber, String)>,
    pub order: Order,
}

impl LayoffNotice {
    pub fn effective_date(&self) -> NaiveDate {
        self.order.date
    }

    /// The people listed, each once.
    pub fn count(&self) -> u32 {
        let mut ids: Vec<&IdNumber> = self.employees.iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        ids.len() as u32
    }

    /// The `Ended` facts an `effective` notice means for each listed person.
    pub fn employment_ends(&self) -> Vec<EmploymentFact> {
        self.employees
            .iter()
            .map(|(id_number, _)| EmploymentFact {
                id_number: id_number.clone(),
                order: self.order,
                event: EmploymentEvent::Ended {
                    employer: self.enterprise.uscc.clone(),
                },
            })
            .collect()
    }
}

/// A vacancy (岗位); `order.date` is the day it was published (its `time`'s date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPosting {
    pub posting_id: PostingId,
    pub employer: Uscc,
    pub employer_name: String,
    pub title: String,
    pub openings: u32,
    pub division_code: DivisionCode,
    pub monthly_wage: Money,
    pub contract_months: Option<u32>,
    pub social_insurance: bool,
    pub public_welfare: bool,
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
    pub valid_until: NaiveDate,
}

//! Test-data builders for the reconciliation and alert tests (and the bench).
//!
//! Identifiers are built valid from their parts: the check characters are
//! computed here from the standards (GB 11643 ISO 7064 MOD 11-2, GB 32100
//! MOD 31), not borrowed from the crate, so a fixture never depends on the
//! code it tests. Every fact gets a fresh arrival number and a `time` that
//! grows with it, so "added later" means "arrived later".

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use chrono::{DateTime, Duration, NaiveDate, Utc};
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, EmploymentKind, Enterprise, Finding, LayoffNotice,
    LayoffStage, MemberStatus, Order, RegisteredMember, Registration, Relation, SubsidyChange,
    SubsidyChangeKind, Terms, Visit, VisitRef,
};
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, IdentifierError, Money, Sex, Uscc};
use dynzero_domain::reconcile::HouseholdFacts;

/// Id numbers are parsed as of this day, so any test birth date is in the past.
const PARSE_DAY: (i32, u32, u32) = (2099, 12, 31);

/// The community every test household lives in unless a test says otherwise.
pub const DIVISION: &str = "210302001002";

/// `"2026-05-01"`.
pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("bad test date {s}: {e}"))
}

/// `"2026-05-01T17:00:00Z"`.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
        .with_timezone(&Utc)
}

/// GB 11643-1999 check character: ISO 7064 MOD 11-2 with weights 2^(17-i) mod 11.
pub fn gb11643_check(first17: &str) -> char {
    assert_eq!(first17.len(), 17, "{first17}");
    let sum: u32 = first17
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * ((1u32 << (17 - i)) % 11))
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        r => char::from_digit(r, 10).expect("a digit"),
    }
}

/// A valid id number for a person born on `birth` of `sex`; `n` (0–499)
/// keeps people with the same birth date apart.
pub fn person(birth: NaiveDate, sex: Sex, n: u16) -> IdNumber {
    assert!(n < 500, "sequence {n} out of range");
    let sequence = n * 2 + u16::from(sex == Sex::Male);
    let first17 = format!("210302{}{sequence:03}", birth.format("%Y%m%d"));
    let text = format!("{first17}{}", gb11643_check(&first17));
    let (y, m, dd) = PARSE_DAY;
    let parse_day = NaiveDate::from_ymd_opt(y, m, dd).expect("a real date");
    IdNumber::parse(&text, parse_day).unwrap_or_else(|e| panic!("fixture {text}: {e}"))
}

pub fn man(birth: &str, n: u16) -> IdNumber {
    person(d(birth), Sex::Male, n)
}

pub fn woman(birth: &str, n: u16) -> IdNumber {
    person(d(birth), Sex::Female, n)
}

/// The GB 32100-2015 alphabet; a character's value is its index.
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// GB 32100-2015 check character: MOD 31 over the weighted values.
pub fn gb32100_check(first17: &str) -> char {
    let sum: u32 = first17
        .bytes()
        .zip(USCC_WEIGHTS)
        .map(|(b, w)| {
            let value = USCC_CHARSET
                .iter()
                .position(|&c| c == b)
                .unwrap_or_else(|| panic!("{} is not a USCC character", char::from(b)));
            value as u32 * w
        })
        .sum();
    char::from(USCC_CHARSET[((31 - sum % 31) % 31) as usize])
}

/// A valid USCC of an enterprise registered in Anshan; `n` tells enterprises apart.
pub fn employer(n: u32) -> Uscc {
    let first17 = format!("91210300MA{n:07}");
    let text = format!("{first17}{}", gb32100_check(&first17));
    Uscc::parse(&text).unwrap_or_else(|e| panic!("fixture {text}: {e}"))
}

/// A household, case, notice or posting id: which one, the place it goes says.
pub fn key<K: std::str::FromStr<Err = IdentifierError>>(s: &str) -> K {
    s.parse().unwrap_or_else(|e| panic!("fixture key {s}: {e}"))
}

pub fn division(s: &str) -> DivisionCode {
    DivisionCode::parse(s).unwrap_or_else(|e| panic!("fixture division {s}: {e}"))
}

pub fn yuan(amount: i64) -> Money {
    fen(amount * 100)
}

pub fn fen(amount: i64) -> Money {
    Money::from_fen(amount).expect("a non-negative amount")
}

/// Where a fact stands, with a `time` on its date that grows with `arrival`.
pub fn order(date: NaiveDate, arrival: i64) -> Order {
    // 09:00 in Shanghai, so the time's Shanghai date is the fact's date.
    let morning = date.and_hms_opt(1, 0, 0).expect("a real time").and_utc();
    Order {
        date,
        time: morning + Duration::seconds(arrival),
        arrival,
    }
}

/// A member with the contract's defaults: able, seeking work, no special status.
pub fn member(id_number: &IdNumber) -> RegisteredMember {
    RegisteredMember {
        id_number: id_number.clone(),
        name: name_of(id_number),
        relation: Relation::Head,
        able_to_work: true,
        seeking_work: true,
        status: MemberStatus::None,
    }
}

pub fn member_with(id_number: &IdNumber, status: MemberStatus) -> RegisteredMember {
    RegisteredMember {
        status,
        ..member(id_number)
    }
}

/// A readable, deterministic name: 成员 and the last four characters.
pub fn name_of(id_number: &IdNumber) -> String {
    format!("成员{}", &id_number.as_str()[14..])
}

/// Terms of a stable formal job under the default minimum wage (2,100 yuan).
pub fn stable_terms() -> Terms {
    Terms {
        kind: EmploymentKind::Formal,
        contract_months: Some(12),
        monthly_wage: yuan(3000),
        social_insurance: true,
    }
}

pub fn terms(
    kind: EmploymentKind,
    contract_months: Option<u32>,
    monthly_wage: Money,
    social_insurance: bool,
) -> Terms {
    Terms {
        kind,
        contract_months,
        monthly_wage,
        social_insurance,
    }
}

/// A layoff notice of `enterprise` (headcount before the layoff) listing `employees`.
pub fn layoff(
    notice_id: &str,
    stage: LayoffStage,
    enterprise: &Uscc,
    headcount: u32,
    employees: &[IdNumber],
    order: Order,
) -> LayoffNotice {
    LayoffNotice {
        notice_id: key(notice_id),
        stage,
        enterprise: Enterprise {
            uscc: enterprise.clone(),
            name: "鞍山某机械厂".to_owned(),
            headcount,
            division_code: division("210302000000"),
        },
        employees: employees
            .iter()
            .map(|id| (id.clone(), name_of(id)))
            .collect(),
        order,
    }
}

/// `n` distinct people, for layoff sizes.
pub fn people(n: u16) -> Vec<IdNumber> {
    (0..n).map(|i| man("1990-01-01", i)).collect()
}

/// Builds the [`HouseholdFacts`] of one household, fact by fact, in arrival order.
#[derive(Debug, Clone)]
pub struct Household {
    facts: HouseholdFacts,
    division: DivisionCode,
    next_arrival: i64,
}

impl Household {
    pub fn new(household_id: &str) -> Self {
        Self::in_division(household_id, DIVISION)
    }

    pub fn in_division(household_id: &str, division_code: &str) -> Self {
        Household {
            facts: HouseholdFacts {
                household_id: key(household_id),
                registrations: Vec::new(),
                employment: Vec::new(),
                visits: Vec::new(),
                subsidy_changes: Vec::new(),
            },
            division: division(division_code),
            next_arrival: 1,
        }
    }

    pub fn id(&self) -> HouseholdId {
        self.facts.household_id.clone()
    }

    pub fn facts(&self) -> &HouseholdFacts {
        &self.facts
    }

    /// The next arrival's order on `date`.
    pub fn next_order(&mut self, date: NaiveDate) -> Order {
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        order(date, arrival)
    }

    /// A snapshot of this household from `date` on.
    pub fn register(&mut self, date: NaiveDate, members: Vec<RegisteredMember>) -> Order {
        let household_id = self.facts.household_id.clone();
        let division_code = self.division.clone();
        self.register_as(household_id, division_code, date, members)
    }

    /// A snapshot of another household (in the same community) that names
    /// some of this household's people: how people move.
    pub fn register_other(
        &mut self,
        household_id: &str,
        date: NaiveDate,
        members: Vec<RegisteredMember>,
    ) -> Order {
        let division_code = self.division.clone();
        self.register_as(key(household_id), division_code, date, members)
    }

    fn register_as(
        &mut self,
        household_id: HouseholdId,
        division_code: DivisionCode,
        date: NaiveDate,
        members: Vec<RegisteredMember>,
    ) -> Order {
        let order = self.next_order(date);
        self.facts.registrations.push(Registration {
            household_id,
            division_code,
            address: Some("铁东区某小区".to_owned()),
            members,
            order,
        });
        order
    }

    /// `employment.started` with stable terms.
    pub fn start(&mut self, person: &IdNumber, employer: &Uscc, date: NaiveDate) -> Order {
        self.start_with(person, employer, date, stable_terms())
    }

    pub fn start_with(
        &mut self,
        person: &IdNumber,
        employer: &Uscc,
        date: NaiveDate,
        terms: Terms,
    ) -> Order {
        let order = self.next_order(date);
        self.employment(EmploymentFact {
            id_number: person.clone(),
            order,
            event: EmploymentEvent::Started {
                employer: employer.clone(),
                terms,
            },
        });
        order
    }

    /// `employment.ended`; `date` is the first day without the employment.
    pub fn end(&mut self, person: &IdNumber, employer: &Uscc, date: NaiveDate) -> Order {
        let order = self.next_order(date);
        self.employment(EmploymentFact {
            id_number: person.clone(),
            order,
            event: EmploymentEvent::Ended {
                employer: employer.clone(),
            },
        });
        order
    }

    /// A home visit of this household with its findings.
    pub fn visit(&mut self, date: NaiveDate, findings: &[(&IdNumber, Finding)]) -> VisitRef {
        let household_id = self.facts.household_id.clone();
        self.visit_of(household_id, date, findings)
    }

    /// A home visit of another household (a person who moved there).
    pub fn visit_of(
        &mut self,
        household_id: HouseholdId,
        date: NaiveDate,
        findings: &[(&IdNumber, Finding)],
    ) -> VisitRef {
        let order = self.next_order(date);
        let visit = VisitRef {
            household_id: household_id.clone(),
            key: format!("community-app visit-{}", order.arrival),
        };
        self.facts.visits.push(Visit {
            household_id,
            order,
        });
        for (person, finding) in findings {
            self.employment(EmploymentFact {
                id_number: (*person).clone(),
                order,
                event: EmploymentEvent::Visited {
                    visit: visit.clone(),
                    finding: *finding,
                },
            });
        }
        visit
    }

    /// An `effective` layoff notice: its `employment_ends()`.
    pub fn layoff_effective(
        &mut self,
        notice_id: &str,
        enterprise: &Uscc,
        employees: &[IdNumber],
        date: NaiveDate,
    ) -> LayoffNotice {
        let order = self.next_order(date);
        let notice = layoff(
            notice_id,
            LayoffStage::Effective,
            enterprise,
            100,
            employees,
            order,
        );
        for fact in notice.employment_ends() {
            self.employment(fact);
        }
        notice
    }

    pub fn employment(&mut self, fact: EmploymentFact) {
        self.facts.employment.push(fact);
    }

    pub fn subsidy(
        &mut self,
        case_id: &str,
        applicant: &IdNumber,
        change: SubsidyChangeKind,
        monthly_amount: Money,
        date: NaiveDate,
    ) -> Order {
        let order = self.next_order(date);
        self.subsidy_at(case_id, applicant, change, monthly_amount, order);
        order
    }

    /// A subsidy change with an order of the test's choosing.
    pub fn subsidy_at(
        &mut self,
        case_id: &str,
        applicant: &IdNumber,
        change: SubsidyChangeKind,
        monthly_amount: Money,
        order: Order,
    ) {
        self.facts.subsidy_changes.push(SubsidyChange {
            case_id: key(case_id),
            applicant: applicant.clone(),
            change,
            monthly_amount,
            order,
        });
    }
}

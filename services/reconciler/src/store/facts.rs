//! The fact tables: what each inbound message says, one row per fact, in
//! the order of arrival. Facts are only ever added.

use super::Tx;
use super::bulk::Chain;
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::inbound::InboundFact;
use dynzero_contracts::words;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, LayoffNotice, LayoffStage, Registration,
};

/// The rows a batch of messages adds to the fact tables, gathered in memory
/// and written with one multi-row statement per table.
#[derive(Default)]
pub struct FactRows {
    registrations: Registrations,
    members: Members,
    visits: Visits,
    employment: Employment,
    notices: Notices,
    notice_employees: NoticeEmployees,
    subsidies: Subsidies,
    postings: Postings,
}

#[derive(Default)]
struct Registrations {
    arrival: Vec<i64>,
    household_id: Vec<String>,
    division_code: Vec<String>,
    date: Vec<NaiveDate>,
    time: Vec<DateTime<Utc>>,
    address: Vec<Option<String>>,
    cause: Vec<String>,
}

#[derive(Default)]
struct Members {
    arrival: Vec<i64>,
    position: Vec<i32>,
    household_id: Vec<String>,
    id_number: Vec<String>,
    name: Vec<String>,
    relation: Vec<&'static str>,
    able_to_work: Vec<bool>,
    seeking_work: Vec<bool>,
    status: Vec<&'static str>,
}

#[derive(Default)]
struct Visits {
    arrival: Vec<i64>,
    household_id: Vec<String>,
    date: Vec<NaiveDate>,
    time: Vec<DateTime<Utc>>,
    worker: Vec<String>,
    cause: Vec<String>,
}

#[derive(Default)]
struct Employment {
    arrival: Vec<i64>,
    position: Vec<i32>,
    id_number: Vec<String>,
    date: Vec<NaiveDate>,
    time: Vec<DateTime<Utc>>,
    event: Vec<&'static str>,
    employer: Vec<Option<String>>,
    kind: Vec<Option<&'static str>>,
    months: Vec<Option<i32>>,
    wage: Vec<Option<i64>>,
    insured: Vec<Option<bool>>,
    visit_household: Vec<Option<String>>,
    finding: Vec<Option<&'static str>>,
    cause: Vec<String>,
}

#[derive(Default)]
struct Notices {
    arrival: Vec<i64>,
    uscc: Vec<String>,
    notice_id: Vec<String>,
    stage: Vec<&'static str>,
    date: Vec<NaiveDate>,
    time: Vec<DateTime<Utc>>,
    name: Vec<String>,
    headcount: Vec<i32>,
    division_code: Vec<String>,
    cause: Vec<String>,
}

#[derive(Default)]
struct NoticeEmployees {
    arrival: Vec<i64>,
    position: Vec<i32>,
    id_number: Vec<String>,
    name: Vec<String>,
}

#[derive(Default)]
struct Subsidies {
    arrival: Vec<i64>,
    case_id: Vec<String>,
    applicant: Vec<String>,
    division_code: Vec<String>,
    change: Vec<&'static str>,
    amount: Vec<i64>,
    date: Vec<NaiveDate>,
    time: Vec<DateTime<Utc>>,
    cause: Vec<String>,
}

#[derive(Default)]
struct Postings {
    arrival: Vec<i64>,
    posting_id: Vec<String>,
    data: Vec<serde_json::Value>,
    cause: Vec<String>,
}

impl FactRows {
    /// Add one message's facts (their orders already carry `arrival`).
    /// `cause` is its `"<source> <id>"`, `data` its `data` as received.
    pub fn add(&mut self, fact: &InboundFact, arrival: i64, cause: &str, data: &serde_json::Value) {
        match fact {
            InboundFact::Registration(r) => self.add_registration(r, cause),
            InboundFact::Visit {
                visit,
                worker,
                findings,
            } => {
                let t = &mut self.visits;
                t.arrival.push(visit.order.arrival);
                t.household_id.push(visit.household_id.to_string());
                t.date.push(visit.order.date);
                t.time.push(visit.order.time);
                t.worker.push(worker.clone());
                t.cause.push(cause.to_string());
                self.add_employment(findings, cause);
            }
            InboundFact::Employment(f) => self.add_employment(std::slice::from_ref(f), cause),
            InboundFact::Layoff(n) => self.add_layoff(n, cause),
            InboundFact::Subsidy {
                change,
                division_code,
                ..
            } => {
                let t = &mut self.subsidies;
                t.arrival.push(change.order.arrival);
                t.case_id.push(change.case_id.to_string());
                t.applicant.push(change.applicant.as_str().to_string());
                t.division_code.push(division_code.to_string());
                t.change.push(words::change::word(change.change));
                t.amount.push(change.monthly_amount.fen());
                t.date.push(change.order.date);
                t.time.push(change.order.time);
                t.cause.push(cause.to_string());
            }
            InboundFact::Posting(p) => {
                let t = &mut self.postings;
                t.arrival.push(arrival);
                t.posting_id.push(p.posting_id.to_string());
                t.data.push(data.clone());
                t.cause.push(cause.to_string());
            }
        }
    }

    fn add_registration(&mut self, r: &Registration, cause: &str) {
        let t = &mut self.registrations;
        t.arrival.push(r.order.arrival);
        t.household_id.push(r.household_id.to_string());
        t.division_code.push(r.division_code.to_string());
        t.date.push(r.order.date);
        t.time.push(r.order.time);
        t.address.push(r.address.clone());
        t.cause.push(cause.to_string());
        let m = &mut self.members;
        for (position, member) in r.members.iter().enumerate() {
            m.arrival.push(r.order.arrival);
            m.position.push(position as i32);
            m.household_id.push(r.household_id.to_string());
            m.id_number.push(member.id_number.as_str().to_string());
            m.name.push(member.name.clone());
            m.relation.push(words::relation::word(member.relation));
            m.able_to_work.push(member.able_to_work);
            m.seeking_work.push(member.seeking_work);
            m.status.push(words::member_status::word(member.status));
        }
    }

    fn add_layoff(&mut self, n: &LayoffNotice, cause: &str) {
        let t = &mut self.notices;
        t.arrival.push(n.order.arrival);
        t.uscc.push(n.enterprise.uscc.to_string());
        t.notice_id.push(n.notice_id.to_string());
        t.stage.push(words::stage::word(n.stage));
        t.date.push(n.order.date);
        t.time.push(n.order.time);
        t.name.push(n.enterprise.name.clone());
        t.headcount.push(n.enterprise.headcount as i32);
        t.division_code.push(n.enterprise.division_code.to_string());
        t.cause.push(cause.to_string());
        let e = &mut self.notice_employees;
        for (position, (id_number, name)) in n.employees.iter().enumerate() {
            e.arrival.push(n.order.arrival);
            e.position.push(position as i32);
            e.id_number.push(id_number.as_str().to_string());
            e.name.push(name.clone());
        }
        if n.stage == LayoffStage::Effective {
            self.add_employment(&n.employment_ends(), cause);
        }
    }

    fn add_employment(&mut self, facts: &[EmploymentFact], cause: &str) {
        let t = &mut self.employment;
        for (position, f) in facts.iter().enumerate() {
            t.arrival.push(f.order.arrival);
            t.position.push(position as i32);
            t.id_number.push(f.id_number.as_str().to_string());
            t.date.push(f.order.date);
            t.time.push(f.order.time);
            t.cause.push(cause.to_string());
            let (event, employer, terms, visit) = match &f.event {
                EmploymentEvent::Started { employer, terms } => {
                    ("started", Some(employer.to_string()), Some(terms), None)
                }
                EmploymentEvent::Ended { employer } => {
                    ("ended", Some(employer.to_string()), None, None)
                }
                EmploymentEvent::Visited { visit, finding } => (
                    "visited",
                    None,
                    None,
                    Some((
                        visit.household_id.to_string(),
                        words::finding::word(*finding),
                    )),
                ),
            };
            t.event.push(event);
            t.employer.push(employer);
            t.kind
                .push(terms.map(|terms| words::kind::word(terms.kind)));
            t.months
                .push(terms.and_then(|terms| terms.contract_months.map(|m| m as i32)));
            t.wage.push(terms.map(|terms| terms.monthly_wage.fen()));
            t.insured.push(terms.map(|terms| terms.social_insurance));
            let (household, finding) = visit.unzip();
            t.visit_household.push(household);
            t.finding.push(finding);
        }
    }

    /// Every table that has rows, in one statement ([`Chain`]).
    pub async fn write(&self, tx: Tx<'_>) -> sqlx::Result<()> {
        let mut chain = Chain::default();
        let t = &self.registrations;
        chain
            .insert("registration", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("household_id", "text", &t.household_id)
            .column("division_code", "text", &t.division_code)
            .column("effective_date", "date", &t.date)
            .column("time", "timestamptz", &t.time)
            .column("address", "text", &t.address)
            .column("cause", "text", &t.cause)
            .tail("");
        let t = &self.members;
        chain
            .insert("registration_member", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("position", "int", &t.position)
            .column("household_id", "text", &t.household_id)
            .column("id_number", "text", &t.id_number)
            .column("name", "text", &t.name)
            .column("relation", "text", &t.relation)
            .column("able_to_work", "bool", &t.able_to_work)
            .column("seeking_work", "bool", &t.seeking_work)
            .column("status", "text", &t.status)
            .tail("");
        let t = &self.visits;
        chain
            .insert("visit", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("household_id", "text", &t.household_id)
            .column("visit_date", "date", &t.date)
            .column("time", "timestamptz", &t.time)
            .column("worker", "text", &t.worker)
            .column("cause", "text", &t.cause)
            .tail("");
        self.write_employment(&mut chain);
        let t = &self.notices;
        chain
            .insert("layoff_notice", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("uscc", "text", &t.uscc)
            .column("notice_id", "text", &t.notice_id)
            .column("stage", "text", &t.stage)
            .column("effective_date", "date", &t.date)
            .column("time", "timestamptz", &t.time)
            .column("name", "text", &t.name)
            .column("headcount", "int", &t.headcount)
            .column("division_code", "text", &t.division_code)
            .column("cause", "text", &t.cause)
            .tail("");
        let t = &self.notice_employees;
        chain
            .insert("layoff_employee", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("position", "int", &t.position)
            .column("id_number", "text", &t.id_number)
            .column("name", "text", &t.name)
            .tail("");
        let t = &self.subsidies;
        chain
            .insert("subsidy_change", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("case_id", "text", &t.case_id)
            .column("applicant", "text", &t.applicant)
            .column("division_code", "text", &t.division_code)
            .column("change", "text", &t.change)
            .column("monthly_amount_fen", "bigint", &t.amount)
            .column("effective_date", "date", &t.date)
            .column("time", "timestamptz", &t.time)
            .column("cause", "text", &t.cause)
            .tail("");
        let t = &self.postings;
        chain
            .insert("job_posting", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("posting_id", "text", &t.posting_id)
            .column("data", "jsonb", &t.data)
            .column("cause", "text", &t.cause)
            .tail("");
        chain.execute(tx).await
    }

    fn write_employment(&self, chain: &mut Chain) {
        let t = &self.employment;
        chain
            .insert("employment_fact", t.arrival.len())
            .column("arrival", "bigint", &t.arrival)
            .column("position", "int", &t.position)
            .column("id_number", "text", &t.id_number)
            .column("date", "date", &t.date)
            .column("time", "timestamptz", &t.time)
            .column("event", "text", &t.event)
            .column("employer_uscc", "text", &t.employer)
            .column("kind", "text", &t.kind)
            .column("contract_months", "int", &t.months)
            .column("monthly_wage_fen", "bigint", &t.wage)
            .column("social_insurance", "bool", &t.insured)
            .column("visit_household", "text", &t.visit_household)
            .column("finding", "text", &t.finding)
            .column("cause", "text", &t.cause)
            .tail("");
    }
}

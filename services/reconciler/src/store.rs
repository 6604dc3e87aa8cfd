//! Facts in and out of PostgreSQL. Everything here runs inside the caller's
//! transaction; nothing commits on its own.

use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::inbound::{Inbound, InboundFact};
use dynzero_contracts::words;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, Enterprise, LayoffNotice, LayoffStage, Order,
    RegisteredMember, Registration, SubsidyChange, Terms, Visit, VisitRef,
};
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, IdentifierError, Money, Uscc};
use dynzero_domain::reconcile::HouseholdFacts;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type Tx<'a> = &'a mut PgConnection;

/// What the inbox says of a message's (source, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxOutcome {
    /// First time: its arrival number.
    New(i64),
    /// Same (source, id), same data: nothing more to do.
    Duplicate,
    /// Same (source, id), different data: `duplicate_id_conflict`.
    Conflict,
}

/// Record several messages in the inbox with one statement, in order: each
/// new (source, id) gets the next arrival number; one outcome per message.
pub async fn inbox_many(tx: Tx<'_>, messages: &[Inbound]) -> sqlx::Result<Vec<InboxOutcome>> {
    let sources: Vec<&str> = messages.iter().map(|m| m.source.as_str()).collect();
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let digests: Vec<&str> = messages.iter().map(|m| m.data_digest.as_str()).collect();
    let types: Vec<&str> = messages.iter().map(|m| m.event_type.as_str()).collect();
    let times: Vec<DateTime<Utc>> = messages.iter().map(|m| m.time).collect();
    // `ORDER BY n`: arrival numbers follow the messages' order.
    let inserted: Vec<(String, String, i64)> = sqlx::query_as(
        "INSERT INTO inbox (source, id, digest, event_type, time)
         SELECT s, i, d, e, t FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                WITH ORDINALITY AS u(s, i, d, e, t, n) ORDER BY n
         ON CONFLICT (source, id) DO NOTHING RETURNING source, id, arrival",
    )
    .bind(&sources)
    .bind(&ids)
    .bind(&digests)
    .bind(&types)
    .bind(&times)
    .fetch_all(&mut *tx)
    .await?;
    let mut arrivals: HashMap<(&str, &str), i64> = inserted
        .iter()
        .map(|(s, i, a)| ((s.as_str(), i.as_str()), *a))
        .collect();
    // The first message with a key inserted it; any other was here before.
    let mut first: HashMap<(&str, &str), &str> = HashMap::new();
    let mut outcomes = vec![InboxOutcome::Duplicate; messages.len()];
    let mut known: Vec<usize> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let key = (m.source.as_str(), m.id.as_str());
        if let Some(arrival) = arrivals.remove(&key) {
            first.insert(key, m.data_digest.as_str());
            outcomes[i] = InboxOutcome::New(arrival);
        } else if let Some(digest) = first.get(&key) {
            outcomes[i] = same_or_conflict(digest, m);
        } else {
            known.push(i);
        }
    }
    if !known.is_empty() {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT source, id, digest FROM inbox
             WHERE (source, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(known.iter().map(|&i| sources[i]).collect::<Vec<_>>())
        .bind(known.iter().map(|&i| ids[i]).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let digests: HashMap<(&str, &str), &str> = rows
            .iter()
            .map(|(s, i, d)| ((s.as_str(), i.as_str()), d.as_str()))
            .collect();
        for i in known {
            let m = &messages[i];
            // Not inserted, yet not there: cannot happen (an insert waits for
            // a concurrent one with the same key); an error, never a guess.
            let Some(digest) = digests.get(&(m.source.as_str(), m.id.as_str())) else {
                return Err(sqlx::Error::RowNotFound);
            };
            outcomes[i] = same_or_conflict(digest, m);
        }
    }
    Ok(outcomes)
}

fn same_or_conflict(digest: &str, m: &Inbound) -> InboxOutcome {
    if digest == m.data_digest {
        InboxOutcome::Duplicate
    } else {
        InboxOutcome::Conflict
    }
}

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
            InboundFact::Registration(r) => {
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
            InboundFact::Layoff(n) => {
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

    fn add_employment(&mut self, facts: &[EmploymentFact], cause: &str) {
        let t = &mut self.employment;
        for (position, f) in facts.iter().enumerate() {
            t.arrival.push(f.order.arrival);
            t.position.push(position as i32);
            t.id_number.push(f.id_number.as_str().to_string());
            t.date.push(f.order.date);
            t.time.push(f.order.time);
            t.cause.push(cause.to_string());
            match &f.event {
                EmploymentEvent::Started { employer, terms } => {
                    t.event.push("started");
                    t.employer.push(Some(employer.to_string()));
                    t.kind.push(Some(words::kind::word(terms.kind)));
                    t.months.push(terms.contract_months.map(|m| m as i32));
                    t.wage.push(Some(terms.monthly_wage.fen()));
                    t.insured.push(Some(terms.social_insurance));
                    t.visit_household.push(None);
                    t.finding.push(None);
                }
                EmploymentEvent::Ended { employer } => {
                    t.event.push("ended");
                    t.employer.push(Some(employer.to_string()));
                    t.kind.push(None);
                    t.months.push(None);
                    t.wage.push(None);
                    t.insured.push(None);
                    t.visit_household.push(None);
                    t.finding.push(None);
                }
                EmploymentEvent::Visited { visit, finding } => {
                    t.event.push("visited");
                    t.employer.push(None);
                    t.kind.push(None);
                    t.months.push(None);
                    t.wage.push(None);
                    t.insured.push(None);
                    t.visit_household.push(Some(visit.household_id.to_string()));
                    t.finding.push(Some(words::finding::word(*finding)));
                }
            }
        }
    }

    /// One statement per table that has rows.
    pub async fn write(&self, tx: Tx<'_>) -> sqlx::Result<()> {
        let t = &self.registrations;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO registration (arrival, household_id, division_code, effective_date, time, address, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::date[], $5::timestamptz[], $6::text[], $7::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.household_id)
            .bind(&t.division_code)
            .bind(&t.date)
            .bind(&t.time)
            .bind(&t.address)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.members;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO registration_member
                   (arrival, position, household_id, id_number, name, relation, able_to_work, seeking_work, status)
                 SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::bool[], $9::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.position)
            .bind(&t.household_id)
            .bind(&t.id_number)
            .bind(&t.name)
            .bind(&t.relation)
            .bind(&t.able_to_work)
            .bind(&t.seeking_work)
            .bind(&t.status)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.visits;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO visit (arrival, household_id, visit_date, time, worker, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::date[], $4::timestamptz[], $5::text[], $6::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.household_id)
            .bind(&t.date)
            .bind(&t.time)
            .bind(&t.worker)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.employment;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO employment_fact
                   (arrival, position, id_number, date, time, event, employer_uscc, kind, contract_months,
                    monthly_wage_fen, social_insurance, visit_household, finding, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::date[], $5::timestamptz[], $6::text[],
                    $7::text[], $8::text[], $9::int[], $10::bigint[], $11::bool[], $12::text[], $13::text[], $14::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.position)
            .bind(&t.id_number)
            .bind(&t.date)
            .bind(&t.time)
            .bind(&t.event)
            .bind(&t.employer)
            .bind(&t.kind)
            .bind(&t.months)
            .bind(&t.wage)
            .bind(&t.insured)
            .bind(&t.visit_household)
            .bind(&t.finding)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.notices;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO layoff_notice (arrival, uscc, notice_id, stage, effective_date, time, name, headcount, division_code, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::date[], $6::timestamptz[],
                    $7::text[], $8::int[], $9::text[], $10::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.uscc)
            .bind(&t.notice_id)
            .bind(&t.stage)
            .bind(&t.date)
            .bind(&t.time)
            .bind(&t.name)
            .bind(&t.headcount)
            .bind(&t.division_code)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.notice_employees;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO layoff_employee (arrival, position, id_number, name)
                 SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.position)
            .bind(&t.id_number)
            .bind(&t.name)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.subsidies;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO subsidy_change (arrival, case_id, applicant, division_code, change, monthly_amount_fen, effective_date, time, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::date[], $8::timestamptz[], $9::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.case_id)
            .bind(&t.applicant)
            .bind(&t.division_code)
            .bind(&t.change)
            .bind(&t.amount)
            .bind(&t.date)
            .bind(&t.time)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        let t = &self.postings;
        if !t.arrival.is_empty() {
            sqlx::query(
                "INSERT INTO job_posting (arrival, posting_id, data, cause)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::jsonb[], $4::text[])",
            )
            .bind(&t.arrival)
            .bind(&t.posting_id)
            .bind(&t.data)
            .bind(&t.cause)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// caused_by rows to add: the inbound events applied to a household and not
/// yet named by one of its versions.
#[derive(Default)]
pub struct Causes {
    household_id: Vec<String>,
    cause: Vec<String>,
    arrival: Vec<i64>,
}

impl Causes {
    pub fn push(&mut self, household_id: &str, cause: &str, arrival: i64) {
        self.household_id.push(household_id.to_string());
        self.cause.push(cause.to_string());
        self.arrival.push(arrival);
    }

    /// One statement; a cause already recorded for a household is kept.
    pub async fn write(&self, tx: Tx<'_>) -> sqlx::Result<()> {
        if self.household_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO household_cause (household_id, cause, arrival)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind(&self.household_id)
        .bind(&self.cause)
        .bind(&self.arrival)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Ids came in valid; their birth dates were checked against the day they arrived.
fn stored_id(s: &str) -> anyhow::Result<IdNumber> {
    IdNumber::parse(s, NaiveDate::MAX)
        .map_err(|e| anyhow::anyhow!("stored id number is invalid: {e}"))
}

fn stored_key<K: std::str::FromStr<Err = IdentifierError>>(s: &str) -> anyhow::Result<K> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("stored key {s:?} is invalid: {e}"))
}

fn stored_uscc(s: &str) -> anyhow::Result<Uscc> {
    Uscc::parse(s).map_err(|e| anyhow::anyhow!("stored uscc is invalid: {e}"))
}

fn stored_division(s: &str) -> anyhow::Result<DivisionCode> {
    DivisionCode::parse(s).map_err(|e| anyhow::anyhow!("stored division code is invalid: {e}"))
}

fn stored_word<T>(parse: fn(&str) -> Option<T>, s: &str) -> anyhow::Result<T> {
    parse(s).ok_or_else(|| anyhow::anyhow!("stored word {s:?} is unknown"))
}

/// A household's facts, and the inbound events they came from.
pub struct Loaded {
    pub facts: HouseholdFacts,
    /// (arrival, "<source> <id>") of every fact that bears on the household,
    /// other households' registrations excepted.
    pub causes: Vec<(i64, String)>,
    /// The planned, not withdrawn layoff notices listing someone the
    /// household ever named, with only those people among their employees.
    pub notices: Vec<LayoffNotice>,
    /// What was last published of the household.
    pub published: Published,
}

/// The household's row: its last published version.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// 0: nothing published yet.
    pub version: i64,
    /// The state's `data` without `version` and `caused_by`.
    pub content: Option<serde_json::Value>,
    pub status: Option<String>,
    pub zero_since: Option<NaiveDate>,
    /// The version that began the current zero-employment spell.
    pub spell_version: Option<i64>,
}

/// (household, person) for every person these households ever named.
pub async fn members_of(tx: Tx<'_>, households: &[&str]) -> sqlx::Result<Vec<(String, String)>> {
    if households.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT DISTINCT household_id, id_number FROM registration_member WHERE household_id = ANY($1)",
    )
    .bind(households)
    .fetch_all(&mut *tx)
    .await
}

/// (household, person) for every household that ever named one of these people.
pub async fn households_naming(tx: Tx<'_>, people: &[&str]) -> sqlx::Result<Vec<(String, String)>> {
    if people.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT DISTINCT household_id, id_number FROM registration_member WHERE id_number = ANY($1)",
    )
    .bind(people)
    .fetch_all(&mut *tx)
    .await
}

/// Everything [`HouseholdFacts`] asks for, for several households at once:
/// one round trip per table, however many households a batch touches.
pub async fn load_many(tx: Tx<'_>, households: &[HouseholdId]) -> anyhow::Result<Vec<Loaded>> {
    let ids: Vec<&str> = households.iter().map(HouseholdId::as_str).collect();
    let rows = sqlx::query(
        "SELECT DISTINCT household_id, id_number FROM registration_member WHERE household_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        named
            .entry(row.get("household_id"))
            .or_default()
            .insert(row.get("id_number"));
    }
    let all_people: Vec<String> = named
        .values()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    // The households' own registrations, and those of every household that
    // ever named one of their people (moves in and out).
    let mut related: BTreeSet<String> = ids.iter().map(|h| h.to_string()).collect();
    related.extend(
        households_naming(
            tx,
            &all_people.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .map(|(h, _)| h),
    );
    let reg_rows = sqlx::query(
        "SELECT arrival, household_id, division_code, effective_date, time, address, cause FROM registration
         WHERE household_id = ANY($1)",
    )
    .bind(related.into_iter().collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let arrivals: Vec<i64> = reg_rows.iter().map(|r| r.get("arrival")).collect();
    let member_rows = sqlx::query(
        "SELECT arrival, id_number, name, relation, able_to_work, seeking_work, status
         FROM UNNEST($1::bigint[]) AS a(arrival) JOIN registration_member USING (arrival)
         ORDER BY arrival, position",
    )
    .bind(&arrivals)
    .fetch_all(&mut *tx)
    .await?;
    let mut members: BTreeMap<i64, Vec<RegisteredMember>> = BTreeMap::new();
    for row in member_rows {
        members
            .entry(row.get("arrival"))
            .or_default()
            .push(RegisteredMember {
                id_number: stored_id(row.get("id_number"))?,
                name: row.get("name"),
                relation: stored_word(words::relation::parse, row.get("relation"))?,
                able_to_work: row.get("able_to_work"),
                seeking_work: row.get("seeking_work"),
                status: stored_word(words::member_status::parse, row.get("status"))?,
            });
    }
    let mut registrations: Vec<(Registration, String)> = Vec::with_capacity(reg_rows.len());
    for row in reg_rows {
        let arrival: i64 = row.get("arrival");
        registrations.push((
            Registration {
                household_id: stored_key(row.get("household_id"))?,
                division_code: stored_division(row.get("division_code"))?,
                address: row.get("address"),
                members: members.remove(&arrival).unwrap_or_default(),
                order: Order {
                    date: row.get("effective_date"),
                    time: row.get("time"),
                    arrival,
                },
            },
            row.get("cause"),
        ));
    }

    let rows = sqlx::query(
        "SELECT arrival, id_number, date, time, event, employer_uscc, kind, contract_months,
                monthly_wage_fen, social_insurance, visit_household, finding, cause
         FROM UNNEST($1::text[]) AS p(id_number) JOIN employment_fact USING (id_number)",
    )
    .bind(&all_people)
    .fetch_all(&mut *tx)
    .await?;
    let mut employment: BTreeMap<String, Vec<(EmploymentFact, String)>> = BTreeMap::new();
    for row in rows {
        let arrival: i64 = row.get("arrival");
        let cause: String = row.get("cause");
        let employer = || -> anyhow::Result<Uscc> {
            stored_uscc(
                row.get::<Option<&str>, _>("employer_uscc")
                    .unwrap_or_default(),
            )
        };
        let event = match row.get::<&str, _>("event") {
            "started" => EmploymentEvent::Started {
                employer: employer()?,
                terms: Terms {
                    kind: stored_word(
                        words::kind::parse,
                        row.get::<Option<&str>, _>("kind").unwrap_or_default(),
                    )?,
                    contract_months: row
                        .get::<Option<i32>, _>("contract_months")
                        .map(|m| m as u32),
                    monthly_wage: Money::from_fen(
                        row.get::<Option<i64>, _>("monthly_wage_fen")
                            .unwrap_or_default(),
                    )
                    .map_err(|e| anyhow::anyhow!("stored wage: {e}"))?,
                    social_insurance: row
                        .get::<Option<bool>, _>("social_insurance")
                        .unwrap_or_default(),
                },
            },
            "ended" => EmploymentEvent::Ended {
                employer: employer()?,
            },
            _ => EmploymentEvent::Visited {
                visit: VisitRef {
                    household_id: stored_key(
                        row.get::<Option<&str>, _>("visit_household")
                            .unwrap_or_default(),
                    )?,
                    key: cause.clone(),
                },
                finding: stored_word(
                    words::finding::parse,
                    row.get::<Option<&str>, _>("finding").unwrap_or_default(),
                )?,
            },
        };
        let person: String = row.get("id_number");
        let fact = EmploymentFact {
            id_number: stored_id(&person)?,
            order: Order {
                date: row.get("date"),
                time: row.get("time"),
                arrival,
            },
            event,
        };
        employment.entry(person).or_default().push((fact, cause));
    }

    let rows = sqlx::query(
        "SELECT arrival, household_id, visit_date, time, cause FROM visit WHERE household_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut visits: BTreeMap<String, Vec<(Visit, String)>> = BTreeMap::new();
    for row in rows {
        let household: String = row.get("household_id");
        let visit = Visit {
            household_id: stored_key(&household)?,
            order: Order {
                date: row.get("visit_date"),
                time: row.get("time"),
                arrival: row.get("arrival"),
            },
        };
        visits
            .entry(household)
            .or_default()
            .push((visit, row.get("cause")));
    }

    let rows = sqlx::query(
        "SELECT arrival, case_id, applicant, change, monthly_amount_fen, effective_date, time, cause
         FROM UNNEST($1::text[]) AS p(applicant) JOIN subsidy_change USING (applicant)",
    )
    .bind(&all_people)
    .fetch_all(&mut *tx)
    .await?;
    let mut subsidies: BTreeMap<String, Vec<(SubsidyChange, String)>> = BTreeMap::new();
    for row in rows {
        let applicant: String = row.get("applicant");
        let change = SubsidyChange {
            case_id: stored_key(row.get("case_id"))?,
            applicant: stored_id(&applicant)?,
            change: stored_word(words::change::parse, row.get("change"))?,
            monthly_amount: Money::from_fen(row.get("monthly_amount_fen"))
                .map_err(|e| anyhow::anyhow!("stored amount: {e}"))?,
            order: Order {
                date: row.get("effective_date"),
                time: row.get("time"),
                arrival: row.get("arrival"),
            },
        };
        subsidies
            .entry(applicant)
            .or_default()
            .push((change, row.get("cause")));
    }

    let notices = planned_notices_listing(tx, &all_people).await?;

    let rows = sqlx::query(
        "SELECT household_id, version, content, status, zero_since, spell_version FROM household WHERE household_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut published: BTreeMap<String, Published> = BTreeMap::new();
    for row in rows {
        published.insert(
            row.get("household_id"),
            Published {
                version: row.get("version"),
                content: row.get("content"),
                status: row.get("status"),
                zero_since: row.get("zero_since"),
                spell_version: row.get("spell_version"),
            },
        );
    }

    let empty = BTreeSet::new();
    let mut out = Vec::with_capacity(households.len());
    for household_id in households {
        let people = named.get(household_id.as_str()).unwrap_or(&empty);
        let mut causes: Vec<(i64, String)> = Vec::new();
        let related: BTreeSet<&HouseholdId> = registrations
            .iter()
            .filter(|(r, _)| {
                r.household_id == *household_id
                    || r.members
                        .iter()
                        .any(|m| people.contains(m.id_number.as_str()))
            })
            .map(|(r, _)| &r.household_id)
            .collect();
        let mut own_registrations = Vec::new();
        for (r, cause) in &registrations {
            if related.contains(&r.household_id) {
                if r.household_id == *household_id {
                    causes.push((r.order.arrival, cause.clone()));
                }
                own_registrations.push(r.clone());
            }
        }
        let mut facts = Vec::new();
        let mut changes = Vec::new();
        for person in people {
            for (f, cause) in employment.get(person).into_iter().flatten() {
                causes.push((f.order.arrival, cause.clone()));
                facts.push(f.clone());
            }
            for (c, cause) in subsidies.get(person).into_iter().flatten() {
                causes.push((c.order.arrival, cause.clone()));
                changes.push(c.clone());
            }
        }
        let mut own_visits = Vec::new();
        for (v, cause) in visits.get(household_id.as_str()).into_iter().flatten() {
            causes.push((v.order.arrival, cause.clone()));
            own_visits.push(v.clone());
        }
        let own_notices = notices
            .iter()
            .filter_map(|n| {
                let employees: Vec<(IdNumber, String)> = n
                    .employees
                    .iter()
                    .filter(|(id, _)| people.contains(id.as_str()))
                    .cloned()
                    .collect();
                (!employees.is_empty()).then(|| LayoffNotice {
                    employees,
                    ..n.clone()
                })
            })
            .collect();
        causes.sort();
        causes.dedup();
        out.push(Loaded {
            facts: HouseholdFacts {
                household_id: household_id.clone(),
                registrations: own_registrations,
                employment: facts,
                visits: own_visits,
                subsidy_changes: changes,
            },
            causes,
            notices: own_notices,
            published: published.remove(household_id.as_str()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The planned, not withdrawn notices listing any of these people, each with
/// only those people among its employees (the rest cannot bear on the household).
pub async fn planned_notices_listing(
    tx: Tx<'_>,
    people: &[String],
) -> anyhow::Result<Vec<LayoffNotice>> {
    let rows = sqlx::query(
        // From the people to their notices (MATERIALIZED: never the other
        // way round, which reads every notice ever planned).
        "WITH listed AS MATERIALIZED (
             SELECT arrival, position, id_number, name FROM layoff_employee WHERE id_number = ANY($1)
         )
         SELECT n.arrival, n.uscc, n.notice_id, n.effective_date, n.time, n.name, n.headcount, n.division_code,
                array_agg(e.id_number ORDER BY e.position) AS ids, array_agg(e.name ORDER BY e.position) AS names
         FROM listed e
         JOIN layoff_notice n ON n.arrival = e.arrival
         WHERE n.stage = 'planned'
           AND NOT EXISTS (SELECT 1 FROM layoff_notice w
                           WHERE w.stage = 'withdrawn' AND w.uscc = n.uscc AND w.notice_id = n.notice_id)
         GROUP BY n.arrival ORDER BY n.arrival",
    )
    .bind(people)
    .fetch_all(&mut *tx)
    .await?;
    let mut notices = Vec::with_capacity(rows.len());
    for row in rows {
        let ids: Vec<String> = row.get("ids");
        let names: Vec<String> = row.get("names");
        let mut employees = Vec::with_capacity(ids.len());
        for (id, name) in ids.iter().zip(names) {
            employees.push((stored_id(id)?, name));
        }
        notices.push(LayoffNotice {
            notice_id: stored_key(row.get("notice_id"))?,
            stage: LayoffStage::Planned,
            enterprise: Enterprise {
                uscc: stored_uscc(row.get("uscc"))?,
                name: row.get("name"),
                headcount: row.get::<i32, _>("headcount") as u32,
                division_code: stored_division(row.get("division_code"))?,
            },
            employees,
            order: Order {
                date: row.get("effective_date"),
                time: row.get("time"),
                arrival: row.get("arrival"),
            },
        });
    }
    Ok(notices)
}

/// One stored stage of a layoff notice.
pub struct NoticeStage {
    pub uscc: String,
    pub notice_id: String,
    pub stage: LayoffStage,
    pub time: DateTime<Utc>,
    pub arrival: i64,
}

/// Every stored stage of the notices with these (uscc, notice_id) keys.
pub async fn notice_stages(tx: Tx<'_>, keys: &[(&str, &str)]) -> anyhow::Result<Vec<NoticeStage>> {
    let usccs: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let rows: Vec<(String, String, String, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT uscc, notice_id, stage, time, arrival FROM layoff_notice
         WHERE (uscc, notice_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(usccs)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|(uscc, notice_id, stage, time, arrival)| {
            Ok(NoticeStage {
                stage: stored_word(words::stage::parse, &stage)?,
                uscc,
                notice_id,
                time,
                arrival,
            })
        })
        .collect()
}

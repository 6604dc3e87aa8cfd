//! Facts in and out of PostgreSQL. Everything here runs inside the caller's
//! transaction; nothing commits on its own.

use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::inbound::{Inbound, InboundFact};
use dynzero_contracts::words;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, Enterprise, LayoffNotice, LayoffStage, Order,
    RegisteredMember, Registration, SubsidyChange, Terms, Visit, VisitRef,
};
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, Key, Money, Uscc};
use dynzero_domain::reconcile::HouseholdFacts;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet};

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

pub async fn inbox(tx: Tx<'_>, inbound: &Inbound) -> sqlx::Result<InboxOutcome> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO inbox (source, id, digest, event_type) VALUES ($1, $2, $3, $4)
         ON CONFLICT (source, id) DO NOTHING RETURNING arrival",
    )
    .bind(&inbound.source)
    .bind(&inbound.id)
    .bind(&inbound.data_digest)
    .bind(inbound.event_type.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(arrival) = inserted {
        return Ok(InboxOutcome::New(arrival));
    }
    let digest: String =
        sqlx::query_scalar("SELECT digest FROM inbox WHERE source = $1 AND id = $2")
            .bind(&inbound.source)
            .bind(&inbound.id)
            .fetch_one(&mut *tx)
            .await?;
    Ok(if digest == inbound.data_digest {
        InboxOutcome::Duplicate
    } else {
        InboxOutcome::Conflict
    })
}

/// Store a message's facts (their orders already carry `arrival`). `cause` is
/// its `"<source> <id>"`.
pub async fn store_fact(
    tx: Tx<'_>,
    fact: &InboundFact,
    arrival: i64,
    cause: &str,
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    match fact {
        InboundFact::Registration(r) => {
            sqlx::query(
                "INSERT INTO registration (arrival, household_id, division_code, effective_date, time, address, cause)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(r.order.arrival)
            .bind(r.household_id.as_str())
            .bind(r.division_code.as_str())
            .bind(r.order.date)
            .bind(r.order.time)
            .bind(&r.address)
            .bind(cause)
            .execute(&mut *tx)
            .await?;
            let n = r.members.len();
            let positions: Vec<i32> = (0..n as i32).collect();
            let households = vec![r.household_id.as_str(); n];
            let ids: Vec<&str> = r.members.iter().map(|m| m.id_number.as_str()).collect();
            let names: Vec<&str> = r.members.iter().map(|m| m.name.as_str()).collect();
            let relations: Vec<&str> = r
                .members
                .iter()
                .map(|m| words::relation::word(m.relation))
                .collect();
            let able: Vec<bool> = r.members.iter().map(|m| m.able_to_work).collect();
            let seeking: Vec<bool> = r.members.iter().map(|m| m.seeking_work).collect();
            let statuses: Vec<&str> = r
                .members
                .iter()
                .map(|m| words::member_status::word(m.status))
                .collect();
            sqlx::query(
                "INSERT INTO registration_member
                   (arrival, position, household_id, id_number, name, relation, able_to_work, seeking_work, status)
                 SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::bool[], $9::text[])",
            )
            .bind(r.order.arrival)
            .bind(positions)
            .bind(households)
            .bind(ids)
            .bind(names)
            .bind(relations)
            .bind(able)
            .bind(seeking)
            .bind(statuses)
            .execute(&mut *tx)
            .await?;
        }
        InboundFact::Visit {
            visit,
            worker,
            findings,
        } => {
            sqlx::query(
                "INSERT INTO visit (arrival, household_id, visit_date, time, worker, cause) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(visit.order.arrival)
            .bind(visit.household_id.as_str())
            .bind(visit.order.date)
            .bind(visit.order.time)
            .bind(worker)
            .bind(cause)
            .execute(&mut *tx)
            .await?;
            insert_employment(tx, findings, cause).await?;
        }
        InboundFact::Employment(f) => insert_employment(tx, std::slice::from_ref(f), cause).await?,
        InboundFact::Layoff(n) => {
            sqlx::query(
                "INSERT INTO layoff_notice (arrival, uscc, notice_id, stage, effective_date, time, name, headcount, division_code, cause)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(n.order.arrival)
            .bind(n.enterprise.uscc.as_str())
            .bind(n.notice_id.as_str())
            .bind(words::stage::word(n.stage))
            .bind(n.order.date)
            .bind(n.order.time)
            .bind(&n.enterprise.name)
            .bind(n.enterprise.headcount as i32)
            .bind(n.enterprise.division_code.as_str())
            .bind(cause)
            .execute(&mut *tx)
            .await?;
            let positions: Vec<i32> = (0..n.employees.len() as i32).collect();
            let ids: Vec<&str> = n.employees.iter().map(|(id, _)| id.as_str()).collect();
            let names: Vec<&str> = n.employees.iter().map(|(_, name)| name.as_str()).collect();
            sqlx::query(
                "INSERT INTO layoff_employee (arrival, position, id_number, name)
                 SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[])",
            )
            .bind(n.order.arrival)
            .bind(positions)
            .bind(ids)
            .bind(names)
            .execute(&mut *tx)
            .await?;
            if n.stage == LayoffStage::Effective {
                insert_employment(tx, &n.employment_ends(), cause).await?;
            }
        }
        InboundFact::Subsidy {
            change,
            division_code,
            ..
        } => {
            sqlx::query(
                "INSERT INTO subsidy_change (arrival, case_id, applicant, division_code, change, monthly_amount_fen, effective_date, time, cause)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(change.order.arrival)
            .bind(change.case_id.as_str())
            .bind(change.applicant.as_str())
            .bind(division_code.as_str())
            .bind(words::change::word(change.change))
            .bind(change.monthly_amount.fen())
            .bind(change.order.date)
            .bind(change.order.time)
            .bind(cause)
            .execute(&mut *tx)
            .await?;
        }
        InboundFact::Posting(p) => {
            sqlx::query("INSERT INTO job_posting (arrival, posting_id, data, cause) VALUES ($1, $2, $3, $4)")
                .bind(arrival)
                .bind(p.posting_id.as_str())
                .bind(data)
                .bind(cause)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

async fn insert_employment(tx: Tx<'_>, facts: &[EmploymentFact], cause: &str) -> sqlx::Result<()> {
    if facts.is_empty() {
        return Ok(());
    }
    let arrival = facts[0].order.arrival;
    let mut positions = Vec::new();
    let mut ids = Vec::new();
    let mut dates = Vec::new();
    let mut times = Vec::new();
    let mut events = Vec::new();
    let mut employers: Vec<Option<&str>> = Vec::new();
    let mut kinds: Vec<Option<&str>> = Vec::new();
    let mut months: Vec<Option<i32>> = Vec::new();
    let mut wages: Vec<Option<i64>> = Vec::new();
    let mut insured: Vec<Option<bool>> = Vec::new();
    let mut visit_households: Vec<Option<&str>> = Vec::new();
    let mut findings: Vec<Option<&str>> = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        positions.push(i as i32);
        ids.push(f.id_number.as_str());
        dates.push(f.order.date);
        times.push(f.order.time);
        match &f.event {
            EmploymentEvent::Started { employer, terms } => {
                events.push("started");
                employers.push(Some(employer.as_str()));
                kinds.push(Some(words::kind::word(terms.kind)));
                months.push(terms.contract_months.map(|m| m as i32));
                wages.push(Some(terms.monthly_wage.fen()));
                insured.push(Some(terms.social_insurance));
                visit_households.push(None);
                findings.push(None);
            }
            EmploymentEvent::Ended { employer } => {
                events.push("ended");
                employers.push(Some(employer.as_str()));
                kinds.push(None);
                months.push(None);
                wages.push(None);
                insured.push(None);
                visit_households.push(None);
                findings.push(None);
            }
            EmploymentEvent::Visited { visit, finding } => {
                events.push("visited");
                employers.push(None);
                kinds.push(None);
                months.push(None);
                wages.push(None);
                insured.push(None);
                visit_households.push(Some(visit.household_id.as_str()));
                findings.push(Some(words::finding::word(*finding)));
            }
        }
    }
    sqlx::query(
        "INSERT INTO employment_fact
           (arrival, position, id_number, date, time, event, employer_uscc, kind, contract_months,
            monthly_wage_fen, social_insurance, visit_household, finding, cause)
         SELECT $1, *, $14 FROM UNNEST($2::int[], $3::text[], $4::date[], $5::timestamptz[], $6::text[],
            $7::text[], $8::text[], $9::int[], $10::bigint[], $11::bool[], $12::text[], $13::text[])",
    )
    .bind(arrival)
    .bind(positions)
    .bind(ids)
    .bind(dates)
    .bind(times)
    .bind(events)
    .bind(employers)
    .bind(kinds)
    .bind(months)
    .bind(wages)
    .bind(insured)
    .bind(visit_households)
    .bind(findings)
    .bind(cause)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Ids came in valid; their birth dates were checked against the day they arrived.
fn stored_id(s: &str) -> anyhow::Result<IdNumber> {
    IdNumber::parse(s, NaiveDate::MAX)
        .map_err(|e| anyhow::anyhow!("stored id number is invalid: {e}"))
}

fn stored_key(s: &str) -> anyhow::Result<Key> {
    Key::parse(s).map_err(|e| anyhow::anyhow!("stored key {s:?} is invalid: {e}"))
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
}

pub async fn people_of(tx: Tx<'_>, household_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT id_number FROM registration_member WHERE household_id = $1")
        .bind(household_id)
        .fetch_all(&mut *tx)
        .await
}

/// Every household that ever named one of these people.
pub async fn households_naming(tx: Tx<'_>, people: &[&str]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT m.household_id FROM UNNEST($1::text[]) AS p(id)
         JOIN registration_member m ON m.id_number = p.id ORDER BY m.household_id",
    )
    .bind(people)
    .fetch_all(&mut *tx)
    .await
}

/// Everything [`HouseholdFacts`] asks for, for several households at once:
/// one round trip per table, however many households a batch touches.
pub async fn load_many(tx: Tx<'_>, households: &[HouseholdId]) -> anyhow::Result<Vec<Loaded>> {
    let ids: Vec<&str> = households.iter().map(Key::as_str).collect();
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

    let reg_rows = sqlx::query(
        "SELECT arrival, household_id, division_code, effective_date, time, address, cause FROM registration
         WHERE household_id = ANY($1)
            OR household_id IN (SELECT m.household_id FROM UNNEST($2::text[]) AS p(id)
                                JOIN registration_member m ON m.id_number = p.id)",
    )
    .bind(&ids)
    .bind(&all_people)
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
        "SELECT household_id, version, content, status, zero_since FROM household WHERE household_id = ANY($1)",
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
        "SELECT n.arrival, n.uscc, n.notice_id, n.effective_date, n.time, n.name, n.headcount, n.division_code,
                array_agg(e.id_number ORDER BY e.position) AS ids, array_agg(e.name ORDER BY e.position) AS names
         FROM UNNEST($1::text[]) AS p(id)
         JOIN layoff_employee e ON e.id_number = p.id
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

/// The `time`s of the planned notices the hub knows for (uscc, notice_id).
pub async fn planned_times(
    tx: Tx<'_>,
    uscc: &str,
    notice_id: &str,
) -> sqlx::Result<Vec<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT time FROM layoff_notice WHERE stage = 'planned' AND uscc = $1 AND notice_id = $2",
    )
    .bind(uscc)
    .bind(notice_id)
    .fetch_all(&mut *tx)
    .await
}

pub async fn is_withdrawn(tx: Tx<'_>, uscc: &str, notice_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM layoff_notice WHERE stage = 'withdrawn' AND uscc = $1 AND notice_id = $2)",
    )
    .bind(uscc)
    .bind(notice_id)
    .fetch_one(&mut *tx)
    .await
}

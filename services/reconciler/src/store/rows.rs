//! Stored facts read back as domain facts, a table at a time for all the
//! households (or people) of a batch.

use super::Tx;
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::words;
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, Enterprise, LayoffNotice, LayoffStage, Order,
    RegisteredMember, Registration, SubsidyChange, Terms, Visit, VisitRef,
};
use dynzero_domain::ids::{DivisionCode, IdNumber, IdentifierError, Money, NoticeId, Uscc};
use dynzero_planner::layoff::KnownStage;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::HashSet;

/// A stored fact and the `"<source> <id>"` of the event it came from.
pub type WithCause<T> = (T, String);

/// A registration, from a row of [`super::load`]'s statement: its own
/// columns and its members as arrays in position order (`ids`, `names`,
/// `relations`, `able`, `seeking`, `statuses`).
pub fn registration(row: &PgRow) -> anyhow::Result<WithCause<Registration>> {
    let arrival: i64 = row.get("arrival");
    // A registration without members (`members: []`) has no arrays.
    let column =
        |name: &str| -> Vec<String> { row.get::<Option<Vec<String>>, _>(name).unwrap_or_default() };
    let flags =
        |name: &str| -> Vec<bool> { row.get::<Option<Vec<bool>>, _>(name).unwrap_or_default() };
    let (ids, names, relations, statuses) = (
        column("ids"),
        column("names"),
        column("relations"),
        column("statuses"),
    );
    let (able, seeking) = (flags("able"), flags("seeking"));
    let mut members = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let missing = || anyhow::anyhow!("stored member {i} of arrival {arrival} is incomplete");
        members.push(RegisteredMember {
            id_number: stored_id(id)?,
            name: names.get(i).ok_or_else(missing)?.clone(),
            relation: stored_word(
                words::relation::parse,
                relations.get(i).ok_or_else(missing)?,
            )?,
            able_to_work: *able.get(i).ok_or_else(missing)?,
            seeking_work: *seeking.get(i).ok_or_else(missing)?,
            status: stored_word(
                words::member_status::parse,
                statuses.get(i).ok_or_else(missing)?,
            )?,
        });
    }
    Ok((
        Registration {
            household_id: stored_key(row.get("household_id"))?,
            division_code: stored_division(row.get("division_code"))?,
            address: row.get("address"),
            members,
            order: Order {
                date: row.get("effective_date"),
                time: row.get("time"),
                arrival,
            },
        },
        row.get("cause"),
    ))
}

/// An employment fact and the person it is about, from a row of
/// [`super::load`]'s statement (the columns of `employment_fact`).
pub fn employment(row: &PgRow) -> anyhow::Result<(String, WithCause<EmploymentFact>)> {
    let cause: String = row.get("cause");
    let event = employment_event(row, &cause)?;
    let person: String = row.get("id_number");
    let fact = EmploymentFact {
        id_number: stored_id(&person)?,
        order: Order {
            date: row.get("date"),
            time: row.get("time"),
            arrival: row.get("arrival"),
        },
        event,
    };
    Ok((person, (fact, cause)))
}

/// An `employment_fact` row's event.
fn employment_event(row: &PgRow, cause: &str) -> anyhow::Result<EmploymentEvent> {
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
                key: cause.to_string(),
            },
            finding: stored_word(
                words::finding::parse,
                row.get::<Option<&str>, _>("finding").unwrap_or_default(),
            )?,
        },
    };
    Ok(event)
}

/// One household's own visits, from the arrays its row was read with
/// (`load`): arrival, visit date, time and cause, one element per visit.
pub fn visits_of(
    household: &str,
    arrivals: Vec<i64>,
    dates: Vec<NaiveDate>,
    times: Vec<DateTime<Utc>>,
    causes: Vec<String>,
) -> anyhow::Result<Vec<WithCause<Visit>>> {
    anyhow::ensure!(
        arrivals.len() == dates.len() && dates.len() == times.len() && times.len() == causes.len(),
        "the stored visits of {household} are incomplete"
    );
    let household_id: dynzero_domain::ids::HouseholdId = stored_key(household)?;
    Ok(arrivals
        .into_iter()
        .zip(dates)
        .zip(times)
        .zip(causes)
        .map(|(((arrival, date), time), cause)| {
            let visit = Visit {
                household_id: household_id.clone(),
                order: Order {
                    date,
                    time,
                    arrival,
                },
            };
            (visit, cause)
        })
        .collect())
}

/// A 低保 change and its applicant, from a row of [`super::load`]'s
/// statement (the columns of `subsidy_change`).
pub fn subsidy(row: &PgRow) -> anyhow::Result<(String, WithCause<SubsidyChange>)> {
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
    Ok((applicant, (change, row.get("cause"))))
}

/// A planned notice, from a row of [`super::load`]'s statement: its columns,
/// with only the listed people among its employees (`ids`, `names`).
pub fn planned_notice(row: &PgRow) -> anyhow::Result<LayoffNotice> {
    let ids: Vec<String> = row.get("ids");
    let names: Vec<String> = row.get("names");
    let mut employees = Vec::with_capacity(ids.len());
    for (id, name) in ids.iter().zip(names) {
        employees.push((stored_id(id)?, name));
    }
    Ok(LayoffNotice {
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
    })
}

/// Every stored stage of the notices with these (uscc, notice_id) keys;
/// `batch`: the arrivals of the batch being applied.
pub async fn notice_stages(
    tx: Tx<'_>,
    keys: &[(&str, &str)],
    batch: &HashSet<i64>,
) -> anyhow::Result<Vec<KnownStage>> {
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
            Ok(KnownStage {
                stage: stored_word(words::stage::parse, &stage)?,
                uscc: stored_uscc(&uscc)?,
                notice_id: stored_key::<NoticeId>(&notice_id)?,
                time,
                arrival,
                in_batch: batch.contains(&arrival),
            })
        })
        .collect()
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

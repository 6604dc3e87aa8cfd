//! What the planner needs of the households a batch touches, loaded together:
//! one round trip per table, however many households.

use super::Tx;
use super::rows::{self, WithCause};
use chrono::NaiveDate;
use dynzero_contracts::outbound;
use dynzero_domain::facts::{EmploymentFact, LayoffNotice, Registration, SubsidyChange, Visit};
use dynzero_domain::ids::{HouseholdId, IdNumber};
use dynzero_domain::reconcile::HouseholdFacts;
use dynzero_planner::{Cause, Loaded, Published};
use serde_json::Value;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Who names whom around some households, in one statement: `members`,
/// (household, person) for every person these households ever named; and
/// `naming`, (household, person) for every household that ever named one of
/// `people` or of those members.
pub struct Around {
    pub members: Vec<(String, String)>,
    pub naming: Vec<(String, String)>,
}

pub async fn around(tx: Tx<'_>, households: &[&str], people: &[&str]) -> sqlx::Result<Around> {
    let mut around = Around {
        members: Vec::new(),
        naming: Vec::new(),
    };
    if households.is_empty() && people.is_empty() {
        return Ok(around);
    }
    let rows: Vec<(bool, String, String)> = sqlx::query_as(
        // The people are looked up with one scan of the person index by the
        // array of them (an init plan), however large the table.
        "WITH members AS MATERIALIZED (
             SELECT DISTINCT household_id, id_number FROM registration_member WHERE household_id = ANY($1)
         )
         SELECT true, household_id, id_number FROM members
         UNION ALL
         SELECT DISTINCT false, household_id, id_number FROM registration_member
         WHERE id_number = ANY(ARRAY(SELECT id_number FROM members) || $2::text[])",
    )
    .bind(households)
    .bind(people)
    .fetch_all(&mut *tx)
    .await?;
    for (member, household, person) in rows {
        if member {
            around.members.push((household, person));
        } else {
            around.naming.push((household, person));
        }
    }
    Ok(around)
}

/// Every stored fact that can bear on one of the households, grouped for
/// [`assemble`].
struct Facts {
    /// Household → every person it ever named.
    named: BTreeMap<String, BTreeSet<String>>,
    registrations: Vec<WithCause<Registration>>,
    /// Household → its registrations, by index into `registrations`.
    registrations_of: HashMap<String, Vec<usize>>,
    /// Person → the households whose registrations name them.
    registered_in: HashMap<String, BTreeSet<String>>,
    employment: BTreeMap<String, Vec<WithCause<EmploymentFact>>>,
    visits: BTreeMap<String, Vec<WithCause<Visit>>>,
    subsidies: BTreeMap<String, Vec<WithCause<SubsidyChange>>>,
    notices: Vec<LayoffNotice>,
}

/// What a household's row says now, beside its published state: what a
/// plan that publishes nothing may leave as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub next_review: Option<NaiveDate>,
    pub last_visit: Option<NaiveDate>,
    pub spell: Option<i64>,
    /// Causes of earlier transactions that no version named yet.
    pub unnamed: bool,
}

/// What [`load`] read: the planner's input per household, and each one's row.
pub struct Loads {
    pub loaded: Vec<Loaded>,
    pub rows: HashMap<String, Stored>,
}

/// Everything [`dynzero_planner::plan`] asks for, for several (locked)
/// households; `pending`: causes this transaction applied to them and has not
/// written yet, which count among the unnamed.
pub async fn load(
    tx: Tx<'_>,
    households: &[HouseholdId],
    pending: &HashMap<&str, Vec<Cause>>,
) -> anyhow::Result<Loads> {
    let ids: Vec<&str> = households.iter().map(HouseholdId::as_str).collect();
    let around = around(tx, &ids, &[]).await?;
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (household, person) in around.members {
        named.entry(household).or_default().insert(person);
    }
    let people: Vec<String> = named
        .values()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The households' own registrations, and those of every household that
    // ever named one of their people (moves in and out).
    let mut related: BTreeSet<String> = ids.iter().map(|h| h.to_string()).collect();
    related.extend(around.naming.into_iter().map(|(h, _)| h));
    let registrations = rows::registrations(tx, related.into_iter().collect()).await?;
    let mut registrations_of: HashMap<String, Vec<usize>> = HashMap::new();
    let mut registered_in: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (i, (r, _)) in registrations.iter().enumerate() {
        let household = r.household_id.as_str();
        registrations_of
            .entry(household.to_string())
            .or_default()
            .push(i);
        for m in &r.members {
            registered_in
                .entry(m.id_number.to_string())
                .or_default()
                .insert(household.to_string());
        }
    }
    let Households {
        mut published,
        stored,
        mut unnamed,
        visits,
    } = households_now(tx, &ids).await?;
    let facts = Facts {
        registrations,
        registrations_of,
        registered_in,
        employment: rows::employment(tx, &people).await?,
        visits,
        subsidies: rows::subsidies(tx, &people).await?,
        notices: rows::planned_notices_listing(tx, &people).await?,
        named,
    };
    let loaded = households
        .iter()
        .map(|h| {
            let mut loaded = assemble(&facts, h);
            loaded.published = published.remove(h.as_str()).unwrap_or_default();
            loaded.unnamed = unnamed.remove(h.as_str()).unwrap_or_default();
            loaded
                .unnamed
                .extend(pending.get(h.as_str()).into_iter().flatten().cloned());
            loaded
        })
        .collect();
    Ok(Loads {
        loaded,
        rows: stored,
    })
}

/// One household's share of the facts, and the events they came from.
fn assemble(all: &Facts, household_id: &HouseholdId) -> Loaded {
    let empty = BTreeSet::new();
    let people = all.named.get(household_id.as_str()).unwrap_or(&empty);
    let mut causes: Vec<Cause> = Vec::new();
    let mut cause = |arrival: i64, name: &str| {
        causes.push(Cause {
            name: name.to_string(),
            arrival,
        })
    };
    // Every registration of the household itself and of every household
    // that ever named one of its people (by index, not by a scan of the
    // batch's registrations per household), in the order loaded.
    let mut related: BTreeSet<&str> = people
        .iter()
        .filter_map(|p| all.registered_in.get(p))
        .flatten()
        .map(String::as_str)
        .collect();
    related.insert(household_id.as_str());
    let mut indices: Vec<usize> = related
        .iter()
        .filter_map(|h| all.registrations_of.get(*h))
        .flatten()
        .copied()
        .collect();
    indices.sort_unstable();
    let mut registrations = Vec::new();
    for (r, name) in indices.into_iter().map(|i| &all.registrations[i]) {
        // Another household's registration is never a cause (§6a 7).
        if r.household_id == *household_id {
            cause(r.order.arrival, name);
        }
        registrations.push(r.clone());
    }
    let mut employment = Vec::new();
    let mut subsidy_changes = Vec::new();
    for person in people {
        for (f, name) in all.employment.get(person).into_iter().flatten() {
            cause(f.order.arrival, name);
            employment.push(f.clone());
        }
        for (c, name) in all.subsidies.get(person).into_iter().flatten() {
            cause(c.order.arrival, name);
            subsidy_changes.push(c.clone());
        }
    }
    let mut visits = Vec::new();
    for (v, name) in all.visits.get(household_id.as_str()).into_iter().flatten() {
        cause(v.order.arrival, name);
        visits.push(v.clone());
    }
    causes.sort();
    causes.dedup();
    Loaded {
        facts: HouseholdFacts {
            household_id: household_id.clone(),
            registrations,
            employment,
            visits,
            subsidy_changes,
        },
        causes,
        unnamed: Vec::new(),
        notices: notices_bearing_on(&all.notices, people),
        published: Published::default(),
    }
}

/// The notices listing one of `people`, each with only those people listed
/// (the rest cannot bear on the household).
fn notices_bearing_on(notices: &[LayoffNotice], people: &BTreeSet<String>) -> Vec<LayoffNotice> {
    notices
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
        .collect()
}

/// What [`households_now`] read of each household.
struct Households {
    /// What was last published.
    published: BTreeMap<String, Published>,
    /// The rest of its row.
    stored: HashMap<String, Stored>,
    /// The events applied to it that no version named yet.
    unnamed: BTreeMap<String, Vec<Cause>>,
    /// Its own visits.
    visits: BTreeMap<String, Vec<WithCause<Visit>>>,
}

/// Each household's row, the causes no version named yet and its visits:
/// one statement, the causes and visits as arrays beside the row.
///
/// The causes are read `published IS DISTINCT FROM true` (the column is
/// never null), so that the predicate does not match the partial index of
/// the unpublished causes by arrival, which retention reads. With `NOT
/// published` and no statistics the planner read that whole index and
/// filtered it by household: 62 ms at 1.1 M stored facts and growing,
/// against 2 ms by the primary key.
async fn households_now(tx: Tx<'_>, ids: &[&str]) -> anyhow::Result<Households> {
    let rows = sqlx::query(
        "SELECT h.household_id, h.version, h.content, h.spell_version, h.next_review, h.last_visit,
                c.causes, c.arrivals, v.arrivals AS visit_arrivals, v.dates AS visit_dates,
                v.times AS visit_times, v.causes AS visit_causes
         FROM household h
         CROSS JOIN LATERAL (
             SELECT array_agg(cause) AS causes, array_agg(arrival) AS arrivals FROM household_cause c
             WHERE c.household_id = h.household_id AND c.published IS DISTINCT FROM true
         ) AS c
         CROSS JOIN LATERAL (
             SELECT array_agg(arrival) AS arrivals, array_agg(visit_date) AS dates,
                    array_agg(time) AS times, array_agg(cause) AS causes
             FROM visit WHERE visit.household_id = h.household_id
         ) AS v
         WHERE h.household_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut read = Households {
        published: BTreeMap::new(),
        stored: HashMap::with_capacity(rows.len()),
        unnamed: BTreeMap::new(),
        visits: BTreeMap::new(),
    };
    for row in rows {
        let household: String = row.get("household_id");
        let content: Option<Value> = row.get("content");
        let spell: Option<i64> = row.get("spell_version");
        let causes: Vec<String> = row.get::<Option<_>, _>("causes").unwrap_or_default();
        let arrivals: Vec<i64> = row.get::<Option<_>, _>("arrivals").unwrap_or_default();
        let unnamed: Vec<Cause> = causes
            .into_iter()
            .zip(arrivals)
            .map(|(name, arrival)| Cause { name, arrival })
            .collect();
        let visits = rows::visits_of(
            &household,
            row.get::<Option<_>, _>("visit_arrivals")
                .unwrap_or_default(),
            row.get::<Option<_>, _>("visit_dates").unwrap_or_default(),
            row.get::<Option<_>, _>("visit_times").unwrap_or_default(),
            row.get::<Option<_>, _>("visit_causes").unwrap_or_default(),
        )?;
        read.published.insert(
            household.clone(),
            Published {
                version: row.get("version"),
                // Unreadable content (an older rendering) compares unequal:
                // the household is published afresh.
                state: content.as_ref().and_then(outbound::state_from_data),
                spell,
            },
        );
        read.stored.insert(
            household.clone(),
            Stored {
                next_review: row.get("next_review"),
                last_visit: row.get("last_visit"),
                spell,
                unnamed: !unnamed.is_empty(),
            },
        );
        if !unnamed.is_empty() {
            read.unnamed.insert(household.clone(), unnamed);
        }
        if !visits.is_empty() {
            read.visits.insert(household, visits);
        }
    }
    Ok(read)
}

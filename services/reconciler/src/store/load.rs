//! What the planner needs of the households a batch touches, loaded together:
//! one statement, one round trip, however many households.

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
use sqlx::postgres::PgRow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

/// Every column [`LOAD`] returns, with its type. Each kind of row (its
/// `fact` column) fills its own and leaves the others null, so that the
/// row decoders of [`rows`] read any of them by name.
const COLUMNS: &[(&str, &str)] = &[
    ("household_id", "text"),
    ("id_number", "text"),
    ("arrival", "bigint"),
    ("division_code", "text"),
    ("effective_date", "date"),
    ("time", "timestamptz"),
    ("address", "text"),
    ("cause", "text"),
    ("ids", "text[]"),
    ("names", "text[]"),
    ("relations", "text[]"),
    ("able", "boolean[]"),
    ("seeking", "boolean[]"),
    ("statuses", "text[]"),
    ("version", "bigint"),
    ("content", "jsonb"),
    ("spell_version", "bigint"),
    ("next_review", "date"),
    ("last_visit", "date"),
    ("causes", "text[]"),
    ("arrivals", "bigint[]"),
    ("visit_arrivals", "bigint[]"),
    ("visit_dates", "date[]"),
    ("visit_times", "timestamptz[]"),
    ("visit_causes", "text[]"),
    ("date", "date"),
    ("event", "text"),
    ("employer_uscc", "text"),
    ("kind", "text"),
    ("contract_months", "integer"),
    ("monthly_wage_fen", "bigint"),
    ("social_insurance", "boolean"),
    ("visit_household", "text"),
    ("finding", "text"),
    ("case_id", "text"),
    ("applicant", "text"),
    ("change", "text"),
    ("monthly_amount_fen", "bigint"),
    ("uscc", "text"),
    ("notice_id", "text"),
    ("name", "text"),
    ("headcount", "integer"),
];

/// One kind of row of [`LOAD`]: `fact`, then every one of [`COLUMNS`], from
/// `columns` (name, expression) where it gives one, null otherwise.
fn branch(fact: &str, columns: &[(&str, &str)], from: &str) -> String {
    let list: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty)| match columns.iter().find(|(c, _)| c == name) {
            Some((_, expression)) => format!("{expression}::{ty} AS {name}"),
            None => format!("NULL::{ty} AS {name}"),
        })
        .collect();
    format!("SELECT '{fact}'::text AS fact, {} {from}", list.join(", "))
}

/// Everything [`load`] reads, for the households `$1`, in one statement:
/// - `member`: (household, person) for every person they ever named;
/// - `registration`: every registration of theirs and of every household
///   that ever named one of those people (moves in and out), each with its
///   members as arrays in position order;
/// - `household`: each one's row, the causes no version named yet, and its
///   visits, as arrays beside the row;
/// - `employment`, `subsidy`: every employment fact and 低保 change of
///   those people;
/// - `notice`: every planned, not withdrawn notice listing one of them, with
///   only those among its employees.
///
/// People are looked up with one scan of the person index by the array of
/// them (an init plan), however large the tables. The causes are read
/// `published IS DISTINCT FROM true` (the column is never null), so that the
/// predicate does not match the partial index of the unpublished causes by
/// arrival, which retention reads: with `NOT published` and no statistics
/// the planner read that whole index and filtered it by household (62 ms at
/// 1.1 M stored facts and growing, against 2 ms by the primary key). The
/// notices are found from the people (MATERIALIZED), never the other way
/// round, which reads every notice ever planned.
static LOAD: LazyLock<String> = LazyLock::new(|| {
    let branches = [
        branch(
            "member",
            &[("household_id", "household_id"), ("id_number", "id_number")],
            "FROM members",
        ),
        branch(
            "registration",
            &[
                ("arrival", "r.arrival"),
                ("household_id", "r.household_id"),
                ("division_code", "r.division_code"),
                ("effective_date", "r.effective_date"),
                ("time", "r.time"),
                ("address", "r.address"),
                ("cause", "r.cause"),
                ("ids", "m.ids"),
                ("names", "m.names"),
                ("relations", "m.relations"),
                ("able", "m.able"),
                ("seeking", "m.seeking"),
                ("statuses", "m.statuses"),
            ],
            "FROM registration r
             CROSS JOIN LATERAL (
                 SELECT array_agg(id_number ORDER BY position) AS ids, array_agg(name ORDER BY position) AS names,
                        array_agg(relation ORDER BY position) AS relations,
                        array_agg(able_to_work ORDER BY position) AS able,
                        array_agg(seeking_work ORDER BY position) AS seeking,
                        array_agg(status ORDER BY position) AS statuses
                 FROM registration_member m WHERE m.arrival = r.arrival
             ) AS m
             WHERE r.household_id = ANY((SELECT ids FROM related)::text[])",
        ),
        branch(
            "household",
            &[
                ("household_id", "h.household_id"),
                ("version", "h.version"),
                ("content", "h.content"),
                ("spell_version", "h.spell_version"),
                ("next_review", "h.next_review"),
                ("last_visit", "h.last_visit"),
                ("causes", "c.causes"),
                ("arrivals", "c.arrivals"),
                ("visit_arrivals", "v.arrivals"),
                ("visit_dates", "v.dates"),
                ("visit_times", "v.times"),
                ("visit_causes", "v.causes"),
            ],
            "FROM household h
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
        ),
        branch(
            "employment",
            &[
                ("arrival", "e.arrival"),
                ("id_number", "e.id_number"),
                ("date", "e.date"),
                ("time", "e.time"),
                ("event", "e.event"),
                ("employer_uscc", "e.employer_uscc"),
                ("kind", "e.kind"),
                ("contract_months", "e.contract_months"),
                ("monthly_wage_fen", "e.monthly_wage_fen"),
                ("social_insurance", "e.social_insurance"),
                ("visit_household", "e.visit_household"),
                ("finding", "e.finding"),
                ("cause", "e.cause"),
            ],
            "FROM UNNEST((SELECT ids FROM people)::text[]) AS p(id_number)
             JOIN employment_fact e ON e.id_number = p.id_number",
        ),
        branch(
            "subsidy",
            &[
                ("arrival", "s.arrival"),
                ("case_id", "s.case_id"),
                ("applicant", "s.applicant"),
                ("change", "s.change"),
                ("monthly_amount_fen", "s.monthly_amount_fen"),
                ("effective_date", "s.effective_date"),
                ("time", "s.time"),
                ("cause", "s.cause"),
            ],
            "FROM UNNEST((SELECT ids FROM people)::text[]) AS p(applicant)
             JOIN subsidy_change s ON s.applicant = p.applicant",
        ),
        branch(
            "notice",
            &[
                ("arrival", "n.arrival"),
                ("uscc", "n.uscc"),
                ("notice_id", "n.notice_id"),
                ("effective_date", "n.effective_date"),
                ("time", "n.time"),
                ("name", "n.name"),
                ("headcount", "n.headcount"),
                ("division_code", "n.division_code"),
                ("ids", "array_agg(e.id_number ORDER BY e.position)"),
                ("names", "array_agg(e.name ORDER BY e.position)"),
            ],
            "FROM listed e
             JOIN layoff_notice n ON n.arrival = e.arrival
             WHERE n.stage = 'planned'
               AND NOT EXISTS (SELECT 1 FROM layoff_notice w
                               WHERE w.stage = 'withdrawn' AND w.uscc = n.uscc AND w.notice_id = n.notice_id)
             GROUP BY n.arrival",
        ),
    ];
    format!(
        "WITH members AS MATERIALIZED (
             SELECT DISTINCT household_id, id_number FROM registration_member WHERE household_id = ANY($1)
         ),
         people AS MATERIALIZED (
             SELECT ARRAY(SELECT DISTINCT id_number FROM members) AS ids
         ),
         related AS MATERIALIZED (
             SELECT ARRAY(
                 SELECT unnest($1::text[])
                 UNION
                 SELECT household_id FROM registration_member WHERE id_number = ANY((SELECT ids FROM people)::text[])
             ) AS ids
         ),
         listed AS MATERIALIZED (
             SELECT arrival, position, id_number, name FROM layoff_employee
             WHERE id_number = ANY((SELECT ids FROM people)::text[])
         )
         {}",
        branches.join("\nUNION ALL\n")
    )
});

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

/// The statement [`load`] runs (its one parameter: the households' ids),
/// for tests and `EXPLAIN`.
pub fn statement() -> &'static str {
    LOAD.as_str()
}

/// Everything [`dynzero_planner::plan`] asks for, for several (locked)
/// households, read with one statement ([`LOAD`]); `pending`: causes this
/// transaction applied to them and has not written yet, which count among
/// the unnamed.
pub async fn load(
    tx: Tx<'_>,
    households: &[HouseholdId],
    pending: &HashMap<&str, Vec<Cause>>,
) -> anyhow::Result<Loads> {
    let ids: Vec<&str> = households.iter().map(HouseholdId::as_str).collect();
    let rows = sqlx::query(LOAD.as_str())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut registrations: Vec<WithCause<Registration>> = Vec::new();
    let mut employment: BTreeMap<String, Vec<WithCause<EmploymentFact>>> = BTreeMap::new();
    let mut subsidies: BTreeMap<String, Vec<WithCause<SubsidyChange>>> = BTreeMap::new();
    let mut notices: Vec<LayoffNotice> = Vec::new();
    let mut now = Households::default();
    for row in &rows {
        match row.get::<&str, _>("fact") {
            "member" => {
                named
                    .entry(row.get("household_id"))
                    .or_default()
                    .insert(row.get("id_number"));
            }
            "registration" => registrations.push(rows::registration(row)?),
            "household" => now.add(row)?,
            "employment" => {
                let (person, fact) = rows::employment(row)?;
                employment.entry(person).or_default().push(fact);
            }
            "subsidy" => {
                let (applicant, change) = rows::subsidy(row)?;
                subsidies.entry(applicant).or_default().push(change);
            }
            "notice" => notices.push(rows::planned_notice(row)?),
            other => anyhow::bail!("load: a row of an unknown kind {other:?}"),
        }
    }
    notices.sort_by_key(|n| n.order.arrival);
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
    } = now;
    let facts = Facts {
        registrations,
        registrations_of,
        registered_in,
        employment,
        visits,
        subsidies,
        notices,
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

/// What [`LOAD`] read of each household itself.
#[derive(Default)]
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

impl Households {
    /// A `household` row of [`LOAD`].
    fn add(&mut self, row: &PgRow) -> anyhow::Result<()> {
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
        self.published.insert(
            household.clone(),
            Published {
                version: row.get("version"),
                // Unreadable content (an older rendering) compares unequal:
                // the household is published afresh.
                state: content.as_ref().and_then(outbound::state_from_data),
                spell,
            },
        );
        self.stored.insert(
            household.clone(),
            Stored {
                next_review: row.get("next_review"),
                last_visit: row.get("last_visit"),
                spell,
                unnamed: !unnamed.is_empty(),
            },
        );
        if !unnamed.is_empty() {
            self.unnamed.insert(household.clone(), unnamed);
        }
        if !visits.is_empty() {
            self.visits.insert(household, visits);
        }
        Ok(())
    }
}

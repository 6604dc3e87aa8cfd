//! Household rows (the last published state), their version history, and the
//! causes waiting to be named by a version's `caused_by`.

use super::Tx;
use super::bulk::Chain;
use super::load::Stored;
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::outbound;
use dynzero_contracts::trace::TraceContext;
use dynzero_domain::reconcile::HouseholdState;
use dynzero_planner::{Cause, Current, Plan};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The inbound events a transaction applied to households, kept until the
/// households are folded and then written once, each already marked
/// `published` when its household's version names it (a version names every
/// cause not named before: [`dynzero_planner`]'s `caused_by`).
#[derive(Default)]
pub struct Causes {
    household_id: Vec<String>,
    cause: Vec<String>,
    arrival: Vec<i64>,
    /// The trace context each arrival's outputs carry, as the inbox holds it
    /// (`None`: the message had none): what this transaction knows without
    /// reading the inbox back.
    traces: HashMap<i64, Option<TraceContext>>,
}

impl Causes {
    pub fn push(&mut self, household_id: &str, cause: &str, arrival: i64) {
        self.household_id.push(household_id.to_string());
        self.cause.push(cause.to_string());
        self.arrival.push(arrival);
    }

    /// The trace context of an arrival this transaction stored, whether or
    /// not it bears on a household yet (a registration later in the batch
    /// may name its person).
    pub fn traced(&mut self, arrival: i64, trace: Option<&TraceContext>) {
        self.traces.insert(arrival, trace.cloned());
    }

    /// The trace context of an arrival this transaction applied: `None` when
    /// it is not one of them, `Some(None)` when its message had none.
    pub fn trace_of(&self, arrival: i64) -> Option<Option<&TraceContext>> {
        self.traces.get(&arrival).map(Option::as_ref)
    }

    /// Where to come back to if the work after this is rolled back.
    pub fn mark(&self) -> usize {
        self.household_id.len()
    }

    pub fn roll_back_to(&mut self, mark: usize) {
        self.household_id.truncate(mark);
        self.cause.truncate(mark);
        self.arrival.truncate(mark);
    }

    /// Each household's causes, in the order applied.
    pub fn by_household(&self) -> HashMap<&str, Vec<Cause>> {
        let mut by: HashMap<&str, Vec<Cause>> = HashMap::new();
        for ((h, name), &arrival) in self.household_id.iter().zip(&self.cause).zip(&self.arrival) {
            by.entry(h.as_str()).or_default().push(Cause {
                name: name.clone(),
                arrival,
            });
        }
        by
    }

    /// One statement: every cause, `published` when its household is one of
    /// `published`; a cause already recorded for a household is kept.
    fn write(self, chain: &mut Chain, published: &HashSet<&str>) {
        let flags: Vec<bool> = self
            .household_id
            .iter()
            .map(|h| published.contains(h.as_str()))
            .collect();
        chain
            .insert("household_cause", self.household_id.len())
            .column("household_id", "text", &self.household_id)
            .column("cause", "text", &self.cause)
            .column("arrival", "bigint", &self.arrival)
            .column("published", "boolean", &flags)
            .tail("ON CONFLICT DO NOTHING");
    }
}

/// A version published by a plan: the household's row and its history.
pub struct Publishing<'a> {
    pub current: &'a Current,
    /// The state's `data` as published.
    pub data: &'a Value,
}

/// Write what the plans decided of the households' rows (`rows`: what they
/// say now): the published state, spell, last visit and review date of those
/// that exist, the review date of those that do not yet, each only if it
/// changed; the history of every version published; the transaction's own
/// causes, named by a version or not; and, named now, the causes earlier
/// transactions left unnamed. Added to `chain`: with the outbox, one
/// statement for the batch.
pub fn write(
    chain: &mut Chain,
    plans: &[Plan],
    published: &[Publishing<'_>],
    rows: &HashMap<String, Stored>,
    causes: Causes,
    now: DateTime<Utc>,
) {
    let named: HashSet<&str> = published
        .iter()
        .map(|p| p.current.state.household_id.as_str())
        .collect();
    let changed: Vec<&Plan> = plans
        .iter()
        .filter(|p| {
            named.contains(p.household_id.as_str())
                || !rows
                    .get(p.household_id.as_str())
                    .is_some_and(|stored| leaves_as_is(p, stored))
        })
        .collect();
    update_rows(chain, &changed, &named);
    insert_history(chain, published, now);
    causes.write(chain, &named);
    let named_earlier: Vec<&str> = named
        .iter()
        .filter(|h| rows.get(**h).is_some_and(|r| r.unnamed))
        .copied()
        .collect();
    if !named_earlier.is_empty() {
        chain
            .statement(
                None,
                // `IS DISTINCT FROM true`, not `NOT published`: see `load::LOAD`.
                // The causes the chain inserts are not seen: they are written named.
                "UPDATE household_cause SET published = true
                 WHERE household_id = ANY($1) AND published IS DISTINCT FROM true",
            )
            .bind(named_earlier)
            .add();
    }
}

/// Whether a plan that publishes no version leaves the household's row as
/// it is: the same review date and, for a household that exists, the same
/// last visit and spell (its version, state and content are the ones there).
fn leaves_as_is(plan: &Plan, stored: &Stored) -> bool {
    plan.next_review == stored.next_review
        && plan
            .current
            .as_ref()
            .is_none_or(|c| c.last_visit == stored.last_visit && c.spell == stored.spell)
}

fn update_rows(chain: &mut Chain, plans: &[&Plan], publishing: &HashSet<&str>) {
    if plans.is_empty() {
        return;
    }
    // The content (the state's `data` without `version` and `caused_by`) is
    // rendered and written only with a new version: an unchanged household
    // keeps its document.
    let contents: Vec<Option<Value>> = plans
        .iter()
        .map(|p| {
            p.current
                .as_ref()
                .filter(|_| publishing.contains(p.household_id.as_str()))
                .map(|c| outbound::state_data(&c.state, 0, &[]))
        })
        .collect();
    // A household that does not exist yet keeps its row as it is, but for
    // the day to look at it again.
    chain
        .statement(
        None,
        "UPDATE household AS h
         SET version = COALESCE(t.version, h.version), content = COALESCE(t.content, h.content),
             status = COALESCE(t.status, h.status), zero_since = CASE WHEN t.version IS NULL THEN h.zero_since ELSE t.zero_since END,
             division_code = COALESCE(t.division_code, h.division_code),
             last_visit = CASE WHEN t.version IS NULL THEN h.last_visit ELSE t.last_visit END,
             spell_version = CASE WHEN t.version IS NULL THEN h.spell_version ELSE t.spell_version END,
             next_review = t.next_review, updated_at = now()
         FROM UNNEST($1::text[], $2::bigint[], $3::jsonb[], $4::text[], $5::date[], $6::text[],
                     $7::date[], $8::date[], $9::bigint[])
              AS t(household_id, version, content, status, zero_since, division_code, last_visit, next_review,
                   spell_version)
         WHERE h.household_id = t.household_id",
    )
    .bind(plans.iter().map(|p| p.household_id.as_str()).collect::<Vec<_>>())
    .bind(plans.iter().map(|p| p.current.as_ref().map(|c| c.version)).collect::<Vec<_>>())
    .bind(&contents)
    .bind(
        plans
            .iter()
            .map(|p| p.current.as_ref().map(|c| c.state.status.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        plans
            .iter()
            .map(|p| p.current.as_ref().and_then(|c| c.state.zero_since))
            .collect::<Vec<_>>(),
    )
    .bind(
        plans
            .iter()
            .map(|p| p.current.as_ref().map(|c| c.state.division_code.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        plans
            .iter()
            .map(|p| p.current.as_ref().and_then(|c| c.last_visit))
            .collect::<Vec<_>>(),
    )
    .bind(plans.iter().map(|p| p.next_review).collect::<Vec<_>>())
    .bind(
        plans
            .iter()
            .map(|p| p.current.as_ref().and_then(|c| c.spell))
            .collect::<Vec<_>>(),
    )
    .add();
}

/// One `household_version` row per version published.
fn insert_history(chain: &mut Chain, published: &[Publishing<'_>], now: DateTime<Utc>) {
    if published.is_empty() {
        return;
    }
    // Each version's causes as an array literal: arrays of arrays must be
    // rectangular, and a version names any number of causes.
    let arrivals: Vec<String> = published
        .iter()
        .map(|p| {
            let arrivals: Vec<String> = p
                .current
                .caused_by
                .iter()
                .flatten()
                .map(|c| c.arrival.to_string())
                .collect();
            format!("{{{}}}", arrivals.join(","))
        })
        .collect();
    let zero_since: Vec<Option<NaiveDate>> = published
        .iter()
        .map(|p| p.current.state.zero_since)
        .collect();
    chain
        .statement(
        None,
        "INSERT INTO household_version
             (household_id, version, status, zero_since, division_code, published_at, cause_arrivals, content)
         SELECT h, v, s, z, d, $6, c::bigint[], j
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::date[], $5::text[], $7::text[], $8::jsonb[])
              AS t(h, v, s, z, d, c, j)",
    )
    .bind(
        published
            .iter()
            .map(|p| p.current.state.household_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(published.iter().map(|p| p.current.version).collect::<Vec<_>>())
    .bind(
        published
            .iter()
            .map(|p| p.current.state.status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(&zero_since)
    .bind(
        published
            .iter()
            .map(|p| p.current.state.division_code.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(now)
    .bind(&arrivals)
    .bind(published.iter().map(|p| p.data).collect::<Vec<_>>())
    .add();
}

/// The published states of the households zero-employment in a county (the
/// first 6 digits of their division), in `household_id` order.
pub async fn zero_employment_in_county(
    tx: Tx<'_>,
    county: &str,
) -> sqlx::Result<Vec<HouseholdState>> {
    let contents: Vec<Value> = sqlx::query_scalar(
        "SELECT content FROM household
         WHERE status = 'zero_employment' AND division_code BETWEEN $1 AND $2 ORDER BY household_id",
    )
    .bind(format!("{county}000000"))
    .bind(format!("{county}999999"))
    .fetch_all(&mut *tx)
    .await?;
    Ok(contents
        .iter()
        .filter_map(outbound::state_from_data)
        .collect())
}

/// Up to `limit` households whose review date has come, locked; those
/// another transaction holds are skipped (it plans them itself).
pub async fn due_for_review(tx: Tx<'_>, today: NaiveDate, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT household_id FROM household WHERE next_review <= $1
         ORDER BY next_review LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(today)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
}

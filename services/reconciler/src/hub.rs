//! Applying one inbound message, or one date, to PostgreSQL: facts stored,
//! households reconciled with the domain core, state versions and alerts
//! written to the outbox — all in the caller's one transaction.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::{self, InboxOutcome, Tx};
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::inbound::{self, Inbound, InboundFact};
use dynzero_contracts::outbound::{self, Alert, Output};
use dynzero_contracts::rejection::{Reason, Rejection};
use dynzero_domain::alerts::{self, StatusAlert};
use dynzero_domain::facts::{JobPosting, LayoffNotice, LayoffStage};
use dynzero_domain::ids::{HouseholdId, Key};
use dynzero_domain::reconcile::{HouseholdStatus, reconcile};
use dynzero_domain::rules::Rules;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tracing::warn;

/// Why applying a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A dependency is down or the transaction lost a race: try again later, never reject.
    #[error("transient: {0}")]
    Transient(#[source] sqlx::Error),
    /// Anything else is a defect; the message becomes `poison` after repeated failures.
    #[error("failed: {0:#}")]
    Failed(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            ProcessError::Transient(e)
        } else {
            ProcessError::Failed(e.into())
        }
    }
}

impl From<anyhow::Error> for ProcessError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => ProcessError::Failed(other),
        }
    }
}

/// Outage or defect: decided by the runtime, in one place.
pub use dynzero_runtime::is_transient;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Applied,
    /// Same (source, id) and data as before: no further effect.
    Duplicate,
    Rejected(Rejection),
}

/// What became of one message of a batch.
#[derive(Debug)]
pub enum Outcome {
    Processed(Processed),
    /// Rolled back alone; a defect, counted toward `poison`.
    Failed(anyhow::Error),
}

/// What storing one message did.
enum Applied {
    /// Stored; these households must be folded.
    New(BTreeSet<String>),
    Duplicate,
    Conflict,
}

/// The people a message is about.
fn people_in(fact: &InboundFact) -> Vec<&str> {
    match fact {
        InboundFact::Registration(r) => r.members.iter().map(|m| m.id_number.as_str()).collect(),
        InboundFact::Visit { findings, .. } => {
            findings.iter().map(|f| f.id_number.as_str()).collect()
        }
        InboundFact::Layoff(n) => n.employees.iter().map(|(id, _)| id.as_str()).collect(),
        InboundFact::Employment(f) => vec![f.id_number.as_str()],
        InboundFact::Subsidy { change, .. } => vec![change.applicant.as_str()],
        InboundFact::Posting(_) => Vec::new(),
    }
}

/// Who named whom, for the people and households of one batch: read once,
/// under the batch's locks, and kept current as its registrations apply.
#[derive(Debug, Clone, Default)]
struct Naming {
    /// Person → every household that ever named them.
    households_of: HashMap<String, BTreeSet<String>>,
    /// Household → every person it ever named.
    people_of: HashMap<String, BTreeSet<String>>,
    /// The households this transaction holds locked.
    locked: BTreeSet<String>,
}

impl Naming {
    fn add(&mut self, household_id: &str, person: &str) {
        self.households_of
            .entry(person.to_string())
            .or_default()
            .insert(household_id.to_string());
        self.people_of
            .entry(household_id.to_string())
            .or_default()
            .insert(person.to_string());
    }

    fn households_naming<'a>(&self, people: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        people
            .into_iter()
            .filter_map(|p| self.households_of.get(p))
            .flatten()
            .cloned()
            .collect()
    }

    /// The households a stored fact bears on, and the one it is a cause of
    /// when that is not all of them (a registration names only its own).
    fn affected(&mut self, fact: &InboundFact) -> (BTreeSet<String>, Option<String>) {
        match fact {
            InboundFact::Registration(r) => {
                let h = r.household_id.as_str();
                for m in &r.members {
                    self.add(h, m.id_number.as_str());
                }
                let ever = self.people_of.get(h).cloned().unwrap_or_default();
                let mut affected = self.households_naming(ever.iter().map(String::as_str));
                affected.insert(h.to_string());
                (affected, Some(h.to_string()))
            }
            InboundFact::Visit { visit, .. } => {
                let mut affected = self.households_naming(people_in(fact));
                affected.insert(visit.household_id.to_string());
                (affected, None)
            }
            InboundFact::Layoff(n) if n.stage == LayoffStage::Withdrawn => (BTreeSet::new(), None),
            InboundFact::Posting(_) => (BTreeSet::new(), None),
            _ => (self.households_naming(people_in(fact)), None),
        }
    }
}

/// Take, in one global order, every lock a batch will need: people first,
/// then households. Two batches then never wait on each other in a cycle.
/// Then read who names whom, under those locks.
async fn lock_upfront(tx: Tx<'_>, batch: &[Inbound]) -> sqlx::Result<Naming> {
    let mut people: BTreeSet<&str> = BTreeSet::new();
    let mut registered: Vec<&str> = Vec::new();
    let mut households: BTreeSet<String> = BTreeSet::new();
    for inbound in batch {
        people.extend(people_in(&inbound.fact));
        match &inbound.fact {
            InboundFact::Registration(r) => {
                registered.push(r.household_id.as_str());
                households.insert(r.household_id.to_string());
            }
            InboundFact::Visit { visit, .. } => {
                households.insert(visit.household_id.to_string());
            }
            _ => {}
        }
    }
    let members = store::members_of(tx, &registered).await?;
    let mut everyone: BTreeSet<&str> = people.clone();
    everyone.extend(members.iter().map(|(_, p)| p.as_str()));
    let everyone: Vec<&str> = everyone.into_iter().collect();
    lock_people(tx, &everyone).await?;
    let named = store::households_naming(tx, &everyone).await?;
    households.extend(named.iter().map(|(h, _)| h.clone()));
    let households: Vec<String> = households.into_iter().collect();
    lock_households(tx, &households).await?;

    // Read again now that the locks are held: a registration that committed
    // in between is seen.
    let mut naming = Naming {
        locked: households.into_iter().collect(),
        ..Naming::default()
    };
    for (h, p) in store::members_of(tx, &registered).await? {
        naming.add(&h, &p);
    }
    let mut everyone: BTreeSet<&str> = people;
    everyone.extend(naming.people_of.values().flatten().map(String::as_str));
    let everyone: Vec<&str> = everyone.into_iter().collect();
    for (h, p) in store::households_naming(tx, &everyone).await? {
        naming.add(&h, &p);
    }
    Ok(naming)
}

/// What a transaction will put in the outbox, in order: state versions, and
/// alerts (each only if its id was never raised). Written by [`Outputs::write`]
/// with two statements, however many there are.
#[derive(Default)]
pub struct Outputs {
    entries: Vec<Pending>,
}

enum Pending {
    State(Output),
    Alert(Box<Alert>),
}

impl Outputs {
    fn state(&mut self, output: Output) {
        self.entries.push(Pending::State(output));
    }

    fn alert(&mut self, alert: Alert) {
        self.entries.push(Pending::Alert(Box::new(alert)));
    }

    /// Where to come back to if the work after this is rolled back.
    fn mark(&self) -> usize {
        self.entries.len()
    }

    fn roll_back_to(&mut self, mark: usize) {
        self.entries.truncate(mark);
    }

    /// Raise the alerts (once per occurrence: the alert table holds every id
    /// raised) and enqueue the states and the newly raised alerts.
    pub async fn write(&mut self, tx: Tx<'_>, now: DateTime<Utc>) -> sqlx::Result<()> {
        let entries = std::mem::take(&mut self.entries);
        if entries.is_empty() {
            return Ok(());
        }
        let outputs: Vec<(Output, Option<Box<Alert>>)> = entries
            .into_iter()
            .map(|e| match e {
                Pending::State(o) => (o, None),
                Pending::Alert(a) => (a.output(now), Some(a)),
            })
            .collect();
        let mut raised: HashSet<String> = HashSet::new();
        let alerts: Vec<(&Output, &Alert)> = outputs
            .iter()
            .filter_map(|(o, a)| a.as_deref().map(|a| (o, a)))
            .collect();
        if !alerts.is_empty() {
            let new: Vec<String> = sqlx::query_scalar(
                "INSERT INTO alert (id, kind, division_code, household_id, raised_at, summary, event)
                 SELECT i, k, d, h, $5, s, e
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::text[], $7::jsonb[]) AS t(i, k, d, h, s, e)
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(alerts.iter().map(|(o, _)| o.message_id.as_str()).collect::<Vec<_>>())
            .bind(alerts.iter().map(|(_, a)| a.kind.as_str()).collect::<Vec<_>>())
            .bind(alerts.iter().map(|(_, a)| a.division_code.as_str()).collect::<Vec<_>>())
            .bind(
                alerts
                    .iter()
                    .map(|(_, a)| a.household_id.as_ref().map(|h| h.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .bind(alerts.iter().map(|(_, a)| a.summary.as_str()).collect::<Vec<_>>())
            .bind(alerts.iter().map(|(o, _)| &o.event).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            raised.extend(new);
        }
        let mut streams = Vec::new();
        let mut routing_keys = Vec::new();
        let mut message_ids = Vec::new();
        let mut bodies = Vec::new();
        for (output, alert) in &outputs {
            // An alert raised before, or twice in this batch, is enqueued at most once.
            if alert.is_some() && !raised.remove(&output.message_id) {
                continue;
            }
            streams.push(output.stream.as_str());
            routing_keys.push(output.routing_key.as_str());
            message_ids.push(output.message_id.as_str());
            bodies.push(serde_json::to_vec(&output.event).unwrap_or_default());
        }
        if !streams.is_empty() {
            // `ORDER BY n`: the relay publishes in this order.
            sqlx::query(
                "INSERT INTO outbox (stream, routing_key, message_id, body)
                 SELECT s, r, m, b FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[])
                        WITH ORDINALITY AS t(s, r, m, b, n) ORDER BY n",
            )
            .bind(streams)
            .bind(routing_keys)
            .bind(message_ids)
            .bind(bodies)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// A household folded, and what its row becomes.
struct Folded {
    household_id: String,
    version: i64,
    content: Value,
    status: &'static str,
    zero_since: Option<NaiveDate>,
    division_code: String,
    last_visit: Option<NaiveDate>,
    next_review: Option<NaiveDate>,
}

/// The reconciler's state shared by its tasks.
pub struct Hub {
    pub pool: PgPool,
    pub rules: Rules,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

/// Advisory locks for people: facts about one person, and registrations
/// naming them, take their turn. Two levels, so that a batch waits only for
/// batches about the same people, while one naming thousands (a large
/// layoff) still takes a bounded number of locks:
/// - up to [`MOST_PERSON_LOCKS`] people: a shared lock on each one's region
///   (one of [`REGIONS`]) and an exclusive lock on each person;
/// - more: exclusive locks on their regions only.
///
/// Region locks come first, in region order, then person locks in key
/// order: one global order, so no two transactions wait on each other in a cycle.
const REGION_LOCK_SPACE: i32 = 0x647a;
const PERSON_LOCK_SPACE: i32 = 0x647b;
const REGIONS: u32 = 1024;
const MOST_PERSON_LOCKS: usize = 512;

/// A person's lock key: FNV-1a, stable across processes and versions
/// (unlike std's hasher), in 31 bits.
fn person_key(id_number: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id_number.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

fn region(person_key: i32) -> i32 {
    (person_key as u32 % REGIONS) as i32
}

/// How a batch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// All messages together: one statement per table for the batch.
    Together,
    /// Each message under its own savepoint, so one that fails rolls back alone.
    OneByOne,
}

impl Hub {
    /// Check, store and apply one message body in its own transaction.
    pub async fn process(&self, body: &[u8]) -> Result<Processed, ProcessError> {
        let mut outcomes = self.process_batch(&[body]).await?;
        match outcomes.pop() {
            Some(Outcome::Processed(p)) => Ok(p),
            Some(Outcome::Failed(e)) => Err(ProcessError::Failed(e)),
            None => Err(ProcessError::Failed(anyhow::anyhow!("no outcome"))),
        }
    }

    /// Check, store and apply several message bodies in one transaction, in
    /// order; one outcome per body. The batch is first applied as a whole
    /// (one statement per table); if that fails, it is applied again with
    /// each message under its own savepoint, so a message that fails is
    /// rolled back alone and the others commit. Households are folded once
    /// per batch; job postings, which read the households' states, are
    /// applied after that fold, wherever they are in the batch.
    pub async fn process_batch(&self, bodies: &[&[u8]]) -> Result<Vec<Outcome>, ProcessError> {
        let today = self.clock.today();
        let parsed: Vec<Result<Inbound, Rejection>> = bodies
            .iter()
            .map(|body| inbound::parse(body, self.settings.rules.max_body_bytes, today))
            .collect();
        let valid = parsed.iter().filter(|p| p.is_ok()).count();
        if valid == 0 {
            return Ok(parsed
                .into_iter()
                .filter_map(Result::err)
                .map(|r| Outcome::Processed(Processed::Rejected(r)))
                .collect());
        }
        match self.apply_batch(&parsed, Mode::Together).await {
            Err(ProcessError::Failed(e)) if valid > 1 => {
                warn!(error = %e, "a batch failed as a whole; applying its messages one by one");
                self.metrics.one_by_one();
                self.apply_batch(&parsed, Mode::OneByOne).await
            }
            other => other,
        }
    }

    async fn apply_batch(
        &self,
        parsed: &[Result<Inbound, Rejection>],
        mode: Mode,
    ) -> Result<Vec<Outcome>, ProcessError> {
        let now = self.clock.now();
        // Postings last: they read the households' states, folded first.
        let is_posting = |m: &Inbound| matches!(m.fact, InboundFact::Posting(_));
        let valid: Vec<&Inbound> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let order: Vec<usize> = (0..valid.len())
            .filter(|&i| !is_posting(valid[i]))
            .chain((0..valid.len()).filter(|&i| is_posting(valid[i])))
            .collect();
        let mut messages: Vec<Inbound> = order.iter().map(|&i| valid[i].clone()).collect();
        let mut tx = self.pool.begin().await?;
        let mut naming = lock_upfront(&mut tx, &messages).await?;
        let mut outputs = Outputs::default();
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let mut results: Vec<Outcome> = Vec::with_capacity(messages.len());
        let mut folded = false;
        let mut start = 0;
        while start < messages.len() {
            let posting = is_posting(&messages[start]);
            let end = if mode == Mode::OneByOne {
                start + 1
            } else if posting {
                messages.len()
            } else {
                messages
                    .iter()
                    .position(is_posting)
                    .unwrap_or(messages.len())
            };
            if posting && !folded {
                // A posting reads the households' states: bring them up to date first.
                folded = true;
                let households = std::mem::take(&mut pending);
                self.reconcile_households(&mut tx, &households, now, &mut outputs)
                    .await?;
            }
            let run = &mut messages[start..end];
            let applied = match mode {
                Mode::Together => self
                    .apply(&mut tx, run, &mut naming, &mut outputs)
                    .await?
                    .into_iter()
                    .map(Ok)
                    .collect::<Vec<Result<Applied, anyhow::Error>>>(),
                Mode::OneByOne => {
                    let before = (naming.clone(), outputs.mark());
                    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
                    match self
                        .apply(&mut savepoint, run, &mut naming, &mut outputs)
                        .await
                    {
                        Ok(applied) => {
                            savepoint.commit().await?;
                            applied.into_iter().map(Ok).collect()
                        }
                        Err(ProcessError::Transient(e)) => return Err(ProcessError::Transient(e)),
                        Err(ProcessError::Failed(e)) => {
                            savepoint.rollback().await?;
                            naming = before.0;
                            outputs.roll_back_to(before.1);
                            vec![Err(e)]
                        }
                    }
                }
            };
            for (inbound, applied) in run.iter().zip(applied) {
                results.push(match applied {
                    Ok(Applied::New(affected)) => {
                        pending.extend(affected);
                        Outcome::Processed(Processed::Applied)
                    }
                    Ok(Applied::Duplicate) => Outcome::Processed(Processed::Duplicate),
                    Ok(Applied::Conflict) => {
                        Outcome::Processed(Processed::Rejected(Rejection::new(
                            Reason::DuplicateIdConflict,
                            format!(
                                "/id: ({}, {}) was processed before with different data",
                                inbound.source, inbound.id
                            ),
                        )))
                    }
                    Err(e) => Outcome::Failed(e),
                });
            }
            start = end;
        }
        self.reconcile_households(&mut tx, &pending, now, &mut outputs)
            .await?;
        outputs.write(&mut tx, now).await?;
        tx.commit().await?;

        // Rejected at parsing, or applied: back in the bodies' order.
        let mut in_order: Vec<Option<Outcome>> = (0..results.len()).map(|_| None).collect();
        for (outcome, &i) in results.into_iter().zip(&order) {
            in_order[i] = Some(outcome);
        }
        let mut results = in_order.into_iter().flatten();
        Ok(parsed
            .iter()
            .map(|p| match p {
                Err(rejection) => Outcome::Processed(Processed::Rejected(rejection.clone())),
                Ok(_) => results
                    .next()
                    .unwrap_or_else(|| Outcome::Failed(anyhow::anyhow!("no outcome"))),
            })
            .collect())
    }

    /// Store several messages' facts (one statement per table) and raise
    /// what the messages themselves raise; one result per message.
    async fn apply(
        &self,
        tx: Tx<'_>,
        messages: &mut [Inbound],
        naming: &mut Naming,
        outputs: &mut Outputs,
    ) -> Result<Vec<Applied>, ProcessError> {
        let inbox = store::inbox_many(tx, messages).await?;
        let mut rows = store::FactRows::default();
        let mut causes = store::Causes::default();
        let mut applied = Vec::with_capacity(messages.len());
        let mut arrivals: HashSet<i64> = HashSet::new();
        let mut new: Vec<usize> = Vec::new();
        for (i, (inbound, outcome)) in messages.iter_mut().zip(inbox).enumerate() {
            let arrival = match outcome {
                InboxOutcome::New(arrival) => arrival,
                InboxOutcome::Duplicate => {
                    applied.push(Applied::Duplicate);
                    continue;
                }
                InboxOutcome::Conflict => {
                    applied.push(Applied::Conflict);
                    continue;
                }
            };
            arrivals.insert(arrival);
            new.push(i);
            inbound.fact.set_arrival(arrival);
            let cause = inbound.cause();
            rows.add(&inbound.fact, arrival, &cause, &inbound.data);
            let (affected, caused) = naming.affected(&inbound.fact);
            // Another household's registration is never named in caused_by.
            for h in affected
                .iter()
                .filter(|h| caused.as_deref().is_none_or(|c| c == h.as_str()))
            {
                causes.push(h, &cause, arrival);
            }
            applied.push(Applied::New(affected));
        }
        rows.write(tx).await?;
        // Locked up front with the whole batch's, unless a registration
        // committed by another transaction in between named someone more.
        let unlocked: Vec<String> = applied
            .iter()
            .filter_map(|a| match a {
                Applied::New(affected) => Some(affected),
                _ => None,
            })
            .flatten()
            .filter(|h| !naming.locked.contains(*h))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unlocked.is_empty() {
            lock_households(tx, &unlocked).await?;
            naming.locked.extend(unlocked);
        }
        causes.write(tx).await?;

        let stored = || new.iter().map(|&i| &messages[i]);
        let notices: Vec<&LayoffNotice> = stored()
            .filter_map(|m| match &m.fact {
                InboundFact::Layoff(n) if n.stage != LayoffStage::Withdrawn => Some(n),
                _ => None,
            })
            .collect();
        if !notices.is_empty() {
            self.raise_layoff_alerts(tx, &notices, &arrivals, outputs)
                .await?;
        }
        for inbound in stored() {
            if let InboundFact::Posting(posting) = &inbound.fact {
                self.raise_job_matches(tx, posting, &inbound.data, outputs)
                    .await?;
            }
        }
        Ok(applied)
    }

    /// Early warnings for planned notices not withdrawn before them, and
    /// "unreported" for effective ones with no planned notice early enough.
    /// Only what arrived before a notice counts, as if each came alone.
    async fn raise_layoff_alerts(
        &self,
        tx: Tx<'_>,
        notices: &[&LayoffNotice],
        batch: &HashSet<i64>,
        outputs: &mut Outputs,
    ) -> Result<(), ProcessError> {
        let keys: Vec<(&str, &str)> = notices
            .iter()
            .map(|n| (n.enterprise.uscc.as_str(), n.notice_id.as_str()))
            .collect();
        let stages = store::notice_stages(tx, &keys).await?;
        for notice in notices {
            let arrival = notice.order.arrival;
            let before = |stage: LayoffStage| {
                stages.iter().filter(move |s| {
                    s.stage == stage
                        && s.uscc == notice.enterprise.uscc.as_str()
                        && s.notice_id == notice.notice_id.as_str()
                        && (s.arrival < arrival || !batch.contains(&s.arrival))
                })
            };
            match notice.stage {
                LayoffStage::Planned => {
                    if before(LayoffStage::Withdrawn).next().is_none()
                        && let Some(size) = alerts::layoff_early_warning(notice)
                    {
                        outputs.alert(outbound::layoff_early_warning(
                            &notice.enterprise,
                            &notice.notice_id,
                            size,
                            notice.effective_date(),
                        ));
                    }
                }
                LayoffStage::Effective => {
                    let planned: Vec<_> = before(LayoffStage::Planned).map(|s| s.time).collect();
                    if let Some(size) = alerts::layoff_unreported(notice, planned) {
                        outputs.alert(outbound::layoff_unreported(
                            &notice.enterprise,
                            &notice.notice_id,
                            size,
                            notice.effective_date(),
                        ));
                    }
                }
                LayoffStage::Withdrawn => {}
            }
        }
        Ok(())
    }

    /// Job matches for the zero-employment households of the posting's county.
    async fn raise_job_matches(
        &self,
        tx: Tx<'_>,
        posting: &JobPosting,
        received: &Value,
        outputs: &mut Outputs,
    ) -> Result<(), ProcessError> {
        let today = self.clock.today();
        let county = posting.division_code.county();
        // The published states: the sweeper keeps them current with the date.
        let candidates: Vec<Value> = sqlx::query_scalar(
            "SELECT content FROM household
             WHERE status = 'zero_employment' AND division_code BETWEEN $1 AND $2 ORDER BY household_id",
        )
        .bind(format!("{county}000000"))
        .bind(format!("{county}999999"))
        .fetch_all(&mut *tx)
        .await?;
        let states: Vec<_> = candidates
            .iter()
            .filter_map(outbound::state_from_data)
            .collect();
        let data = outbound::posting_data(posting, received);
        for m in alerts::job_matches(posting, &states, today) {
            if let Some(state) = states.iter().find(|s| s.household_id == m.household_id) {
                outputs.alert(outbound::job_match(state, posting, data.clone(), &m));
            }
        }
        Ok(())
    }

    /// Refold (locked) households as of today, loading their facts together;
    /// publish a version of each that changed, and raise what that and
    /// today's date call for. A handful of statements, however many households.
    pub async fn reconcile_households(
        &self,
        tx: Tx<'_>,
        households: &BTreeSet<String>,
        now: DateTime<Utc>,
        outputs: &mut Outputs,
    ) -> Result<(), ProcessError> {
        if households.is_empty() {
            return Ok(());
        }
        let ids: Vec<HouseholdId> = households
            .iter()
            .map(|h| Key::parse(h).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<Result<_, _>>()?;
        let loaded = store::load_many(tx, &ids).await?;
        let today = self.clock.today();

        // First the folds, and which households have a new version.
        let mut folds = Vec::with_capacity(ids.len());
        let mut first_causes = store::Causes::default();
        let mut changed: Vec<&str> = Vec::new();
        for (household_id, loaded) in ids.iter().zip(&loaded) {
            let r = reconcile(&loaded.facts, today, &self.rules);
            let content = r.as_ref().map(|r| outbound::state_data(&r.state, 0, &[]));
            if let Some(content) = &content
                && loaded.published.content.as_ref() != Some(content)
            {
                changed.push(household_id.as_str());
                if loaded.published.version == 0 {
                    // A first version names every inbound event applied to it.
                    for (arrival, cause) in &loaded.causes {
                        first_causes.push(household_id.as_str(), cause, *arrival);
                    }
                }
            }
            folds.push((household_id, loaded, r, content));
        }
        first_causes.write(tx).await?;
        let mut caused_by: HashMap<String, Vec<String>> = HashMap::new();
        if !changed.is_empty() {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "UPDATE household_cause SET published = true
                 WHERE household_id = ANY($1) AND NOT published RETURNING household_id, cause",
            )
            .bind(&changed)
            .fetch_all(&mut *tx)
            .await?;
            for (h, cause) in rows {
                caused_by.entry(h).or_default().push(cause);
            }
        }

        // Then the versions and alerts, and each household's new row.
        let mut rows: Vec<Folded> = Vec::with_capacity(folds.len());
        let mut waiting: (Vec<&str>, Vec<Option<NaiveDate>>) = Default::default();
        for (household_id, loaded, r, content) in folds {
            let h = household_id.as_str();
            let (Some(r), Some(content)) = (r, content) else {
                // Not in existence yet: look again on its first registration's date.
                let first = loaded
                    .facts
                    .registrations
                    .iter()
                    .filter(|r| r.household_id == *household_id)
                    .map(|r| r.order.date)
                    .min();
                waiting.0.push(h);
                waiting.1.push(first);
                continue;
            };
            let published = &loaded.published;
            let state = &r.state;
            let mut version = published.version;
            if published.content.as_ref() != Some(&content) {
                version += 1;
                let mut caused_by = caused_by.remove(h).unwrap_or_default();
                caused_by.sort();
                let output = outbound::state_output(state, version, &caused_by, now);
                let household = output.event["data"].clone();
                outputs.state(output);
                let previous = published
                    .status
                    .as_deref()
                    .and_then(status_of)
                    .map(|s| (s, published.zero_since));
                match alerts::status_change(previous, state.status, r.status_since) {
                    Some(StatusAlert::ZeroEmploymentNew) => {
                        outputs.alert(outbound::zero_employment_new(state, household, version));
                    }
                    Some(StatusAlert::ZeroEmploymentResolved { days }) => {
                        outputs.alert(outbound::zero_employment_resolved(
                            state, household, version, days,
                        ));
                    }
                    None => {}
                }
            }
            for conflict in &r.conflicts {
                outputs.alert(outbound::data_conflict(
                    state,
                    &conflict.visit.key,
                    &conflict.id_number,
                    conflict.visit_date,
                    &conflict.employer_uscc,
                ));
            }
            let limit = self.settings.rules.placement_limit_days;
            if let (Some(days), Some(since)) = (
                alerts::placement_overdue(state, today, limit),
                state.zero_since,
            ) {
                outputs.alert(outbound::placement_overdue(state, since, days));
            }
            if let (Some(gap_start), Some(since)) = (
                alerts::visit_overdue(state, r.last_visit, today),
                state.zero_since,
            ) {
                outputs.alert(outbound::visit_overdue(
                    state,
                    since,
                    r.last_visit,
                    gap_start,
                ));
            }
            if !loaded.notices.is_empty() {
                let household = outbound::state_data(state, version, &[]);
                for notice in &loaded.notices {
                    if let Some(members) =
                        alerts::household_at_risk(&loaded.facts, notice, today, &self.rules)
                    {
                        outputs.alert(outbound::household_at_risk(
                            state,
                            household.clone(),
                            &notice.enterprise,
                            &notice.notice_id,
                            notice.effective_date(),
                            &members,
                        ));
                    }
                }
            }
            let next_review = [
                r.next_change,
                alerts::next_overdue_check(state, r.last_visit, today, limit),
            ]
            .into_iter()
            .flatten()
            .min();
            rows.push(Folded {
                household_id: h.to_string(),
                version,
                content,
                status: state.status.as_str(),
                zero_since: state.zero_since,
                division_code: state.division_code.to_string(),
                last_visit: r.last_visit,
                next_review,
            });
        }
        if !rows.is_empty() {
            sqlx::query(
                "UPDATE household AS h
                 SET version = t.version, content = t.content, status = t.status, zero_since = t.zero_since,
                     division_code = t.division_code, last_visit = t.last_visit, next_review = t.next_review,
                     updated_at = now()
                 FROM UNNEST($1::text[], $2::bigint[], $3::jsonb[], $4::text[], $5::date[], $6::text[],
                             $7::date[], $8::date[])
                      AS t(household_id, version, content, status, zero_since, division_code, last_visit, next_review)
                 WHERE h.household_id = t.household_id",
            )
            .bind(rows.iter().map(|r| r.household_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| &r.content).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.zero_since).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.division_code.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.last_visit).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.next_review).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !waiting.0.is_empty() {
            sqlx::query(
                "UPDATE household AS h SET next_review = t.next_review, updated_at = now()
                 FROM UNNEST($1::text[], $2::date[]) AS t(household_id, next_review)
                 WHERE h.household_id = t.household_id",
            )
            .bind(&waiting.0)
            .bind(&waiting.1)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Re-evaluate the households whose review date has come, up to `batch`
    /// of them in one transaction (households another transaction holds are
    /// skipped: it folds them itself). Returns how many.
    pub async fn sweep(&self, batch: i64) -> Result<usize, ProcessError> {
        let today = self.clock.today();
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let due: BTreeSet<String> = sqlx::query_scalar(
            "SELECT household_id FROM household WHERE next_review <= $1
             ORDER BY next_review LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(today)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut outputs = Outputs::default();
        self.reconcile_households(&mut tx, &due, now, &mut outputs)
            .await?;
        outputs.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(due.len())
    }
}

/// A household row's status word.
fn status_of(word: &str) -> Option<HouseholdStatus> {
    match word {
        "zero_employment" => Some(HouseholdStatus::ZeroEmployment),
        "employed" => Some(HouseholdStatus::Employed),
        "no_labour_force" => Some(HouseholdStatus::NoLabourForce),
        _ => None,
    }
}

async fn lock_people(tx: Tx<'_>, people: &[&str]) -> sqlx::Result<()> {
    let keys: BTreeSet<i32> = people.iter().map(|p| person_key(p)).collect();
    if keys.is_empty() {
        return Ok(());
    }
    let regions: BTreeSet<i32> = keys.iter().map(|&k| region(k)).collect();
    let regions: Vec<i32> = regions.into_iter().collect();
    // Each statement takes its locks in the order of its sorted array.
    if keys.len() > MOST_PERSON_LOCKS {
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock($1, r)) FROM (SELECT unnest($2::int[]) AS r) AS s",
        )
        .bind(REGION_LOCK_SPACE)
        .bind(regions)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock_shared($1, r)) FROM (SELECT unnest($2::int[]) AS r) AS s",
    )
    .bind(REGION_LOCK_SPACE)
    .bind(regions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock($1, p)) FROM (SELECT unnest($2::int[]) AS p) AS s",
    )
    .bind(PERSON_LOCK_SPACE)
    .bind(keys.into_iter().collect::<Vec<i32>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Create missing household rows and lock all of them, in household_id order.
async fn lock_households(tx: Tx<'_>, households: &[String]) -> sqlx::Result<()> {
    if households.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO household (household_id) SELECT h FROM UNNEST($1::text[]) AS h ORDER BY h
         ON CONFLICT DO NOTHING",
    )
    .bind(households)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT household_id FROM household WHERE household_id = ANY($1) ORDER BY household_id FOR UPDATE")
        .bind(households)
        .fetch_all(&mut *tx)
        .await?;
    Ok(())
}

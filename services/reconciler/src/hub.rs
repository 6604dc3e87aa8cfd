//! Applying one inbound message, or one date, to PostgreSQL: facts stored,
//! households reconciled with the domain core, state versions and alerts
//! written to the outbox — all in the caller's one transaction.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::{self, InboxOutcome, Tx};
use chrono::{DateTime, Utc};
use dynzero_contracts::inbound::{self, Inbound, InboundFact};
use dynzero_contracts::outbound::{self, Alert, Output};
use dynzero_contracts::rejection::{Reason, Rejection};
use dynzero_domain::alerts::{self, StatusAlert};
use dynzero_domain::facts::LayoffStage;
use dynzero_domain::ids::{HouseholdId, Key};
use dynzero_domain::reconcile::{HouseholdStatus, reconcile};
use dynzero_domain::rules::Rules;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::sync::Arc;

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

/// Connection trouble, a restarting server, a serialization failure or a
/// deadlock: worth waiting for.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || code == "40001" // serialization failure
                || code == "40P01" // deadlock detected
        }),
        _ => false,
    }
}

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
    New(Vec<String>),
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

/// Take, in one global order, every lock a batch will need: people first,
/// then households. Two batches then never wait on each other in a cycle.
async fn lock_upfront<'a>(
    tx: Tx<'_>,
    batch: impl Iterator<Item = &'a Inbound>,
) -> sqlx::Result<()> {
    let mut people: Vec<String> = Vec::new();
    let mut households: Vec<String> = Vec::new();
    for inbound in batch {
        people.extend(people_in(&inbound.fact).into_iter().map(str::to_string));
        match &inbound.fact {
            InboundFact::Registration(r) => {
                households.push(r.household_id.to_string());
                people.extend(store::people_of(tx, r.household_id.as_str()).await?);
            }
            InboundFact::Visit { visit, .. } => households.push(visit.household_id.to_string()),
            _ => {}
        }
    }
    let refs: Vec<&str> = people.iter().map(String::as_str).collect();
    lock_people(tx, &refs).await?;
    households.extend(store::households_naming(tx, &refs).await?);
    households.sort();
    households.dedup();
    lock_households(tx, &households).await
}

/// The reconciler's state shared by its tasks.
pub struct Hub {
    pub pool: PgPool,
    pub rules: Rules,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

/// Advisory-lock namespace for people: facts about one person, and
/// registrations naming them, take their turn.
const PERSON_LOCK_SPACE: i32 = 0x647a;
const PERSON_LOCK_BUCKETS: u32 = 1024;

fn person_bucket(id_number: &str) -> i32 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id_number.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % PERSON_LOCK_BUCKETS) as i32
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
    /// order; one outcome per body. A message that fails is rolled back to its
    /// savepoint alone; the others commit. Households are folded once per
    /// batch, at its end (and before a posting, which reads their states).
    pub async fn process_batch(&self, bodies: &[&[u8]]) -> Result<Vec<Outcome>, ProcessError> {
        let now = self.clock.now();
        let today = self.clock.today();
        let parsed: Vec<Result<Inbound, Rejection>> = bodies
            .iter()
            .map(|body| inbound::parse(body, self.settings.rules.max_body_bytes, today))
            .collect();
        if parsed.iter().all(Result::is_err) {
            return Ok(parsed
                .into_iter()
                .filter_map(Result::err)
                .map(|r| Outcome::Processed(Processed::Rejected(r)))
                .collect());
        }
        let mut tx = self.pool.begin().await?;
        lock_upfront(&mut tx, parsed.iter().filter_map(|p| p.as_ref().ok())).await?;
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let mut outcomes = Vec::with_capacity(parsed.len());
        for message in parsed {
            let mut inbound = match message {
                Ok(inbound) => inbound,
                Err(rejection) => {
                    outcomes.push(Outcome::Processed(Processed::Rejected(rejection)));
                    continue;
                }
            };
            if matches!(inbound.fact, InboundFact::Posting(_)) {
                self.reconcile_pending(&mut tx, &mut pending, now).await?;
            }
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
            match self.apply(&mut savepoint, &mut inbound, now).await {
                Ok(Applied::New(affected)) => {
                    savepoint.commit().await?;
                    pending.extend(affected);
                    outcomes.push(Outcome::Processed(Processed::Applied));
                }
                Ok(Applied::Duplicate) => {
                    savepoint.commit().await?;
                    outcomes.push(Outcome::Processed(Processed::Duplicate));
                }
                Ok(Applied::Conflict) => {
                    savepoint.rollback().await?;
                    outcomes.push(Outcome::Processed(Processed::Rejected(Rejection::new(
                        Reason::DuplicateIdConflict,
                        format!(
                            "/id: ({}, {}) was processed before with different data",
                            inbound.source, inbound.id
                        ),
                    ))));
                }
                Err(ProcessError::Transient(e)) => return Err(ProcessError::Transient(e)),
                Err(ProcessError::Failed(e)) => {
                    savepoint.rollback().await?;
                    outcomes.push(Outcome::Failed(e));
                }
            }
        }
        self.reconcile_pending(&mut tx, &mut pending, now).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn reconcile_pending(
        &self,
        tx: Tx<'_>,
        pending: &mut BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<(), ProcessError> {
        let mut ids = Vec::with_capacity(pending.len());
        for h in std::mem::take(pending) {
            ids.push(Key::parse(&h).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        self.reconcile_households(tx, &ids, now).await
    }

    /// Refold (locked) households, loading their facts together.
    pub async fn reconcile_households(
        &self,
        tx: Tx<'_>,
        households: &[HouseholdId],
        now: DateTime<Utc>,
    ) -> Result<(), ProcessError> {
        if households.is_empty() {
            return Ok(());
        }
        let loaded = store::load_many(tx, households).await?;
        for (household_id, loaded) in households.iter().zip(loaded) {
            self.reconcile_loaded(tx, household_id, loaded, now).await?;
        }
        Ok(())
    }

    /// Refold one (locked) household.
    pub async fn reconcile_household(
        &self,
        tx: Tx<'_>,
        household_id: &HouseholdId,
        now: DateTime<Utc>,
    ) -> Result<(), ProcessError> {
        self.reconcile_households(tx, std::slice::from_ref(household_id), now)
            .await
    }

    /// Store one message's facts and raise what the message itself raises;
    /// returns the households to fold.
    async fn apply(
        &self,
        tx: Tx<'_>,
        inbound: &mut Inbound,
        now: DateTime<Utc>,
    ) -> Result<Applied, ProcessError> {
        let arrival = match store::inbox(tx, inbound).await? {
            InboxOutcome::New(arrival) => arrival,
            InboxOutcome::Duplicate => return Ok(Applied::Duplicate),
            InboxOutcome::Conflict => return Ok(Applied::Conflict),
        };
        inbound.fact.set_arrival(arrival);
        let cause = inbound.cause();
        store::store_fact(tx, &inbound.fact, arrival, &cause, &inbound.data).await?;
        let inbound = &*inbound;
        // Their locks were taken up front, with the whole batch's.
        let people = people_in(&inbound.fact);

        // Which households the fact bears on, and which of them it is a cause of.
        let (affected, caused): (Vec<String>, Option<String>) = match &inbound.fact {
            InboundFact::Registration(r) => {
                let h = r.household_id.as_str();
                let ever = store::people_of(tx, h).await?;
                let ever: Vec<&str> = ever.iter().map(String::as_str).collect();
                let mut affected = store::households_naming(tx, &ever).await?;
                affected.push(h.to_string());
                (affected, Some(h.to_string()))
            }
            InboundFact::Visit { visit, .. } => {
                let mut affected = store::households_naming(tx, &people).await?;
                affected.push(visit.household_id.to_string());
                (affected, None)
            }
            InboundFact::Layoff(n) if n.stage == LayoffStage::Withdrawn => (Vec::new(), None),
            InboundFact::Posting(_) => (Vec::new(), None),
            _ => (store::households_naming(tx, &people).await?, None),
        };
        let mut affected = affected;
        affected.sort();
        affected.dedup();
        lock_households(tx, &affected).await?;
        // Another household's registration is never named in caused_by.
        let named: Vec<&String> = affected
            .iter()
            .filter(|h| caused.as_deref().is_none_or(|c| c == h.as_str()))
            .collect();
        if !named.is_empty() {
            sqlx::query(
                "INSERT INTO household_cause (household_id, cause, arrival)
                 SELECT h, $2, $3 FROM UNNEST($1::text[]) AS h ON CONFLICT DO NOTHING",
            )
            .bind(named)
            .bind(&cause)
            .bind(arrival)
            .execute(&mut *tx)
            .await?;
        }

        match &inbound.fact {
            InboundFact::Layoff(notice) => {
                let uscc = notice.enterprise.uscc.as_str();
                let id = notice.notice_id.as_str();
                match notice.stage {
                    LayoffStage::Planned => {
                        if !store::is_withdrawn(tx, uscc, id).await?
                            && let Some(size) = alerts::layoff_early_warning(notice)
                        {
                            let alert = outbound::layoff_early_warning(
                                &notice.enterprise,
                                &notice.notice_id,
                                size,
                                notice.effective_date(),
                            );
                            raise(tx, &alert, now).await?;
                        }
                    }
                    LayoffStage::Effective => {
                        let planned = store::planned_times(tx, uscc, id).await?;
                        if let Some(size) = alerts::layoff_unreported(notice, planned) {
                            let alert = outbound::layoff_unreported(
                                &notice.enterprise,
                                &notice.notice_id,
                                size,
                                notice.effective_date(),
                            );
                            raise(tx, &alert, now).await?;
                        }
                    }
                    LayoffStage::Withdrawn => {}
                }
            }
            InboundFact::Posting(posting) => {
                let today = self.clock.today();
                let county = posting.division_code.county();
                // The published states: the sweeper keeps them current with the date.
                let candidates: Vec<Value> = sqlx::query_scalar(
                    "SELECT content FROM household
                     WHERE status = 'zero_employment' AND left(division_code, 6) = $1 ORDER BY household_id",
                )
                .bind(county)
                .fetch_all(&mut *tx)
                .await?;
                let states: Vec<_> = candidates
                    .iter()
                    .filter_map(outbound::state_from_data)
                    .collect();
                let data = outbound::posting_data(posting, &inbound.data);
                for m in alerts::job_matches(posting, &states, today) {
                    if let Some(state) = states.iter().find(|s| s.household_id == m.household_id) {
                        raise(
                            tx,
                            &outbound::job_match(state, posting, data.clone(), &m),
                            now,
                        )
                        .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(Applied::New(affected))
    }

    /// Fold one (locked) household as of today; publish a version if it
    /// changed, and raise what that and today's date call for.
    async fn reconcile_loaded(
        &self,
        tx: Tx<'_>,
        household_id: &HouseholdId,
        loaded: store::Loaded,
        now: DateTime<Utc>,
    ) -> Result<(), ProcessError> {
        let h = household_id.as_str();
        let today = self.clock.today();
        let version = loaded.published.version;
        let content = loaded.published.content.clone();
        let previous_status = loaded.published.status.as_deref().and_then(|s| match s {
            "zero_employment" => Some(HouseholdStatus::ZeroEmployment),
            "employed" => Some(HouseholdStatus::Employed),
            "no_labour_force" => Some(HouseholdStatus::NoLabourForce),
            _ => None,
        });
        let previous_zero_since = loaded.published.zero_since;

        let Some(r) = reconcile(&loaded.facts, today, &self.rules) else {
            // Not in existence yet: look again on its first registration's date.
            let first = loaded
                .facts
                .registrations
                .iter()
                .filter(|r| r.household_id == *household_id)
                .map(|r| r.order.date)
                .min();
            sqlx::query(
                "UPDATE household SET next_review = $2, updated_at = now() WHERE household_id = $1",
            )
            .bind(h)
            .bind(first)
            .execute(&mut *tx)
            .await?;
            return Ok(());
        };
        let state = &r.state;
        let new_content = outbound::state_data(state, 0, &[]);
        let mut version = version;
        if content.as_ref() != Some(&new_content) {
            if version == 0 {
                // A first version names every inbound event applied to it.
                let (arrivals, causes): (Vec<i64>, Vec<String>) =
                    loaded.causes.iter().cloned().unzip();
                sqlx::query(
                    "INSERT INTO household_cause (household_id, cause, arrival)
                     SELECT $1, c, a FROM UNNEST($2::text[], $3::bigint[]) AS t(c, a) ON CONFLICT DO NOTHING",
                )
                .bind(h)
                .bind(causes)
                .bind(arrivals)
                .execute(&mut *tx)
                .await?;
            }
            version += 1;
            let caused_by: Vec<String> = sqlx::query_scalar(
                "UPDATE household_cause SET published = true
                 WHERE household_id = $1 AND NOT published RETURNING cause",
            )
            .bind(h)
            .fetch_all(&mut *tx)
            .await?;
            let mut caused_by = caused_by;
            caused_by.sort();
            let output = outbound::state_output(state, version, &caused_by, now);
            enqueue(tx, &output).await?;
            let household = output.event["data"].clone();
            let previous = previous_status.map(|s| (s, previous_zero_since));
            match alerts::status_change(previous, state.status, r.status_since) {
                Some(StatusAlert::ZeroEmploymentNew) => {
                    raise(
                        tx,
                        &outbound::zero_employment_new(state, household, version),
                        now,
                    )
                    .await?;
                }
                Some(StatusAlert::ZeroEmploymentResolved { days }) => {
                    raise(
                        tx,
                        &outbound::zero_employment_resolved(state, household, version, days),
                        now,
                    )
                    .await?;
                }
                None => {}
            }
        }

        for conflict in &r.conflicts {
            let alert = outbound::data_conflict(
                state,
                &conflict.visit.key,
                &conflict.id_number,
                conflict.visit_date,
                &conflict.employer_uscc,
            );
            raise(tx, &alert, now).await?;
        }
        let limit = self.settings.rules.placement_limit_days;
        if let (Some(days), Some(since)) = (
            alerts::placement_overdue(state, today, limit),
            state.zero_since,
        ) {
            raise(tx, &outbound::placement_overdue(state, since, days), now).await?;
        }
        if let (Some(gap_start), Some(since)) = (
            alerts::visit_overdue(state, r.last_visit, today),
            state.zero_since,
        ) {
            raise(
                tx,
                &outbound::visit_overdue(state, since, r.last_visit, gap_start),
                now,
            )
            .await?;
        }
        let notices = &loaded.notices;
        if !notices.is_empty() {
            let household = outbound::state_data(state, version, &[]);
            for notice in notices {
                if let Some(members) =
                    alerts::household_at_risk(&loaded.facts, notice, today, &self.rules)
                {
                    let alert = outbound::household_at_risk(
                        state,
                        household.clone(),
                        &notice.enterprise,
                        &notice.notice_id,
                        notice.effective_date(),
                        &members,
                    );
                    raise(tx, &alert, now).await?;
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
        sqlx::query(
            "UPDATE household SET version = $2, content = $3, status = $4, zero_since = $5,
                    division_code = $6, last_visit = $7, next_review = $8, updated_at = now()
             WHERE household_id = $1",
        )
        .bind(h)
        .bind(version)
        .bind(new_content)
        .bind(state.status.as_str())
        .bind(state.zero_since)
        .bind(state.division_code.as_str())
        .bind(r.last_visit)
        .bind(next_review)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Re-evaluate the households whose review date has come. Returns how many.
    pub async fn sweep(&self, batch: i64) -> Result<usize, ProcessError> {
        let today = self.clock.today();
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT household_id FROM household WHERE next_review <= $1 ORDER BY household_id LIMIT $2",
        )
        .bind(today)
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        let mut done = 0;
        for h in due {
            let mut tx = self.pool.begin().await?;
            let locked: Option<String> = sqlx::query_scalar(
                "SELECT household_id FROM household WHERE household_id = $1 AND next_review <= $2
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(&h)
            .bind(today)
            .fetch_optional(&mut *tx)
            .await?;
            if locked.is_none() {
                continue;
            }
            let id = Key::parse(&h).map_err(|e| anyhow::anyhow!("{e}"))?;
            self.reconcile_household(&mut tx, &id, self.clock.now())
                .await?;
            tx.commit().await?;
            done += 1;
        }
        Ok(done)
    }
}

async fn lock_people(tx: Tx<'_>, people: &[&str]) -> sqlx::Result<()> {
    if people.is_empty() {
        return Ok(());
    }
    let buckets: Vec<i32> = people.iter().map(|p| person_bucket(p)).collect();
    // In bucket order: every transaction takes them in the same order.
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, b) FROM (SELECT DISTINCT unnest($2::int[]) AS b ORDER BY 1) AS s",
    )
    .bind(PERSON_LOCK_SPACE)
    .bind(buckets)
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

/// Raise an alert once per occurrence: the alert table holds every id raised.
async fn raise(tx: Tx<'_>, alert: &Alert, now: DateTime<Utc>) -> sqlx::Result<()> {
    let output = alert.output(now);
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO alert (id, kind, division_code, household_id, raised_at, summary, event)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&output.message_id)
    .bind(alert.kind.as_str())
    .bind(alert.division_code.as_str())
    .bind(alert.household_id.as_ref().map(|h| h.as_str()))
    .bind(now)
    .bind(&alert.summary)
    .bind(&output.event)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_some() {
        enqueue(tx, &output).await?;
    }
    Ok(())
}

async fn enqueue(tx: Tx<'_>, output: &Output) -> sqlx::Result<()> {
    let body = serde_json::to_vec(&output.event).unwrap_or_default();
    sqlx::query(
        "INSERT INTO outbox (stream, routing_key, message_id, body) VALUES ($1, $2, $3, $4)",
    )
    .bind(output.stream.as_str())
    .bind(&output.routing_key)
    .bind(&output.message_id)
    .bind(body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

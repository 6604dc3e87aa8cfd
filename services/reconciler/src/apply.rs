//! Storing a run of messages: their facts, who they bear on, and what the
//! messages themselves raise (layoff notices, job postings).

use crate::hub::{Hub, ProcessError};
use crate::store::Tx;
use crate::store::facts::FactRows;
use crate::store::households::{self, Causes};
use crate::store::inbox::{self, InboxOutcome};
use crate::store::locks::{lock_batch, lock_households};
use crate::store::outbox::Outputs;
use crate::store::rows;
use dynzero_contracts::inbound::{Inbound, InboundFact};
use dynzero_contracts::outbound;
use dynzero_contracts::trace::TraceContext;
use dynzero_domain::alerts;
use dynzero_domain::facts::{JobPosting, LayoffNotice, LayoffStage};
use dynzero_planner::layoff::layoff_alert;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What storing one message did.
pub enum Applied {
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
pub struct Naming {
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
/// Then read who names whom, under those locks. One round trip
/// ([`lock_batch`]).
pub async fn lock_upfront(tx: Tx<'_>, batch: &[Inbound]) -> sqlx::Result<Naming> {
    let mut people: BTreeSet<&str> = BTreeSet::new();
    let mut registered: Vec<&str> = Vec::new();
    // The households the messages name themselves, which may have no row yet.
    let mut new: BTreeSet<&str> = BTreeSet::new();
    for inbound in batch {
        people.extend(people_in(&inbound.fact));
        match &inbound.fact {
            InboundFact::Registration(r) => {
                registered.push(r.household_id.as_str());
                new.insert(r.household_id.as_str());
            }
            InboundFact::Visit { visit, .. } => {
                new.insert(visit.household_id.as_str());
            }
            _ => {}
        }
    }
    let people: Vec<&str> = people.into_iter().collect();
    let new: Vec<&str> = new.into_iter().collect();
    let locked = lock_batch(tx, &people, &registered, &new).await?;
    let mut naming = Naming {
        locked: locked.households.into_iter().collect(),
        ..Naming::default()
    };
    for (h, p) in locked.members.iter().chain(&locked.naming) {
        naming.add(h, p);
    }
    Ok(naming)
}

impl Hub {
    /// Store several messages' facts (one statement per table) and raise
    /// what the messages themselves raise; one result per message. Who each
    /// bears on goes to `causes`, written when those households are folded.
    pub async fn apply(
        &self,
        tx: Tx<'_>,
        messages: &mut [Inbound],
        naming: &mut Naming,
        causes: &mut Causes,
        outputs: &mut Outputs,
    ) -> Result<Vec<Applied>, ProcessError> {
        let inbox = inbox::record(tx, messages).await?;
        let mut rows = FactRows::default();
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
            causes.traced(arrival, inbound.onward_trace.as_ref());
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
            // Named by a registration, so their rows exist.
            lock_households(tx, &unlocked).await?;
            naming.locked.extend(unlocked);
        }

        let stored = || new.iter().map(|&i| &messages[i]);
        let notices: Vec<(&LayoffNotice, Option<&TraceContext>)> = stored()
            .filter_map(|m| match &m.fact {
                InboundFact::Layoff(n) if n.stage != LayoffStage::Withdrawn => {
                    Some((n, m.onward_trace.as_ref()))
                }
                _ => None,
            })
            .collect();
        if !notices.is_empty() {
            self.raise_layoff_alerts(tx, &notices, &arrivals, outputs)
                .await?;
        }
        for inbound in stored() {
            if let InboundFact::Posting(posting) = &inbound.fact {
                let trace = inbound.onward_trace.as_ref();
                self.raise_job_matches(tx, posting, &inbound.data, trace, outputs)
                    .await?;
            }
        }
        Ok(applied)
    }

    /// What the stored notices raise ([`dynzero_planner::layoff`]), each
    /// alert carrying its notice's trace context.
    async fn raise_layoff_alerts(
        &self,
        tx: Tx<'_>,
        notices: &[(&LayoffNotice, Option<&TraceContext>)],
        batch: &HashSet<i64>,
        outputs: &mut Outputs,
    ) -> Result<(), ProcessError> {
        let keys: Vec<(&str, &str)> = notices
            .iter()
            .map(|(n, _)| (n.enterprise.uscc.as_str(), n.notice_id.as_str()))
            .collect();
        let stages = rows::notice_stages(tx, &keys, batch).await?;
        for (notice, trace) in notices {
            if let Some(alert) = layoff_alert(notice, &stages) {
                outputs.alert(outbound::layoff_alert(notice, alert), *trace);
            }
        }
        Ok(())
    }

    /// Job matches for the zero-employment households of the posting's
    /// county, carrying the posting's trace context.
    async fn raise_job_matches(
        &self,
        tx: Tx<'_>,
        posting: &JobPosting,
        received: &Value,
        trace: Option<&TraceContext>,
        outputs: &mut Outputs,
    ) -> Result<(), ProcessError> {
        let today = self.clock.today();
        // The published states: the sweeper keeps them current with the date.
        let states =
            households::zero_employment_in_county(tx, posting.division_code.county()).await?;
        let data = outbound::posting_data(posting, received);
        for m in alerts::job_matches(posting, &states, today) {
            if let Some(state) = states.iter().find(|s| s.household_id == m.household_id) {
                outputs.alert(outbound::job_match(state, posting, data.clone(), &m), trace);
            }
        }
        Ok(())
    }
}

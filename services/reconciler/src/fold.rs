//! Households brought up to date: load → plan → write. The planner decides
//! everything ([`dynzero_planner::plan`]); this module renders what it
//! decided and hands it to the store.

use crate::hub::{Hub, ProcessError};
use crate::store::Tx;
use crate::store::bulk::Chain;
use crate::store::households::{self, Causes, Publishing};
use crate::store::inbox;
use crate::store::load::{self, Loads};
use crate::store::outbox::Outputs;
use chrono::{DateTime, Utc};
use dynzero_contracts::outbound;
use dynzero_contracts::trace::TraceContext;
use dynzero_domain::ids::HouseholdId;
use dynzero_planner::{Cause, Plan, plan};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

impl Hub {
    /// Plan (locked) households as of today, loading their facts together;
    /// publish a version of each that changed, and raise what the plans
    /// raise. `causes`: what this transaction applied to them, written
    /// with whether a version names it. Reads with one statement (two when a
    /// version names causes of earlier transactions); what it writes goes to
    /// `chain`, which the caller runs.
    pub async fn reconcile_households(
        &self,
        tx: Tx<'_>,
        households: &BTreeSet<String>,
        causes: Causes,
        now: DateTime<Utc>,
        outputs: &mut Outputs,
        chain: &mut Chain,
    ) -> Result<(), ProcessError> {
        if households.is_empty() {
            return Ok(());
        }
        let ids: Vec<HouseholdId> = households
            .iter()
            .map(|h| HouseholdId::parse(h).map_err(|e| anyhow::anyhow!("stored household id: {e}")))
            .collect::<Result<_, _>>()?;
        let pending = causes.by_household();
        let Loads { loaded, rows } = load::load(tx, &ids, &pending).await?;
        let today = self.clock.today();
        let plans: Vec<Plan> = loaded.iter().map(|l| plan(l, today, &self.rules)).collect();
        // The trace contexts of the causes the versions name: this
        // transaction's own are known; only earlier ones are read back.
        let mut traces: HashMap<i64, TraceContext> = HashMap::new();
        let mut earlier: Vec<i64> = Vec::new();
        for arrival in plans
            .iter()
            .filter_map(|p| p.current.as_ref()?.caused_by.as_ref())
            .flatten()
            .map(|c| c.arrival)
        {
            match causes.trace_of(arrival) {
                Some(Some(trace)) => {
                    traces.insert(arrival, trace.clone());
                }
                Some(None) => {}
                None => earlier.push(arrival),
            }
        }
        traces.extend(inbox::onward_traces(tx, &earlier).await?);
        let data = render(&plans, &traces, outputs, now);
        let published: Vec<Publishing<'_>> = plans
            .iter()
            .filter_map(|p| p.current.as_ref())
            .zip(&data)
            .filter_map(|(current, data)| {
                Some(Publishing {
                    current,
                    data: data.as_ref()?,
                })
            })
            .collect();
        households::write(chain, &plans, &published, &rows, causes, now);
        Ok(())
    }

    /// Re-evaluate the households whose review date has come, up to `batch`
    /// of them in one transaction. Returns how many.
    pub async fn sweep(&self, batch: i64) -> Result<usize, ProcessError> {
        let today = self.clock.today();
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let due: BTreeSet<String> = households::due_for_review(&mut tx, today, batch)
            .await?
            .into_iter()
            .collect();
        let mut outputs = Outputs::default();
        let mut chain = Chain::default();
        self.reconcile_households(
            &mut tx,
            &due,
            Causes::default(),
            now,
            &mut outputs,
            &mut chain,
        )
        .await?;
        outputs.write(&mut chain, now);
        chain.execute(&mut tx).await?;
        tx.commit().await?;
        Ok(due.len())
    }
}

/// The outputs the plans call for, in order: each new version, then the
/// alerts about its household. Returns, for each household that exists, the
/// state's `data` as published when its plan publishes a version.
///
/// A version and its alerts carry the trace context of the latest of its
/// causes that had one (`traces`, by inbox arrival); a version without
/// causes (the sweeper's, as the date moves) carries none.
fn render(
    plans: &[Plan],
    traces: &HashMap<i64, TraceContext>,
    outputs: &mut Outputs,
    now: DateTime<Utc>,
) -> Vec<Option<Value>> {
    let mut published = Vec::new();
    for current in plans.iter().filter_map(|p| p.current.as_ref()) {
        let trace = current.caused_by.as_ref().and_then(|causes| {
            causes
                .iter()
                .filter(|c| traces.contains_key(&c.arrival))
                .max_by_key(|c| c.arrival)
                .and_then(|c| traces.get(&c.arrival))
        });
        let data = current.caused_by.as_ref().map(|causes| {
            let caused_by: Vec<String> = causes.iter().map(|c: &Cause| c.name.clone()).collect();
            let output = outbound::state_output(&current.state, current.version, &caused_by, now);
            let data = output.event["data"].clone();
            outputs.state(output, trace);
            data
        });
        for alert in &current.alerts {
            outputs.alert(
                outbound::household_alert(&current.state, current.version, data.as_ref(), alert),
                trace,
            );
        }
        published.push(data);
    }
    published
}

//! Households brought up to date: load → plan → write. The planner decides
//! everything ([`dynzero_planner::plan`]); this module renders what it
//! decided and hands it to the store.

use crate::hub::{Hub, ProcessError};
use crate::store::Tx;
use crate::store::households::{self, Publishing};
use crate::store::load;
use crate::store::outbox::Outputs;
use chrono::{DateTime, Utc};
use dynzero_contracts::outbound;
use dynzero_domain::ids::HouseholdId;
use dynzero_planner::{Cause, Plan, plan};
use serde_json::Value;
use std::collections::BTreeSet;

impl Hub {
    /// Plan (locked) households as of today, loading their facts together;
    /// publish a version of each that changed, and raise what the plans
    /// raise. A handful of statements, however many households.
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
            .map(|h| HouseholdId::parse(h).map_err(|e| anyhow::anyhow!("stored household id: {e}")))
            .collect::<Result<_, _>>()?;
        let loaded = load::load(tx, &ids).await?;
        let today = self.clock.today();
        let plans: Vec<Plan> = loaded.iter().map(|l| plan(l, today, &self.rules)).collect();
        let data = render(&plans, outputs, now);
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
        households::write(tx, &plans, &published, now).await?;
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
        self.reconcile_households(&mut tx, &due, now, &mut outputs)
            .await?;
        outputs.write(&mut tx, now).await?;
        tx.commit().await?;
        Ok(due.len())
    }
}

/// The outputs the plans call for, in order: each new version, then the
/// alerts about its household. Returns, for each household that exists, the
/// state's `data` as published when its plan publishes a version.
fn render(plans: &[Plan], outputs: &mut Outputs, now: DateTime<Utc>) -> Vec<Option<Value>> {
    let mut published = Vec::new();
    for current in plans.iter().filter_map(|p| p.current.as_ref()) {
        let data = current.caused_by.as_ref().map(|causes| {
            let caused_by: Vec<String> = causes.iter().map(|c: &Cause| c.name.clone()).collect();
            let output = outbound::state_output(&current.state, current.version, &caused_by, now);
            let data = output.event["data"].clone();
            outputs.state(output);
            data
        });
        for alert in &current.alerts {
            outputs.alert(outbound::household_alert(
                &current.state,
                current.version,
                data.as_ref(),
                alert,
            ));
        }
        published.push(data);
    }
    published
}

//! The reconciler's loop without its database: plan a household, keep what
//! was published, raise each alert occurrence once (as the alert table does).

#![allow(dead_code)]

use chrono::NaiveDate;
use dynzero_domain::alerts::AlertKind;
use dynzero_domain::ids::HouseholdId;
use dynzero_domain::reconcile::{HouseholdFacts, HouseholdState, HouseholdStatus};
use dynzero_domain::rules::Rules;
use dynzero_planner::{HouseholdAlert, Loaded, Published, Version, plan};
use std::collections::BTreeSet;

pub struct Hub {
    household_id: HouseholdId,
    rules: Rules,
    published: Published,
    /// The status of every version published, in order.
    pub history: Vec<HouseholdStatus>,
    /// (kind, occurrence) of every alert raised.
    seen: BTreeSet<(AlertKind, String)>,
    /// Every alert raised, with the spell current when it was.
    pub raised: Vec<(HouseholdAlert, String, Option<Version>)>,
}

impl Hub {
    pub fn new(household_id: HouseholdId) -> Self {
        Hub {
            household_id,
            rules: Rules::default(),
            published: Published::default(),
            history: Vec::new(),
            seen: BTreeSet::new(),
            raised: Vec::new(),
        }
    }

    /// One transaction: plan with every fact stored so far, write the plan.
    pub fn plan(&mut self, facts: &HouseholdFacts, today: NaiveDate) {
        assert_eq!(facts.household_id, self.household_id);
        let loaded = Loaded {
            facts: facts.clone(),
            causes: Vec::new(),
            unnamed: Vec::new(),
            notices: Vec::new(),
            published: self.published.clone(),
        };
        let Some(current) = plan(&loaded, today, &self.rules).current else {
            return;
        };
        if current.caused_by.is_some() {
            self.history.push(current.state.status);
            self.published.version = current.version;
            self.published.state = Some(current.state.clone());
        }
        self.published.spell = current.spell;
        for alert in current.alerts {
            let occurrence = alert.occurrence(&self.household_id, current.version);
            if self.seen.insert((alert.kind(), occurrence.clone())) {
                self.raised.push((alert, occurrence, current.spell));
            }
        }
    }

    pub fn raised(&self, kind: AlertKind) -> usize {
        self.raised
            .iter()
            .filter(|(a, _, _)| a.kind() == kind)
            .count()
    }

    pub fn alerts(&self, kind: AlertKind) -> Vec<HouseholdAlert> {
        self.raised
            .iter()
            .filter(|(a, _, _)| a.kind() == kind)
            .map(|(a, _, _)| a.clone())
            .collect()
    }

    pub fn occurrences(&self, kind: AlertKind) -> Vec<String> {
        self.raised
            .iter()
            .filter(|(a, _, _)| a.kind() == kind)
            .map(|(_, o, _)| o.clone())
            .collect()
    }

    pub fn published_version(&self) -> Version {
        self.published.version
    }

    pub fn published_status(&self) -> Option<HouseholdStatus> {
        self.published.state.as_ref().map(|s| s.status)
    }

    pub fn published_state(&self) -> Option<HouseholdState> {
        self.published.state.clone()
    }

    /// Maximal runs of zero-employment versions (§6a 14).
    pub fn spells(&self) -> usize {
        let mut spells = 0;
        let mut was_zero = false;
        for status in &self.history {
            let zero = *status == HouseholdStatus::ZeroEmployment;
            if zero && !was_zero {
                spells += 1;
            }
            was_zero = zero;
        }
        spells
    }
}

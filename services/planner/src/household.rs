//! One household's plan: from its facts and what was last published of it,
//! the next state, version, `caused_by`, alerts and review date.

use crate::occurrence;
use chrono::NaiveDate;
use dynzero_domain::alerts::{self, AlertKind, StatusAlert};
use dynzero_domain::facts::LayoffNotice;
use dynzero_domain::ids::{HouseholdId, IdNumber};
use dynzero_domain::reconcile::{
    Conflict, HouseholdFacts, HouseholdState, HouseholdStatus, Reconciled, reconcile,
};
use dynzero_domain::rules::Rules;

/// A published version's number: 1 for the first, +1 on every change.
pub type Version = i64;

/// An inbound event that bears on a household: how `caused_by` names it
/// (`"<source> <id>"`) and its arrival number. Ordered by name, as
/// `caused_by` lists them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cause {
    pub name: String,
    pub arrival: i64,
}

/// What was last published of a household.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// 0: nothing published yet.
    pub version: Version,
    /// The state of that version; `None` before the first.
    pub state: Option<HouseholdState>,
    /// The version that began the current zero-employment spell, while the
    /// household is zero-employment.
    pub spell: Option<Version>,
}

/// Everything the planner needs of one household, as the store loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub facts: HouseholdFacts,
    /// Every inbound event that bears on the household, other households'
    /// registrations excepted.
    pub causes: Vec<Cause>,
    /// The events applied to it that no published version named yet.
    pub unnamed: Vec<Cause>,
    /// The planned, not withdrawn layoff notices listing someone the
    /// household ever named, with only those people among their employees.
    pub notices: Vec<LayoffNotice>,
    pub published: Published,
}

/// An alert the plan raises about a household. The store raises each once
/// per [`HouseholdAlert::occurrence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HouseholdAlert {
    ZeroEmploymentNew,
    /// `days`: whole days the spell lasted.
    ZeroEmploymentResolved {
        days: i64,
    },
    DataConflict(Conflict),
    PlacementOverdue {
        spell: Version,
        zero_since: NaiveDate,
        days: i64,
    },
    VisitOverdue {
        spell: Version,
        zero_since: NaiveDate,
        last_visit: Option<NaiveDate>,
    },
    HouseholdAtRisk {
        notice: LayoffNotice,
        /// The listed people who live there on the notice's effective date.
        members: Vec<(IdNumber, String)>,
    },
}

impl HouseholdAlert {
    pub fn kind(&self) -> AlertKind {
        match self {
            HouseholdAlert::ZeroEmploymentNew => AlertKind::ZeroEmploymentNew,
            HouseholdAlert::ZeroEmploymentResolved { .. } => AlertKind::ZeroEmploymentResolved,
            HouseholdAlert::DataConflict(_) => AlertKind::DataConflict,
            HouseholdAlert::PlacementOverdue { .. } => AlertKind::PlacementOverdue,
            HouseholdAlert::VisitOverdue { .. } => AlertKind::VisitOverdue,
            HouseholdAlert::HouseholdAtRisk { .. } => AlertKind::HouseholdAtRisk,
        }
    }

    /// What makes this alert unique, for a household at `version`.
    pub fn occurrence(&self, household: &HouseholdId, version: Version) -> String {
        match self {
            HouseholdAlert::ZeroEmploymentNew | HouseholdAlert::ZeroEmploymentResolved { .. } => {
                occurrence::status_change(household, version)
            }
            HouseholdAlert::DataConflict(c) => {
                occurrence::data_conflict(&c.visit.key, &c.id_number)
            }
            HouseholdAlert::PlacementOverdue { spell, .. } => {
                occurrence::placement_overdue(household, *spell)
            }
            HouseholdAlert::VisitOverdue {
                spell, last_visit, ..
            } => occurrence::visit_overdue(household, *spell, *last_visit),
            HouseholdAlert::HouseholdAtRisk { notice, .. } => {
                occurrence::household_at_risk(household, &notice.enterprise.uscc, &notice.notice_id)
            }
        }
    }
}

/// A household that exists today, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub state: HouseholdState,
    /// The version the household is at once the plan is written.
    pub version: Version,
    /// `Some(caused_by)` when this plan publishes `version`; `None` when the
    /// state is the one last published.
    pub caused_by: Option<Vec<Cause>>,
    /// The version that began the current zero-employment spell.
    pub spell: Option<Version>,
    /// The latest visit on or before today.
    pub last_visit: Option<NaiveDate>,
    /// In the order they are to be raised.
    pub alerts: Vec<HouseholdAlert>,
}

/// What to write of one household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub household_id: HouseholdId,
    /// `None`: "a household does not exist before its first snapshot's
    /// `effective_date`".
    pub current: Option<Current>,
    /// The next day to plan it again even if no fact comes: a dated fact
    /// comes into force, a member turns 16 or retires, an overdue alert falls due.
    pub next_review: Option<NaiveDate>,
}

/// Plan one household as of `today`.
pub fn plan(loaded: &Loaded, today: NaiveDate, rules: &Rules) -> Plan {
    let household_id = loaded.facts.household_id.clone();
    let Some(reconciled) = reconcile(&loaded.facts, today, rules) else {
        return Plan {
            household_id,
            current: None,
            next_review: first_registration(&loaded.facts),
        };
    };
    let published = &loaded.published;
    // §6a 8: a version only when some field other than `version` and
    // `caused_by` changes — compared as domain states, not as rendered JSON.
    let changed = published.state.as_ref() != Some(&reconciled.state);
    let version = published.version + Version::from(changed);
    let spell = spell(published, &reconciled.state, changed.then_some(version));
    let mut alerts = Vec::new();
    if changed {
        alerts.extend(status_alert(published, &reconciled));
    }
    alerts.extend(
        reconciled
            .conflicts
            .iter()
            .cloned()
            .map(HouseholdAlert::DataConflict),
    );
    alerts.extend(overdue_alerts(&reconciled, spell, today, rules));
    alerts.extend(at_risk_alerts(loaded, today, rules));
    let next_review = [
        reconciled.next_change,
        alerts::next_overdue_check(
            &reconciled.state,
            reconciled.last_visit,
            today,
            rules.placement_limit_days,
        ),
    ]
    .into_iter()
    .flatten()
    .min();
    Plan {
        household_id,
        current: Some(Current {
            caused_by: changed.then(|| caused_by(loaded)),
            state: reconciled.state,
            version,
            spell,
            last_visit: reconciled.last_visit,
            alerts,
        }),
        next_review,
    }
}

/// The day the household comes into existence: look again then.
fn first_registration(facts: &HouseholdFacts) -> Option<NaiveDate> {
    facts
        .registrations
        .iter()
        .filter(|r| r.household_id == facts.household_id)
        .map(|r| r.order.date)
        .min()
}

/// §6a 14: "a zero-employment spell is a maximal run of a household's
/// published versions whose status is `zero_employment`. When a late fact
/// moves `zero_since` but the status stays `zero_employment`, it is the same
/// spell." `new_version` is the version this plan publishes, if any.
fn spell(
    published: &Published,
    state: &HouseholdState,
    new_version: Option<Version>,
) -> Option<Version> {
    if state.status != HouseholdStatus::ZeroEmployment {
        return None;
    }
    let was_zero = published
        .state
        .as_ref()
        .is_some_and(|s| s.status == HouseholdStatus::ZeroEmployment);
    match new_version {
        Some(version) if !was_zero => Some(version),
        // A spell begun before the hub kept spells began no later than the last version.
        _ => published.spell.or(Some(published.version)),
    }
}

/// `zero_employment_new`: "a published version's status becomes
/// `zero_employment` (a first version that is zero counts)";
/// `zero_employment_resolved`: "a published version's status leaves `zero_employment`".
fn status_alert(published: &Published, reconciled: &Reconciled) -> Option<HouseholdAlert> {
    let previous = published.state.as_ref().map(|s| (s.status, s.zero_since));
    match alerts::status_change(previous, reconciled.state.status, reconciled.status_since)? {
        StatusAlert::ZeroEmploymentNew => Some(HouseholdAlert::ZeroEmploymentNew),
        StatusAlert::ZeroEmploymentResolved { days } => {
            Some(HouseholdAlert::ZeroEmploymentResolved { days })
        }
    }
}

/// `placement_overdue` ("today − `zero_since` > the configured limit; once per
/// zero-employment spell") and `visit_overdue` ("last visit, or `zero_since`
/// if later, is more than 31 days before today; once per such gap").
fn overdue_alerts(
    reconciled: &Reconciled,
    spell: Option<Version>,
    today: NaiveDate,
    rules: &Rules,
) -> Vec<HouseholdAlert> {
    let state = &reconciled.state;
    let (Some(spell), Some(zero_since)) = (spell, state.zero_since) else {
        return Vec::new();
    };
    let mut raised = Vec::new();
    if let Some(days) = alerts::placement_overdue(state, today, rules.placement_limit_days) {
        raised.push(HouseholdAlert::PlacementOverdue {
            spell,
            zero_since,
            days,
        });
    }
    if alerts::visit_overdue(state, reconciled.last_visit, today).is_some() {
        raised.push(HouseholdAlert::VisitOverdue {
            spell,
            zero_since,
            last_visit: reconciled.last_visit,
        });
    }
    raised
}

/// `household_at_risk` for each planned notice that bears on the household.
fn at_risk_alerts(loaded: &Loaded, today: NaiveDate, rules: &Rules) -> Vec<HouseholdAlert> {
    loaded
        .notices
        .iter()
        .filter_map(|notice| {
            let members = alerts::household_at_risk(&loaded.facts, notice, today, rules)?;
            Some(HouseholdAlert::HouseholdAtRisk {
                notice: notice.clone(),
                members,
            })
        })
        .collect()
}

/// §6a 7: "a first version names every inbound event applied to it"; a later
/// one the events since the last version. Each once, by name.
fn caused_by(loaded: &Loaded) -> Vec<Cause> {
    let mut causes: Vec<Cause> = loaded.unnamed.clone();
    if loaded.published.version == 0 {
        causes.extend(loaded.causes.iter().cloned());
    }
    causes.sort();
    causes.dedup_by(|a, b| a.name == b.name);
    causes
}

//! What makes each alert unique: "each alert is raised once per occurrence (a
//! redelivered input raises no second alert with a new id)". An alert's
//! stable id is its kind and a digest of the occurrence named here, so the
//! same occurrence decided twice — on a redelivery, by the sweeper, in another
//! order of arrival — is raised once.

use crate::household::Version;
use chrono::NaiveDate;
use dynzero_domain::ids::{HouseholdId, IdNumber, NoticeId, PostingId, Uscc};

/// `zero_employment_new` and `zero_employment_resolved`: the published
/// version whose status began or ended the spell.
pub fn status_change(household: &HouseholdId, version: Version) -> String {
    format!("{household} v{version}")
}

/// `layoff_early_warning` and `layoff_unreported`: "once per (`uscc`, `notice_id`)".
pub fn layoff(uscc: &Uscc, notice_id: &NoticeId) -> String {
    format!("{uscc} {notice_id}")
}

/// `household_at_risk`: "once per (household, notice)".
pub fn household_at_risk(household: &HouseholdId, uscc: &Uscc, notice_id: &NoticeId) -> String {
    format!("{household} {uscc} {notice_id}")
}

/// `job_match`: "one alert per (posting, household)".
pub fn job_match(posting: &PostingId, household: &HouseholdId) -> String {
    format!("{posting} {household}")
}

/// `placement_overdue`: "once per zero-employment spell" — the spell named by
/// the version that began it, so a late fact that moves `zero_since` within
/// the spell is no new occurrence (§6a 14).
pub fn placement_overdue(household: &HouseholdId, spell: Version) -> String {
    format!("{household} spell v{spell}")
}

/// `visit_overdue`: "once per such gap (a new visit starts a new gap)" — the
/// spell and the last visit the gap runs from; a moved `zero_since` starts
/// none (§6a 14).
pub fn visit_overdue(
    household: &HouseholdId,
    spell: Version,
    last_visit: Option<NaiveDate>,
) -> String {
    match last_visit {
        Some(visit) => format!("{household} spell v{spell} visit {visit}"),
        None => format!("{household} spell v{spell} no visit"),
    }
}

/// `data_conflict`: "one `data_conflict` alert per (visit, person)".
pub fn data_conflict(visit_key: &str, id_number: &IdNumber) -> String {
    format!("{visit_key} {}", id_number.as_str())
}

//! What the hub raises, decided from facts and states alone.
//!
//! Each function answers "does this occurrence raise an alert, and with what";
//! raising it once per occurrence (stable ids, de-duplication) is the
//! service's job, keyed by [`AlertKind`] and the occurrence named here.

use crate::facts::{EmploymentEvent, EmploymentFact, JobPosting, LayoffNotice, LayoffStage};
use crate::ids::{HouseholdId, IdNumber};
use crate::reconcile::{HouseholdFacts, HouseholdState, HouseholdStatus, members_on, status_on};
use crate::retirement::age_in_years;
use crate::rules::Rules;
use chrono::{DateTime, Days, FixedOffset, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    ZeroEmploymentNew,
    ZeroEmploymentResolved,
    LayoffEarlyWarning,
    LayoffUnreported,
    HouseholdAtRisk,
    JobMatch,
    PlacementOverdue,
    VisitOverdue,
    DataConflict,
}

impl AlertKind {
    pub const ALL: [AlertKind; 9] = [
        AlertKind::ZeroEmploymentNew,
        AlertKind::ZeroEmploymentResolved,
        AlertKind::LayoffEarlyWarning,
        AlertKind::LayoffUnreported,
        AlertKind::HouseholdAtRisk,
        AlertKind::JobMatch,
        AlertKind::PlacementOverdue,
        AlertKind::VisitOverdue,
        AlertKind::DataConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ZeroEmploymentNew => "zero_employment_new",
            AlertKind::ZeroEmploymentResolved => "zero_employment_resolved",
            AlertKind::LayoffEarlyWarning => "layoff_early_warning",
            AlertKind::LayoffUnreported => "layoff_unreported",
            AlertKind::HouseholdAtRisk => "household_at_risk",
            AlertKind::JobMatch => "job_match",
            AlertKind::PlacementOverdue => "placement_overdue",
            AlertKind::VisitOverdue => "visit_overdue",
            AlertKind::DataConflict => "data_conflict",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// China Standard Time; no daylight saving since 1991.
pub fn shanghai_date(time: DateTime<Utc>) -> NaiveDate {
    let offset = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    time.with_timezone(&offset).date_naive()
}

/// What a newly published version raises by its status alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAlert {
    ZeroEmploymentNew,
    /// `days`: whole days the zero-employment spell lasted.
    ZeroEmploymentResolved {
        days: i64,
    },
}

/// Compare the last published state with the one about to be published.
/// `status_since` is the first day of the new status's run (see [`crate::reconcile::Reconciled`]).
pub fn status_alert(
    previous: Option<&HouseholdState>,
    next: &HouseholdState,
    status_since: NaiveDate,
) -> Option<StatusAlert> {
    status_change(
        previous.map(|p| (p.status, p.zero_since)),
        next.status,
        status_since,
    )
}

/// [`status_alert`] from what is kept of the last published version: its
/// status and `zero_since`.
pub fn status_change(
    previous: Option<(HouseholdStatus, Option<NaiveDate>)>,
    next: HouseholdStatus,
    status_since: NaiveDate,
) -> Option<StatusAlert> {
    let was_zero = previous.is_some_and(|(status, _)| status == HouseholdStatus::ZeroEmployment);
    let is_zero = next == HouseholdStatus::ZeroEmployment;
    match (was_zero, is_zero) {
        (false, true) => Some(StatusAlert::ZeroEmploymentNew),
        (true, false) => {
            let began = previous
                .and_then(|(_, since)| since)
                .unwrap_or(status_since);
            Some(StatusAlert::ZeroEmploymentResolved {
                days: (status_since - began).num_days().max(0),
            })
        }
        _ => None,
    }
}

/// How large a layoff is, against the reporting threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayoffSize {
    pub count: u32,
    /// count ÷ headcount, 0–1.
    pub ratio: f64,
}

/// [`Rules::LAYOFF_REPORT_PEOPLE`] or more people, or
/// [`Rules::LAYOFF_REPORT_PERCENT`] or more of the headcount: a layoff that
/// must be reported in advance.
pub fn layoff_threshold(notice: &LayoffNotice) -> Option<LayoffSize> {
    let count = notice.count();
    let headcount = notice.enterprise.headcount.max(1);
    let meets = count >= Rules::LAYOFF_REPORT_PEOPLE
        || u64::from(count) * 100 >= u64::from(headcount) * u64::from(Rules::LAYOFF_REPORT_PERCENT);
    meets.then(|| LayoffSize {
        count,
        ratio: (f64::from(count) / f64::from(headcount)).min(1.0),
    })
}

/// `layoff_early_warning`: a `planned` notice at or over the threshold.
pub fn layoff_early_warning(notice: &LayoffNotice) -> Option<LayoffSize> {
    (notice.stage == LayoffStage::Planned)
        .then(|| layoff_threshold(notice))
        .flatten()
}

/// `layoff_unreported`: "an `effective` notice meets that threshold and, when
/// it is processed, the hub knows no `planned` notice with the same (`uscc`,
/// `notice_id`) whose `time` is at least 30 days before the `effective_date`"
/// — "the calendar date of the `planned` notice's `time`, in Asia/Shanghai, is
/// on or before `effective_date` − 30 days" (§6a 13). `planned_times` are the
/// `time`s of the planned notices the hub knows for that key.
pub fn layoff_unreported(
    notice: &LayoffNotice,
    planned_times: impl IntoIterator<Item = DateTime<Utc>>,
) -> Option<LayoffSize> {
    if notice.stage != LayoffStage::Effective {
        return None;
    }
    let size = layoff_threshold(notice)?;
    let deadline = notice
        .effective_date()
        .checked_sub_days(Days::new(Rules::LAYOFF_NOTICE_DAYS.into()))?;
    let reported_in_time = planned_times
        .into_iter()
        .any(|time| shanghai_date(time) <= deadline);
    (!reported_in_time).then_some(size)
}

/// `household_at_risk`: on the planned notice's effective date the household
/// would be zero-employment with the listed people's employment at that
/// enterprise ended, and would not be without the notice. Returns the listed
/// people who live there on that date. The caller skips withdrawn notices.
pub fn household_at_risk(
    facts: &HouseholdFacts,
    notice: &LayoffNotice,
    today: NaiveDate,
    rules: &Rules,
) -> Option<Vec<(IdNumber, String)>> {
    let date = notice.effective_date();
    if notice.stage != LayoffStage::Planned || date <= today {
        return None;
    }
    let without = status_on(facts, &[], date, rules)?;
    if without == HouseholdStatus::ZeroEmployment {
        return None;
    }
    let ends: Vec<EmploymentFact> = notice
        .employees
        .iter()
        .map(|(id_number, _)| EmploymentFact {
            id_number: id_number.clone(),
            order: notice.order,
            event: EmploymentEvent::Ended {
                employer: notice.enterprise.uscc.clone(),
            },
        })
        .collect();
    let with = status_on(facts, &ends, date, rules)?;
    if with != HouseholdStatus::ZeroEmployment {
        return None;
    }
    let living = members_on(facts, date, rules);
    let mut listed: Vec<(IdNumber, String)> = notice
        .employees
        .iter()
        .filter(|(id, _)| living.contains(id))
        .cloned()
        .collect();
    listed.sort();
    listed.dedup_by(|a, b| a.0 == b.0);
    Some(listed)
}

/// One household a posting is offered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMatch {
    pub household_id: HouseholdId,
    /// The labour-force members within the posting's ages: (id number, name, age).
    pub members: Vec<(IdNumber, String, u32)>,
}

/// `job_match`: households zero-employment today in the posting's county with
/// labour-force members of the right age; at most 3 × openings of them, longest
/// `zero_since` first, then those on 低保, then by `household_id` bytes.
pub fn job_matches(
    posting: &JobPosting,
    candidates: &[HouseholdState],
    today: NaiveDate,
) -> Vec<JobMatch> {
    if posting.valid_until < today {
        return Vec::new();
    }
    let county = posting.division_code.county();
    let mut matched: Vec<(&HouseholdState, JobMatch)> = candidates
        .iter()
        .filter(|h| h.status == HouseholdStatus::ZeroEmployment)
        .filter(|h| h.division_code.county() == county)
        .filter_map(|h| {
            let members: Vec<(IdNumber, String, u32)> = h
                .members
                .iter()
                .filter(|m| m.in_labour_force)
                .map(|m| (m, age_in_years(m.birth_date, today)))
                .filter(|(_, age)| {
                    posting.age_min.is_none_or(|min| *age >= min)
                        && posting.age_max.is_none_or(|max| *age <= max)
                })
                .map(|(m, age)| (m.id_number.clone(), m.name.clone(), age))
                .collect();
            (!members.is_empty()).then(|| {
                (
                    h,
                    JobMatch {
                        household_id: h.household_id.clone(),
                        members,
                    },
                )
            })
        })
        .collect();
    matched.sort_by(|(a, _), (b, _)| {
        a.zero_since
            .cmp(&b.zero_since)
            .then(b.dibao.is_some().cmp(&a.dibao.is_some()))
            .then(
                a.household_id
                    .as_str()
                    .as_bytes()
                    .cmp(b.household_id.as_str().as_bytes()),
            )
    });
    matched.truncate((Rules::MATCHES_PER_OPENING * posting.openings) as usize);
    matched.into_iter().map(|(_, m)| m).collect()
}

/// `placement_overdue`: today − `zero_since` > `limit_days`. Returns the days open.
pub fn placement_overdue(state: &HouseholdState, today: NaiveDate, limit_days: u32) -> Option<i64> {
    let since = state.zero_since?;
    let days = (today - since).num_days();
    (days > i64::from(limit_days)).then_some(days)
}

/// `visit_overdue`: "a zero-employment household whose last visit, or
/// `zero_since` if later, is more than 31 days before today". Returns the day
/// the gap started.
pub fn visit_overdue(
    state: &HouseholdState,
    last_visit: Option<NaiveDate>,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let since = state.zero_since?;
    let gap_start = last_visit.map_or(since, |v| v.max(since));
    ((today - gap_start).num_days() > i64::from(Rules::VISIT_INTERVAL_DAYS)).then_some(gap_start)
}

/// The next day after `today` a zero-employment household must be looked at
/// again for the overdue alerts, even if nothing else happens. An alert whose
/// day has passed was raised when it came, so only later days count.
pub fn next_overdue_check(
    state: &HouseholdState,
    last_visit: Option<NaiveDate>,
    today: NaiveDate,
    limit_days: u32,
) -> Option<NaiveDate> {
    let since = state.zero_since?;
    let placement = since.checked_add_days(Days::new(u64::from(limit_days) + 1));
    let gap_start = last_visit.map_or(since, |v| v.max(since));
    let visit = gap_start.checked_add_days(Days::new(u64::from(Rules::VISIT_INTERVAL_DAYS) + 1));
    [placement, visit]
        .into_iter()
        .flatten()
        .filter(|d| *d > today)
        .min()
}

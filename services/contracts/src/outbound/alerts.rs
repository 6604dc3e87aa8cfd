//! The alerts, rendered: each kind's `data` fields (the contract's §6a
//! item 6) and its Chinese summary, which reads its numbers from `Rules`.

use super::{Alert, date, state_data};
use chrono::NaiveDate;
use dynzero_domain::alerts::{AlertKind, JobMatch, LayoffSize};
use dynzero_domain::facts::{Enterprise, JobPosting, LayoffNotice};
use dynzero_domain::ids::{IdNumber, NoticeId, Uscc};
use dynzero_domain::reconcile::HouseholdState;
use dynzero_domain::rules::Rules;
use dynzero_planner::layoff::LayoffAlert;
use dynzero_planner::{HouseholdAlert, Version, occurrence};
use serde_json::{Map, Value, json};

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An alert about a household: routed by the household's division.
fn about_household(
    state: &HouseholdState,
    kind: AlertKind,
    occurrence: String,
    summary: String,
    data: Value,
) -> Alert {
    Alert {
        kind,
        occurrence,
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary,
        fields: fields(data),
    }
}

fn labour_force(state: &HouseholdState) -> usize {
    state.members.iter().filter(|m| m.in_labour_force).count()
}

/// `zero_employment_new`. `household` is the state's `data` as published.
pub fn zero_employment_new(state: &HouseholdState, household: Value, version: i64) -> Alert {
    about_household(
        state,
        AlertKind::ZeroEmploymentNew,
        occurrence::status_change(&state.household_id, version),
        format!(
            "新增零就业家庭：户 {}（{}），{} 名劳动力成员均未就业{}。请社区尽快入户核实，建立援助台账，优先推荐岗位。",
            state.household_id,
            state.division_code,
            labour_force(state),
            state
                .zero_since
                .map(|d| format!("，自 {d} 起"))
                .unwrap_or_default(),
        ),
        json!({ "household": household }),
    )
}

/// `zero_employment_resolved`.
pub fn zero_employment_resolved(
    state: &HouseholdState,
    household: Value,
    version: i64,
    days: i64,
) -> Alert {
    about_household(
        state,
        AlertKind::ZeroEmploymentResolved,
        occurrence::status_change(&state.household_id, version),
        format!(
            "零就业家庭已实现就业：户 {}（{}），零就业状态持续 {days} 天。请跟踪就业稳定情况。",
            state.household_id, state.division_code,
        ),
        json!({ "household": household, "days": days }),
    )
}

fn enterprise(e: &Enterprise) -> Value {
    json!({ "uscc": e.uscc.as_str(), "name": e.name, "division_code": e.division_code.as_str() })
}

fn layoff_fields(
    e: &Enterprise,
    notice_id: &NoticeId,
    size: LayoffSize,
    effective: NaiveDate,
) -> Map<String, Value> {
    fields(json!({
        "enterprise": enterprise(e),
        "notice_id": notice_id.as_str(),
        "count": size.count,
        "ratio": (size.ratio * 10_000.0).round() / 10_000.0,
        "effective_date": date(effective),
    }))
}

/// `layoff_early_warning`: once per (uscc, notice_id).
pub fn layoff_early_warning(
    e: &Enterprise,
    notice_id: &NoticeId,
    size: LayoffSize,
    effective: NaiveDate,
) -> Alert {
    Alert {
        kind: AlertKind::LayoffEarlyWarning,
        occurrence: occurrence::layoff(&e.uscc, notice_id),
        division_code: e.division_code.clone(),
        household_id: None,
        summary: format!(
            "裁员预警：{}（{}）报告拟于 {effective} 裁减 {} 人，占职工总数 {:.1}%。请提前对接受影响职工家庭，做好再就业准备。",
            e.name,
            e.uscc,
            size.count,
            size.ratio * 100.0,
        ),
        fields: layoff_fields(e, notice_id, size, effective),
    }
}

/// `layoff_unreported`: once per (uscc, notice_id).
pub fn layoff_unreported(
    e: &Enterprise,
    notice_id: &NoticeId,
    size: LayoffSize,
    effective: NaiveDate,
) -> Alert {
    Alert {
        kind: AlertKind::LayoffUnreported,
        occurrence: occurrence::layoff(&e.uscc, notice_id),
        division_code: e.division_code.clone(),
        household_id: None,
        summary: format!(
            "未按规定提前报告的裁员：{}（{}）于 {effective} 裁减 {} 人（{:.1}%），未见提前 {} 日的裁员报告。请核查并跟进受影响家庭。",
            e.name,
            e.uscc,
            size.count,
            size.ratio * 100.0,
            Rules::LAYOFF_NOTICE_DAYS,
        ),
        fields: layoff_fields(e, notice_id, size, effective),
    }
}

/// `household_at_risk`: once per (household, notice).
pub fn household_at_risk(
    state: &HouseholdState,
    household: Value,
    e: &Enterprise,
    notice_id: &NoticeId,
    effective: NaiveDate,
    members: &[(IdNumber, String)],
) -> Alert {
    about_household(
        state,
        AlertKind::HouseholdAtRisk,
        occurrence::household_at_risk(&state.household_id, &e.uscc, notice_id),
        format!(
            "零就业风险：{} 拟于 {effective} 裁员，户 {}（{}）届时将成为零就业家庭（涉及 {} 人）。请提前介入，推荐岗位。",
            e.name,
            state.household_id,
            state.division_code,
            members.len(),
        ),
        json!({
            "household": household,
            "enterprise": enterprise(e),
            "notice_id": notice_id.as_str(),
            "effective_date": date(effective),
            "members": members.iter().map(|(id, name)| json!({"id_number": id.as_str(), "name": name})).collect::<Vec<_>>(),
        }),
    )
}

/// A posting's `data` plus `posting_id`, as a `job_match` alert carries it.
pub fn posting_data(p: &JobPosting, data: &Value) -> Value {
    let mut posting = data.as_object().cloned().unwrap_or_default();
    posting.insert("posting_id".into(), json!(p.posting_id.as_str()));
    Value::Object(posting)
}

/// `job_match`: one per (posting, household).
pub fn job_match(
    state: &HouseholdState,
    posting: &JobPosting,
    posting_data: Value,
    m: &JobMatch,
) -> Alert {
    about_household(
        state,
        AlertKind::JobMatch,
        occurrence::job_match(&posting.posting_id, &state.household_id),
        format!(
            "岗位匹配：{}「{}」（月薪 {} 元，{} 个岗位）适合零就业家庭户 {} 的 {} 名成员。请联系家庭推荐上岗。",
            posting.employer_name,
            posting.title,
            posting.monthly_wage,
            posting.openings,
            state.household_id,
            m.members.len(),
        ),
        json!({
            "posting_id": posting.posting_id.as_str(),
            "posting": posting_data,
            "matched_members": m.members.iter().map(|(id, name, age)| json!({"id_number": id.as_str(), "name": name, "age": age})).collect::<Vec<_>>(),
        }),
    )
}

/// `placement_overdue`: once per zero-employment spell, named by the version
/// that began it.
pub fn placement_overdue(
    state: &HouseholdState,
    spell: Version,
    zero_since: NaiveDate,
    days: i64,
) -> Alert {
    about_household(
        state,
        AlertKind::PlacementOverdue,
        occurrence::placement_overdue(&state.household_id, spell),
        format!(
            "援助超期：零就业家庭户 {}（{}）自 {zero_since} 起已 {days} 天未实现就业。请加大援助力度，优先安置公益性岗位。",
            state.household_id, state.division_code,
        ),
        json!({ "zero_since": date(zero_since), "days": days }),
    )
}

/// `visit_overdue`: once per gap, the spell and the last visit it runs from.
pub fn visit_overdue(
    state: &HouseholdState,
    spell: Version,
    zero_since: NaiveDate,
    last_visit: Option<NaiveDate>,
) -> Alert {
    about_household(
        state,
        AlertKind::VisitOverdue,
        occurrence::visit_overdue(&state.household_id, spell, last_visit),
        format!(
            "走访超期：零就业家庭户 {}（{}）{}，已超过 {} 天。请安排入户走访。",
            state.household_id,
            state.division_code,
            last_visit.map_or("尚无走访记录".to_string(), |d| format!(
                "上次走访为 {d}"
            )),
            Rules::VISIT_INTERVAL_DAYS,
        ),
        json!({ "zero_since": date(zero_since), "last_visit": last_visit.map(date) }),
    )
}

/// `data_conflict`: one per (visit, person).
pub fn data_conflict(
    state: &HouseholdState,
    visit_key: &str,
    id_number: &IdNumber,
    visit_date: NaiveDate,
    employer: &Uscc,
) -> Alert {
    about_household(
        state,
        AlertKind::DataConflict,
        occurrence::data_conflict(visit_key, id_number),
        format!(
            "数据冲突：{visit_date} 走访户 {} 时登记 {} 为失业，但用人单位 {employer} 的就业登记仍有效。请社区核实。",
            state.household_id,
            id_number.masked(),
        ),
        json!({
            "id_number": id_number.as_str(),
            "visit_date": date(visit_date),
            "employer_uscc": employer.as_str(),
        }),
    )
}

/// An alert a plan raises about a household at `version`. `published` is the
/// state's `data` as this plan publishes it, if it publishes a version.
pub fn household_alert(
    state: &HouseholdState,
    version: Version,
    published: Option<&Value>,
    alert: &HouseholdAlert,
) -> Alert {
    let household = || {
        published
            .cloned()
            .unwrap_or_else(|| state_data(state, version, &[]))
    };
    match alert {
        HouseholdAlert::ZeroEmploymentNew => zero_employment_new(state, household(), version),
        HouseholdAlert::ZeroEmploymentResolved { days } => {
            zero_employment_resolved(state, household(), version, *days)
        }
        HouseholdAlert::DataConflict(c) => data_conflict(
            state,
            &c.visit.key,
            &c.id_number,
            c.visit_date,
            &c.employer_uscc,
        ),
        HouseholdAlert::PlacementOverdue {
            spell,
            zero_since,
            days,
        } => placement_overdue(state, *spell, *zero_since, *days),
        HouseholdAlert::VisitOverdue {
            spell,
            zero_since,
            last_visit,
        } => visit_overdue(state, *spell, *zero_since, *last_visit),
        // The snapshot as of the version, without the causes of a change.
        HouseholdAlert::HouseholdAtRisk { notice, members } => household_at_risk(
            state,
            state_data(state, version, &[]),
            &notice.enterprise,
            &notice.notice_id,
            notice.effective_date(),
            members,
        ),
    }
}

/// What a layoff notice raises, rendered.
pub fn layoff_alert(notice: &LayoffNotice, alert: LayoffAlert) -> Alert {
    let (e, id, date) = (
        &notice.enterprise,
        &notice.notice_id,
        notice.effective_date(),
    );
    match alert {
        LayoffAlert::EarlyWarning(size) => layoff_early_warning(e, id, size, date),
        LayoffAlert::Unreported(size) => layoff_unreported(e, id, size, date),
    }
}

//! What the hub publishes: household states and alerts as CloudEvents with
//! stable ids (CONTRACT.md section 6).

use crate::words;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use dynzero_domain::alerts::{AlertKind, JobMatch, LayoffSize};
use dynzero_domain::facts::{Enterprise, JobPosting};
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, Money, NoticeId, Uscc};
use dynzero_domain::reconcile::{HouseholdState, MemberState};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The `source` of everything the hub publishes.
pub const SOURCE: &str = "dynzero";
pub const STATE_TYPE: &str = "dynzero.household.state";
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// Which output exchange a message goes to (names are configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Households,
    Alerts,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Households => "households",
            Stream::Alerts => "alerts",
        }
    }
    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "households" => Some(Stream::Households),
            "alerts" => Some(Stream::Alerts),
            _ => None,
        }
    }
}

/// One message to publish: written to the outbox as it is, so a republish is
/// byte-for-byte the same message with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub stream: Stream,
    pub routing_key: String,
    pub message_id: String,
    /// The whole CloudEvent.
    pub event: Value,
}

/// China Standard Time, for `raised_at` and output `time`.
pub fn shanghai(time: DateTime<Utc>) -> DateTime<FixedOffset> {
    time.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"))
}

fn rfc3339(time: DateTime<Utc>) -> String {
    shanghai(time).to_rfc3339_opts(SecondsFormat::Millis, false)
}

pub fn money(m: Money) -> Value {
    if m.fen() % 100 == 0 {
        json!(m.fen() / 100)
    } else {
        json!(m.yuan_f64())
    }
}

fn date(d: NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

fn member(m: &MemberState) -> Value {
    json!({
        "id_number": m.id_number.as_str(),
        "name": m.name,
        "birth_date": date(m.birth_date),
        "sex": m.sex.as_str(),
        "in_labour_force": m.in_labour_force,
        "employed": m.employed,
        "employment_kind": m.employment_kind.map(words::kind::word),
        "employer_uscc": m.employer_uscc.as_ref().map(Uscc::as_str),
        "stable": m.stable,
    })
}

/// The `data` of `dynzero.household.state`.
pub fn state_data(state: &HouseholdState, version: i64, caused_by: &[String]) -> Value {
    json!({
        "household_id": state.household_id.as_str(),
        "division_code": state.division_code.as_str(),
        "version": version,
        "status": state.status.as_str(),
        "zero_since": state.zero_since.map(date),
        "dual_employment": state.dual_employment,
        "dibao": state.dibao.as_ref().map(|d| json!({
            "case_id": d.case_id.as_str(),
            "monthly_amount": money(d.monthly_amount),
        })),
        "members": state.members.iter().map(member).collect::<Vec<_>>(),
        "caused_by": caused_by,
    })
}

fn cloud_event(
    id: &str,
    event_type: &str,
    subject: &str,
    time: DateTime<Utc>,
    data: Value,
) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": event_type,
        "subject": subject,
        "time": rfc3339(time),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// A household state version. Its id is `<household_id>/v<version>`: the same
/// version is always the same message.
pub fn state_output(
    state: &HouseholdState,
    version: i64,
    caused_by: &[String],
    time: DateTime<Utc>,
) -> Output {
    let message_id = format!("household/{}/v{version}", state.household_id);
    Output {
        stream: Stream::Households,
        routing_key: format!("state.{}", state.division_code.dotted()),
        event: cloud_event(
            &message_id,
            STATE_TYPE,
            state.household_id.as_str(),
            time,
            state_data(state, version, caused_by),
        ),
        message_id,
    }
}

/// The stable id of an alert: its kind and a digest of the occurrence it
/// reports, so raising the same occurrence again yields the same id.
pub fn alert_id(kind: AlertKind, occurrence: &str) -> String {
    let digest = Sha256::digest(occurrence.as_bytes());
    format!("alert/{}/{}", kind.as_str(), &hex::encode(digest)[..32])
}

/// An alert about to be raised: what makes it unique, where it goes, what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    /// Names the occurrence: one alert per occurrence.
    pub occurrence: String,
    pub division_code: DivisionCode,
    pub household_id: Option<HouseholdId>,
    pub summary: String,
    /// The kind's own fields (CONTRACT.md 6a item 6).
    pub fields: Map<String, Value>,
}

impl Alert {
    pub fn id(&self) -> String {
        alert_id(self.kind, &self.occurrence)
    }

    /// The alert's `data`.
    pub fn data(&self, raised_at: DateTime<Utc>) -> Value {
        let mut data = Map::new();
        data.insert("kind".into(), json!(self.kind.as_str()));
        data.insert("division_code".into(), json!(self.division_code.as_str()));
        data.insert("raised_at".into(), json!(rfc3339(raised_at)));
        data.insert("summary".into(), json!(self.summary));
        if let Some(h) = &self.household_id {
            data.insert("household_id".into(), json!(h.as_str()));
        }
        for (k, v) in &self.fields {
            data.insert(k.clone(), v.clone());
        }
        Value::Object(data)
    }

    pub fn output(&self, raised_at: DateTime<Utc>) -> Output {
        let message_id = self.id();
        let subject = self
            .household_id
            .as_ref()
            .map_or(self.division_code.as_str(), |h| h.as_str());
        Output {
            stream: Stream::Alerts,
            routing_key: format!("{}.{}", self.kind.as_str(), self.division_code.dotted()),
            event: cloud_event(
                &message_id,
                &format!("dynzero.alert.{}", self.kind.as_str()),
                subject,
                raised_at,
                self.data(raised_at),
            ),
            message_id,
        }
    }
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn labour_force(state: &HouseholdState) -> usize {
    state.members.iter().filter(|m| m.in_labour_force).count()
}

/// `zero_employment_new`. `household` is the state's `data` as published.
pub fn zero_employment_new(state: &HouseholdState, household: Value, version: i64) -> Alert {
    Alert {
        kind: AlertKind::ZeroEmploymentNew,
        occurrence: format!("{} v{version}", state.household_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "新增零就业家庭：户 {}（{}），{} 名劳动力成员均未就业{}。请社区尽快入户核实，建立援助台账，优先推荐岗位。",
            state.household_id,
            state.division_code,
            labour_force(state),
            state
                .zero_since
                .map(|d| format!("，自 {d} 起"))
                .unwrap_or_default(),
        ),
        fields: fields(json!({ "household": household })),
    }
}

/// `zero_employment_resolved`.
pub fn zero_employment_resolved(
    state: &HouseholdState,
    household: Value,
    version: i64,
    days: i64,
) -> Alert {
    Alert {
        kind: AlertKind::ZeroEmploymentResolved,
        occurrence: format!("{} v{version}", state.household_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "零就业家庭已实现就业：户 {}（{}），零就业状态持续 {days} 天。请跟踪就业稳定情况。",
            state.household_id, state.division_code,
        ),
        fields: fields(json!({ "household": household, "days": days })),
    }
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
        occurrence: format!("{} {}", e.uscc, notice_id),
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
        occurrence: format!("{} {}", e.uscc, notice_id),
        division_code: e.division_code.clone(),
        household_id: None,
        summary: format!(
            "未按规定提前报告的裁员：{}（{}）于 {effective} 裁减 {} 人（{:.1}%），未见提前 30 日的裁员报告。请核查并跟进受影响家庭。",
            e.name,
            e.uscc,
            size.count,
            size.ratio * 100.0,
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
    Alert {
        kind: AlertKind::HouseholdAtRisk,
        occurrence: format!("{} {} {}", state.household_id, e.uscc, notice_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "零就业风险：{} 拟于 {effective} 裁员，户 {}（{}）届时将成为零就业家庭（涉及 {} 人）。请提前介入，推荐岗位。",
            e.name,
            state.household_id,
            state.division_code,
            members.len(),
        ),
        fields: fields(json!({
            "household": household,
            "enterprise": enterprise(e),
            "notice_id": notice_id.as_str(),
            "effective_date": date(effective),
            "members": members.iter().map(|(id, name)| json!({"id_number": id.as_str(), "name": name})).collect::<Vec<_>>(),
        })),
    }
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
    Alert {
        kind: AlertKind::JobMatch,
        occurrence: format!("{} {}", posting.posting_id, state.household_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "岗位匹配：{}「{}」（月薪 {} 元，{} 个岗位）适合零就业家庭户 {} 的 {} 名成员。请联系家庭推荐上岗。",
            posting.employer_name,
            posting.title,
            posting.monthly_wage,
            posting.openings,
            state.household_id,
            m.members.len(),
        ),
        fields: fields(json!({
            "posting_id": posting.posting_id.as_str(),
            "posting": posting_data,
            "matched_members": m.members.iter().map(|(id, name, age)| json!({"id_number": id.as_str(), "name": name, "age": age})).collect::<Vec<_>>(),
        })),
    }
}

/// `placement_overdue`: once per zero-employment spell.
pub fn placement_overdue(state: &HouseholdState, zero_since: NaiveDate, days: i64) -> Alert {
    Alert {
        kind: AlertKind::PlacementOverdue,
        occurrence: format!("{} {zero_since}", state.household_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "援助超期：零就业家庭户 {}（{}）自 {zero_since} 起已 {days} 天未实现就业。请加大援助力度，优先安置公益性岗位。",
            state.household_id, state.division_code,
        ),
        fields: fields(json!({ "zero_since": date(zero_since), "days": days })),
    }
}

/// `visit_overdue`: once per gap; `gap_start` is the last visit or `zero_since`.
pub fn visit_overdue(
    state: &HouseholdState,
    zero_since: NaiveDate,
    last_visit: Option<NaiveDate>,
    gap_start: NaiveDate,
) -> Alert {
    Alert {
        kind: AlertKind::VisitOverdue,
        occurrence: format!("{} {gap_start}", state.household_id),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "走访超期：零就业家庭户 {}（{}）{}，已超过 31 天。请安排入户走访。",
            state.household_id,
            state.division_code,
            last_visit.map_or("尚无走访记录".to_string(), |d| format!(
                "上次走访为 {d}"
            )),
        ),
        fields: fields(
            json!({ "zero_since": date(zero_since), "last_visit": last_visit.map(date) }),
        ),
    }
}

/// `data_conflict`: one per (visit, person).
pub fn data_conflict(
    state: &HouseholdState,
    visit_key: &str,
    id_number: &IdNumber,
    visit_date: NaiveDate,
    employer: &Uscc,
) -> Alert {
    Alert {
        kind: AlertKind::DataConflict,
        occurrence: format!("{visit_key} {}", id_number.as_str()),
        division_code: state.division_code.clone(),
        household_id: Some(state.household_id.clone()),
        summary: format!(
            "数据冲突：{visit_date} 走访户 {} 时登记 {} 为失业，但用人单位 {employer} 的就业登记仍有效。请社区核实。",
            state.household_id,
            id_number.masked(),
        ),
        fields: fields(json!({
            "id_number": id_number.as_str(),
            "visit_date": date(visit_date),
            "employer_uscc": employer.as_str(),
        })),
    }
}

/// Read back a state's `data` as published (the hub keeps it as the
/// household's current state). `None` if it is not one.
pub fn state_from_data(data: &Value) -> Option<HouseholdState> {
    use dynzero_domain::ids::Sex;
    use dynzero_domain::reconcile::{Dibao, HouseholdStatus};
    let date = |v: &Value| {
        v.as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let status = match data["status"].as_str()? {
        "zero_employment" => HouseholdStatus::ZeroEmployment,
        "employed" => HouseholdStatus::Employed,
        "no_labour_force" => HouseholdStatus::NoLabourForce,
        _ => return None,
    };
    let dibao = match &data["dibao"] {
        Value::Object(d) => Some(Dibao {
            case_id: d.get("case_id")?.as_str()?.parse().ok()?,
            monthly_amount: Money::from_yuan_str(&d.get("monthly_amount")?.to_string()).ok()?,
        }),
        _ => None,
    };
    let mut members = Vec::new();
    for m in data["members"].as_array()? {
        members.push(MemberState {
            id_number: IdNumber::parse(m["id_number"].as_str()?, NaiveDate::MAX).ok()?,
            name: m["name"].as_str()?.to_string(),
            birth_date: date(&m["birth_date"])?,
            sex: if m["sex"] == "male" {
                Sex::Male
            } else {
                Sex::Female
            },
            in_labour_force: m["in_labour_force"].as_bool()?,
            employed: m["employed"].as_bool()?,
            employment_kind: m["employment_kind"].as_str().and_then(words::kind::parse),
            employer_uscc: m["employer_uscc"]
                .as_str()
                .and_then(|u| Uscc::parse(u).ok()),
            stable: m["stable"].as_bool()?,
        });
    }
    Some(HouseholdState {
        household_id: data["household_id"].as_str()?.parse().ok()?,
        division_code: DivisionCode::parse(data["division_code"].as_str()?).ok()?,
        status,
        zero_since: date(&data["zero_since"]),
        dual_employment: data["dual_employment"].as_bool()?,
        dibao,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_state_reads_back_as_the_same_state() {
        let example = crate::schemas::all_schema_files()
            .into_iter()
            .find(|(name, _)| name.contains("household.state"))
            .map(|(_, text)| serde_json::from_str::<Value>(text).expect("schema is JSON"))
            .expect("the state schema exists");
        let data = example["examples"][0].clone();
        let state = state_from_data(&data).expect("the example is a state");
        let again = state_data(&state, data["version"].as_i64().unwrap_or(1), &[]);
        let mut expected = data.clone();
        expected["caused_by"] = json!([]);
        assert_eq!(again, expected);
    }
}

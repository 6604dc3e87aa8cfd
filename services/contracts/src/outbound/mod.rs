//! What the hub publishes: household states and alerts as CloudEvents with
//! stable ids (docs/contract.md section 6).

mod alerts;

use crate::trace::TraceContext;
use crate::words;
pub use alerts::*;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use dynzero_domain::alerts::AlertKind;
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, Money, Uscc};
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

impl Output {
    /// The output with the trace context of what caused it, as the
    /// `traceparent` and `tracestate` attributes.
    pub fn traced(mut self, trace: Option<&TraceContext>) -> Output {
        if let Some(trace) = trace {
            trace.write_attributes(&mut self.event);
        }
        self
    }

    /// The `traceparent` attribute, also sent as an AMQP header.
    pub fn traceparent(&self) -> Option<&str> {
        self.event.get("traceparent").and_then(Value::as_str)
    }
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
    /// The kind's own fields (docs/contract.md section 6, "Alerts").
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

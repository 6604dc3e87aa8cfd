//! Inbound messages: bytes in, a validated [`Inbound`] (or a [`Rejection`]) out.
//!
//! The checks run in the contract's order: size, JSON, CloudEvents envelope,
//! type, JSON Schema of `data`, identifiers. Identifiers are parsed into the
//! domain's newtypes, so a value that gets past here is valid by construction.

use crate::canonical::canonical_digest;
use crate::event_type::EventType;
use crate::rejection::{Reason, Rejection};
use crate::schemas::Schemas;
use crate::trace::TraceContext;
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_domain::facts::{
    EmploymentEvent, EmploymentFact, EmploymentKind, Enterprise, Finding, JobPosting, LayoffNotice,
    LayoffStage, MemberStatus, Order, RegisteredMember, Registration, Relation, SubsidyChange,
    SubsidyChangeKind, Terms, Visit, VisitRef,
};
use dynzero_domain::ids::{DivisionCode, HouseholdId, IdNumber, IdentifierError, Money, Uscc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The largest body accepted by default (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest `id`, in characters (the contract's own bound).
pub const MAX_ID_CHARS: usize = 128;
/// The longest `source`, in characters. A source is a URN or a short path;
/// the bound keeps every echo of it (logs, `caused_by`, rejection headers) small.
pub const MAX_SOURCE_CHARS: usize = 1024;
/// The longest `type`, in characters: the seven are short, and an unknown one
/// is echoed in the rejection's detail.
pub const MAX_TYPE_CHARS: usize = 256;

/// A message that passed every check up to de-duplication.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub source: String,
    pub id: String,
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    /// `data` as received.
    pub data: Value,
    /// SHA-256 of `data` in canonical form: equal for equal JSON values.
    pub data_digest: String,
    /// The fact, with `arrival` 0 until the store assigns one ([`InboundFact::set_arrival`]).
    pub fact: InboundFact,
    /// The `traceparent` and `tracestate` attributes as received, when valid.
    pub trace: Option<TraceContext>,
    /// The trace context the outputs this message causes carry: the
    /// service's span in the received trace. `None` from [`parse`]; the
    /// service sets it.
    pub onward_trace: Option<TraceContext>,
}

impl Inbound {
    /// `"<source> <id>"`, as `caused_by` names it.
    pub fn cause(&self) -> String {
        format!("{} {}", self.source, self.id)
    }
}

/// The domain facts one inbound message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundFact {
    Registration(Registration),
    Visit {
        visit: Visit,
        worker: String,
        findings: Vec<EmploymentFact>,
    },
    Layoff(LayoffNotice),
    Employment(EmploymentFact),
    Subsidy {
        change: SubsidyChange,
        division_code: DivisionCode,
        covered_members: Vec<IdNumber>,
    },
    Posting(JobPosting),
}

impl InboundFact {
    pub fn set_arrival(&mut self, arrival: i64) {
        match self {
            InboundFact::Registration(r) => r.order.arrival = arrival,
            InboundFact::Visit {
                visit, findings, ..
            } => {
                visit.order.arrival = arrival;
                for f in findings {
                    f.order.arrival = arrival;
                }
            }
            InboundFact::Layoff(n) => n.order.arrival = arrival,
            InboundFact::Employment(f) => f.order.arrival = arrival,
            InboundFact::Subsidy { change, .. } => change.order.arrival = arrival,
            InboundFact::Posting(_) => {}
        }
    }
}

/// Run every check of the contract on one message body. `today` (Asia/Shanghai)
/// bounds birth dates in id numbers.
pub fn parse(body: &[u8], max_body_bytes: usize, today: NaiveDate) -> Result<Inbound, Rejection> {
    if body.len() > max_body_bytes {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!(
                "body is {} bytes, the limit is {max_body_bytes}",
                body.len()
            ),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::new(Reason::Malformed, format!("body is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Rejection::new(Reason::Malformed, format!("body is not JSON: {e}")))?;
    let Value::Object(envelope) = value else {
        return Err(Rejection::new(
            Reason::Malformed,
            "body is not a JSON object",
        ));
    };
    let (source, id, type_name, time) = check_envelope(&envelope)?;
    let event_type = EventType::parse(&type_name).ok_or_else(|| {
        Rejection::new(
            Reason::UnknownType,
            format!("/type: '{type_name}' is none of the seven inbound types"),
        )
    })?;
    let data = envelope.get("data").cloned().unwrap_or(Value::Null);
    Schemas::get()
        .validate_inbound(event_type, &data)
        .map_err(|v| {
            Rejection::new(
                Reason::SchemaInvalid,
                format!("/data{}: {}", v.pointer, v.message),
            )
        })?;
    let fact = to_fact(event_type, &data, &source, &id, time, today)?;
    let data_digest = canonical_digest(&data);
    Ok(Inbound {
        source,
        id,
        event_type,
        time,
        data,
        data_digest,
        fact,
        trace: TraceContext::from_attributes(&envelope),
        onward_trace: None,
    })
}

fn envelope_invalid(pointer: &str, why: &str) -> Rejection {
    Rejection::new(Reason::EnvelopeInvalid, format!("{pointer}: {why}"))
}

fn non_empty_string<'a>(
    envelope: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, Rejection> {
    let pointer = format!("/{name}");
    match envelope.get(name) {
        None => Err(envelope_invalid(&pointer, "missing")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(envelope_invalid(&pointer, "must not be empty")),
        Some(_) => Err(envelope_invalid(&pointer, "must be a string")),
    }
}

/// A non-empty string of at most `max` characters.
fn bounded_string<'a>(
    envelope: &'a Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<&'a str, Rejection> {
    let s = non_empty_string(envelope, name)?;
    // Counting stops at the bound: a 300 KB value costs no more than a short one.
    if s.chars().nth(max).is_some() {
        return Err(envelope_invalid(
            &format!("/{name}"),
            &format!("longer than {max} characters"),
        ));
    }
    Ok(s)
}

fn check_envelope(
    envelope: &Map<String, Value>,
) -> Result<(String, String, String, DateTime<Utc>), Rejection> {
    match envelope.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        None => return Err(envelope_invalid("/specversion", "missing")),
        Some(_) => return Err(envelope_invalid("/specversion", "must be \"1.0\"")),
    }
    let id = bounded_string(envelope, "id", MAX_ID_CHARS)?;
    let source = bounded_string(envelope, "source", MAX_SOURCE_CHARS)?;
    let type_name = bounded_string(envelope, "type", MAX_TYPE_CHARS)?;
    let time = non_empty_string(envelope, "time")?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|e| envelope_invalid("/time", &format!("not an RFC 3339 timestamp: {e}")))?
        .with_timezone(&Utc);
    match envelope.get("data") {
        Some(Value::Object(_)) => {}
        None => return Err(envelope_invalid("/data", "missing")),
        Some(_) => return Err(envelope_invalid("/data", "must be a JSON object")),
    }
    Ok((source.to_owned(), id.to_owned(), type_name.to_owned(), time))
}

fn invalid(pointer: &str, what: &str, e: IdentifierError) -> Rejection {
    Rejection::new(
        Reason::InvalidIdentifier,
        format!("/data{pointer}: {what} {e}"),
    )
}

fn schema(pointer: &str, why: impl std::fmt::Display) -> Rejection {
    Rejection::new(Reason::SchemaInvalid, format!("/data{pointer}: {why}"))
}

fn id_number(s: &str, pointer: &str, today: NaiveDate) -> Result<IdNumber, Rejection> {
    IdNumber::parse(s, today).map_err(|e| invalid(pointer, "id number", e))
}

fn uscc(s: &str, pointer: &str) -> Result<Uscc, Rejection> {
    Uscc::parse(s).map_err(|e| invalid(pointer, "unified social credit code", e))
}

fn community(s: &str, pointer: &str) -> Result<DivisionCode, Rejection> {
    DivisionCode::parse_community(s).map_err(|e| invalid(pointer, "division code", e))
}

fn division(s: &str, pointer: &str) -> Result<DivisionCode, Rejection> {
    DivisionCode::parse(s).map_err(|e| invalid(pointer, "division code", e))
}

/// A household, case, notice or posting id: which one, the field says.
fn key<K: std::str::FromStr<Err = IdentifierError>>(
    s: &str,
    pointer: &str,
) -> Result<K, Rejection> {
    s.parse().map_err(|e| schema(pointer, e))
}

fn money(n: &serde_json::Number, pointer: &str) -> Result<Money, Rejection> {
    Money::from_yuan_str(&n.to_string()).map_err(|e| schema(pointer, e))
}

fn date(s: &str, pointer: &str) -> Result<NaiveDate, Rejection> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| schema(pointer, format!("not a real date: {e}")))
}

fn months(m: Option<u64>, pointer: &str) -> Result<Option<u32>, Rejection> {
    m.map(|m| u32::try_from(m).map_err(|_| schema(pointer, "too large")))
        .transpose()
}

fn count(n: u64, pointer: &str) -> Result<u32, Rejection> {
    u32::try_from(n).map_err(|_| schema(pointer, "too large"))
}

fn deserialize<T: for<'de> Deserialize<'de>>(data: &Value) -> Result<T, Rejection> {
    T::deserialize(data).map_err(|e| schema("", e))
}

fn to_fact(
    event_type: EventType,
    data: &Value,
    source: &str,
    id: &str,
    time: DateTime<Utc>,
    today: NaiveDate,
) -> Result<InboundFact, Rejection> {
    let at = Arrived {
        source,
        id,
        time,
        today,
    };
    match event_type {
        EventType::HouseholdRegistered => registration(deserialize(data)?, &at),
        EventType::HouseholdVisited => visit(deserialize(data)?, &at),
        EventType::LayoffNotice => layoff(deserialize(data)?, &at),
        EventType::EmploymentStarted => employment_started(deserialize(data)?, &at),
        EventType::EmploymentEnded => employment_ended(deserialize(data)?, &at),
        EventType::SubsidyChanged => subsidy(deserialize(data)?, &at),
        EventType::JobPosting => posting(deserialize(data)?),
    }
}

/// What every fact takes from its message besides `data`.
struct Arrived<'a> {
    source: &'a str,
    id: &'a str,
    time: DateTime<Utc>,
    today: NaiveDate,
}

impl Arrived<'_> {
    fn order(&self, date: NaiveDate) -> Order {
        Order {
            date,
            time: self.time,
            arrival: 0,
        }
    }

    /// The `id_number` at `pointer`, checked as of today.
    fn id_number(&self, s: &str, pointer: &str) -> Result<IdNumber, Rejection> {
        id_number(s, pointer, self.today)
    }
}

fn registration(w: wire::Registered, at: &Arrived) -> Result<InboundFact, Rejection> {
    let division_code = community(&w.division_code, "/division_code")?;
    let mut members = Vec::with_capacity(w.members.len());
    for (i, m) in w.members.iter().enumerate() {
        members.push(RegisteredMember {
            id_number: at.id_number(&m.id_number, &format!("/members/{i}/id_number"))?,
            name: m.name.clone(),
            relation: m.relation,
            able_to_work: m.able_to_work,
            seeking_work: m.seeking_work,
            status: m.status,
        });
    }
    Ok(InboundFact::Registration(Registration {
        household_id: key(&w.household_id, "/household_id")?,
        division_code,
        address: w.address,
        members,
        order: at.order(date(&w.effective_date, "/effective_date")?),
    }))
}

fn visit(w: wire::Visited, at: &Arrived) -> Result<InboundFact, Rejection> {
    let household_id: HouseholdId = key(&w.household_id, "/household_id")?;
    let visit_order = at.order(date(&w.visit_date, "/visit_date")?);
    let visit = VisitRef {
        household_id: household_id.clone(),
        key: format!("{} {}", at.source, at.id),
    };
    let mut findings = Vec::with_capacity(w.findings.len());
    for (i, f) in w.findings.iter().enumerate() {
        findings.push(EmploymentFact {
            id_number: at.id_number(&f.id_number, &format!("/findings/{i}/id_number"))?,
            order: visit_order,
            event: EmploymentEvent::Visited {
                visit: visit.clone(),
                finding: f.employment,
            },
        });
    }
    Ok(InboundFact::Visit {
        visit: Visit {
            household_id,
            order: visit_order,
        },
        worker: w.worker,
        findings,
    })
}

fn layoff(w: wire::Layoff, at: &Arrived) -> Result<InboundFact, Rejection> {
    let enterprise = Enterprise {
        uscc: uscc(&w.enterprise.uscc, "/enterprise/uscc")?,
        name: w.enterprise.name,
        headcount: count(w.enterprise.headcount, "/enterprise/headcount")?,
        division_code: division(&w.enterprise.division_code, "/enterprise/division_code")?,
    };
    let mut employees = Vec::with_capacity(w.employees.len());
    for (i, e) in w.employees.into_iter().enumerate() {
        employees.push((
            at.id_number(&e.id_number, &format!("/employees/{i}/id_number"))?,
            e.name,
        ));
    }
    Ok(InboundFact::Layoff(LayoffNotice {
        notice_id: key(&w.notice_id, "/notice_id")?,
        stage: w.stage,
        enterprise,
        employees,
        order: at.order(date(&w.effective_date, "/effective_date")?),
    }))
}

/// A start or an end: who (and with which employer), on which date (at
/// `date_pointer`); then what else the event carries. Checked in the order:
/// id number, date, employer, the rest.
fn employment(
    at: &Arrived,
    (id_number, employer): (&str, &wire::Employer),
    (on, date_pointer): (&str, &str),
    event: impl FnOnce(Uscc) -> Result<EmploymentEvent, Rejection>,
) -> Result<InboundFact, Rejection> {
    Ok(InboundFact::Employment(EmploymentFact {
        id_number: at.id_number(id_number, "/id_number")?,
        order: at.order(date(on, date_pointer)?),
        event: event(uscc(&employer.uscc, "/employer/uscc")?)?,
    }))
}

fn employment_started(w: wire::Started, at: &Arrived) -> Result<InboundFact, Rejection> {
    employment(
        at,
        (&w.id_number, &w.employer),
        (&w.start_date, "/start_date"),
        |employer| {
            Ok(EmploymentEvent::Started {
                employer,
                terms: Terms {
                    kind: w.kind,
                    contract_months: months(w.contract_months, "/contract_months")?,
                    monthly_wage: money(&w.monthly_wage, "/monthly_wage")?,
                    social_insurance: w.social_insurance,
                },
            })
        },
    )
}

fn employment_ended(w: wire::Ended, at: &Arrived) -> Result<InboundFact, Rejection> {
    employment(
        at,
        (&w.id_number, &w.employer),
        (&w.end_date, "/end_date"),
        |employer| Ok(EmploymentEvent::Ended { employer }),
    )
}

fn subsidy(w: wire::Subsidy, at: &Arrived) -> Result<InboundFact, Rejection> {
    let applicant = at.id_number(&w.applicant_id_number, "/applicant_id_number")?;
    let division_code = division(&w.division_code, "/division_code")?;
    let mut covered_members = Vec::new();
    for (i, m) in w.covered_members.iter().flatten().enumerate() {
        covered_members.push(at.id_number(m, &format!("/covered_members/{i}"))?);
    }
    Ok(InboundFact::Subsidy {
        change: SubsidyChange {
            case_id: key(&w.case_id, "/case_id")?,
            applicant,
            change: w.change,
            monthly_amount: money(&w.monthly_amount, "/monthly_amount")?,
            order: at.order(date(&w.effective_date, "/effective_date")?),
        },
        division_code,
        covered_members,
    })
}

fn posting(w: wire::Posting) -> Result<InboundFact, Rejection> {
    Ok(InboundFact::Posting(JobPosting {
        posting_id: key(&w.posting_id, "/posting_id")?,
        employer: uscc(&w.employer.uscc, "/employer/uscc")?,
        employer_name: w.employer.name.unwrap_or_default(),
        title: w.title,
        openings: count(w.openings, "/openings")?,
        division_code: community(&w.division_code, "/division_code")?,
        monthly_wage: money(&w.monthly_wage, "/monthly_wage")?,
        contract_months: months(w.contract_months, "/contract_months")?,
        social_insurance: w.social_insurance,
        public_welfare: w.public_welfare,
        age_min: w.age_min.map(|a| a.min(u64::from(u32::MAX)) as u32),
        age_max: w.age_max.map(|a| a.min(u64::from(u32::MAX)) as u32),
        valid_until: date(&w.valid_until, "/valid_until")?,
    }))
}

/// The `data` objects as they travel. The JSON Schemas have already checked
/// shapes; these only carry the values into the domain.
mod wire {
    use super::*;

    use crate::words;

    fn yes() -> bool {
        true
    }

    fn status_none() -> MemberStatus {
        MemberStatus::None
    }

    #[derive(Deserialize)]
    pub struct Registered {
        pub household_id: String,
        pub division_code: String,
        pub effective_date: String,
        pub address: Option<String>,
        pub members: Vec<Member>,
    }

    #[derive(Deserialize)]
    pub struct Member {
        pub id_number: String,
        pub name: String,
        #[serde(deserialize_with = "words::relation::deserialize")]
        pub relation: Relation,
        #[serde(default = "yes")]
        pub able_to_work: bool,
        #[serde(default = "yes")]
        pub seeking_work: bool,
        #[serde(
            default = "status_none",
            deserialize_with = "words::member_status::deserialize"
        )]
        pub status: MemberStatus,
    }

    #[derive(Deserialize)]
    pub struct Visited {
        pub household_id: String,
        pub visit_date: String,
        pub worker: String,
        pub findings: Vec<VisitFinding>,
    }

    #[derive(Deserialize)]
    pub struct VisitFinding {
        pub id_number: String,
        #[serde(deserialize_with = "words::finding::deserialize")]
        pub employment: Finding,
    }

    #[derive(Deserialize)]
    pub struct Layoff {
        pub notice_id: String,
        #[serde(deserialize_with = "words::stage::deserialize")]
        pub stage: LayoffStage,
        pub effective_date: String,
        pub enterprise: LayoffEnterprise,
        pub employees: Vec<Person>,
    }

    #[derive(Deserialize)]
    pub struct LayoffEnterprise {
        pub uscc: String,
        pub name: String,
        pub headcount: u64,
        pub division_code: String,
    }

    #[derive(Deserialize)]
    pub struct Person {
        pub id_number: String,
        pub name: String,
    }

    #[derive(Deserialize)]
    pub struct Employer {
        pub uscc: String,
        pub name: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Started {
        pub id_number: String,
        pub employer: Employer,
        pub start_date: String,
        pub contract_months: Option<u64>,
        pub monthly_wage: serde_json::Number,
        pub social_insurance: bool,
        #[serde(deserialize_with = "words::kind::deserialize")]
        pub kind: EmploymentKind,
    }

    #[derive(Deserialize)]
    pub struct Ended {
        pub id_number: String,
        pub employer: Employer,
        pub end_date: String,
    }

    #[derive(Deserialize)]
    pub struct Subsidy {
        pub case_id: String,
        pub applicant_id_number: String,
        pub division_code: String,
        #[serde(deserialize_with = "words::change::deserialize")]
        pub change: SubsidyChangeKind,
        pub monthly_amount: serde_json::Number,
        pub effective_date: String,
        pub covered_members: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    pub struct Posting {
        pub posting_id: String,
        pub employer: Employer,
        pub title: String,
        pub openings: u64,
        pub division_code: String,
        pub monthly_wage: serde_json::Number,
        pub contract_months: Option<u64>,
        pub social_insurance: bool,
        pub public_welfare: bool,
        pub age_min: Option<u64>,
        pub age_max: Option<u64>,
        pub valid_until: String,
    }
}

//! The published JSON Schemas (`schemas/` at the workspace root), compiled once.
//!
//! The schema files are embedded at compile time and every one is registered
//! under its `$id` in a local registry, so relative `$ref`s (`../defs.json#/…`,
//! `household.state.json`, …) resolve without any retrieval: the validators are
//! built offline and nothing is ever fetched.
//!
//! Formats are asserted (`date`, `date-time`): 2025-02-30 fails here, as
//! `schema_invalid`. Identifiers (`id_number`, `uscc`, `division_code`) are only
//! type-checked by the schemas; their rules live in `dynzero-domain` so that a
//! failure there can be told apart as `invalid_identifier`.

use std::{collections::HashMap, fmt, sync::LazyLock};

use jsonschema::{Registry, ValidationError, Validator, error::ValidationErrorKind};
use serde_json::Value;

use crate::event_type::EventType;

/// Base of every `$id`; a file's `$id` is this plus its path under `schemas/`.
pub const SCHEMA_BASE_URI: &str = "https://dynzero.cn/schemas/v1/";

/// The nine alert kinds of docs/contract.md section 6, as used in `dynzero.alert.<kind>`.
pub const ALERT_KINDS: [&str; 9] = [
    "zero_employment_new",
    "zero_employment_resolved",
    "layoff_early_warning",
    "layoff_unreported",
    "household_at_risk",
    "job_match",
    "placement_overdue",
    "visit_overdue",
    "data_conflict",
];

macro_rules! schema_files {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_str!(concat!("../../../schemas/", $path)))),*]
    };
}

const FILES: [(&str, &str); 20] = schema_files![
    "defs.json",
    "cloudevent.json",
    "inbound/household.registered.json",
    "inbound/household.visited.json",
    "inbound/layoff.notice.json",
    "inbound/employment.started.json",
    "inbound/employment.ended.json",
    "inbound/subsidy.changed.json",
    "inbound/job.posting.json",
    "outbound/household.state.json",
    "outbound/alert.zero_employment_new.json",
    "outbound/alert.zero_employment_resolved.json",
    "outbound/alert.layoff_early_warning.json",
    "outbound/alert.layoff_unreported.json",
    "outbound/alert.household_at_risk.json",
    "outbound/alert.job_match.json",
    "outbound/alert.placement_overdue.json",
    "outbound/alert.visit_overdue.json",
    "outbound/alert.data_conflict.json",
    "outbound/cloudevent.json",
];

/// Every embedded schema file as (path under `schemas/`, text), `defs.json` first.
pub fn all_schema_files() -> Vec<(&'static str, &'static str)> {
    FILES.to_vec()
}

/// Path under `schemas/` of the `data` schema of an inbound type.
pub fn inbound_schema_path(event_type: EventType) -> String {
    format!("inbound/{}.json", event_type.as_str())
}

/// Path under `schemas/` of the `data` schema of an alert kind.
pub fn alert_schema_path(kind: &str) -> String {
    format!("outbound/alert.{kind}.json")
}

/// The first thing wrong with an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the validated instance, e.g. `/members/0/relation`.
    /// For a missing or an unexpected property it names that property
    /// (`/members/0/name` when `name` is missing), so a reader of
    /// `x-dynzero-detail` sees which field is meant; `""` is the instance itself.
    pub pointer: String,
    /// What is wrong. Instance values are masked, so no id number ends up in a
    /// log line or a rejection header through this message.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.pointer, self.message)
    }
}

impl std::error::Error for Violation {}

/// Why the embedded schemas could not be compiled. Only a broken edit of
/// `schemas/` can cause one, and the tests build them, so `get()` never meets it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema file {path} is not JSON: {source}")]
    Json {
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("schema registry: {0}")]
    Registry(#[from] jsonschema::ReferencingError),
    #[error("schema file {path} does not compile: {message}")]
    Compile { path: &'static str, message: String },
}

/// Every validator of the published schemas, compiled once.
pub struct Schemas {
    envelope: Validator,
    /// Indexed like `EventType::ALL`.
    inbound: Vec<Validator>,
    state: Validator,
    alerts: HashMap<&'static str, Validator>,
    output_envelope: Validator,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| match Schemas::build() {
    Ok(schemas) => schemas,
    // The embedded files are fixed at compile time and `Schemas::build` is
    // tested, so this is a build defect, not a run-time condition.
    Err(e) => panic!("embedded JSON Schemas do not compile: {e}"),
});

impl Schemas {
    /// The shared, compiled-once set.
    pub fn get() -> &'static Schemas {
        &SCHEMAS
    }

    /// Compile every embedded schema. Prefer [`Schemas::get`]; this exists so
    /// that tests can see a failure as a value.
    pub fn build() -> Result<Schemas, SchemaError> {
        let documents = FILES
            .iter()
            .map(|&(path, text)| {
                serde_json::from_str::<Value>(text)
                    .map(|value| (path, value))
                    .map_err(|source| SchemaError::Json { path, source })
            })
            .collect::<Result<HashMap<&'static str, Value>, _>>()?;

        let registry = Registry::new()
            .extend(
                documents
                    .iter()
                    .map(|(path, value)| (format!("{SCHEMA_BASE_URI}{path}"), value)),
            )?
            .prepare()?;
        let options = jsonschema::draft202012::options()
            .offline()
            .with_registry(&registry)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false);
        let compile = |path: &str| -> Result<Validator, SchemaError> {
            let (&path, schema) = documents
                .get_key_value(path)
                .expect("every compiled path is one of FILES");
            options.build(schema).map_err(|e| SchemaError::Compile {
                path,
                message: e.to_string(),
            })
        };

        Ok(Schemas {
            envelope: compile("cloudevent.json")?,
            inbound: EventType::ALL
                .iter()
                .map(|&t| compile(&inbound_schema_path(t)))
                .collect::<Result<_, _>>()?,
            state: compile("outbound/household.state.json")?,
            alerts: ALERT_KINDS
                .iter()
                .map(|&kind| compile(&alert_schema_path(kind)).map(|v| (kind, v)))
                .collect::<Result<_, _>>()?,
            output_envelope: compile("outbound/cloudevent.json")?,
        })
    }

    /// An inbound CloudEvents envelope (`cloudevent.json`). Only the envelope:
    /// `type` must be a non-empty string (whether it is one of the seven is the
    /// caller's `unknown_type` check) and `data` an object; check `data` itself
    /// with [`Schemas::validate_inbound`].
    pub fn validate_envelope(&self, envelope: &Value) -> Result<(), Violation> {
        first_violation(&self.envelope, envelope)
    }

    /// The `data` of an inbound event of `event_type`.
    pub fn validate_inbound(&self, event_type: EventType, data: &Value) -> Result<(), Violation> {
        let index = EventType::ALL
            .iter()
            .position(|&t| t == event_type)
            .expect("EventType::ALL lists every variant");
        first_violation(&self.inbound[index], data)
    }

    /// The `data` of a `dynzero.household.state` output.
    pub fn validate_state(&self, data: &Value) -> Result<(), Violation> {
        first_violation(&self.state, data)
    }

    /// The `data` of a `dynzero.alert.<kind>` output. A `kind` that is not one
    /// of [`ALERT_KINDS`] is reported at `/kind`.
    pub fn validate_alert(&self, kind: &str, data: &Value) -> Result<(), Violation> {
        match self.alerts.get(kind) {
            Some(validator) => first_violation(validator, data),
            None => Err(Violation {
                pointer: "/kind".to_owned(),
                message: format!("{kind:?} is not an alert kind"),
            }),
        }
    }

    /// A whole output message (`outbound/cloudevent.json`), including its
    /// `data` against the schema named by `type`; pointers then start with
    /// `/data` for a fault inside the payload.
    pub fn validate_output_envelope(&self, envelope: &Value) -> Result<(), Violation> {
        first_violation(&self.output_envelope, envelope)
    }
}

/// `Validator::validate` stops at the first error; keywords are compiled and
/// object members visited in a fixed order, so the same instance always gets
/// the same answer.
fn first_violation(validator: &Validator, instance: &Value) -> Result<(), Violation> {
    validator.validate(instance).map_err(|e| violation(&e))
}

fn violation(error: &ValidationError<'_>) -> Violation {
    let mut pointer = error.instance_path().as_str().to_owned();
    let property = match error.kind() {
        ValidationErrorKind::Required { property } => property.as_str(),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            unexpected.first().map(String::as_str)
        }
        _ => None,
    };
    if let Some(name) = property {
        pointer.push('/');
        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
    }
    Violation {
        pointer,
        message: error.masked().to_string(),
    }
}

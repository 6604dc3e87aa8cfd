//! `schemas/asyncapi.yaml`: valid AsyncAPI 3.0 (against the schema vendored
//! from `@asyncapi/specs`), every payload a `$ref` to the schemas the hub
//! validates with, and every channel and message one the code declares and
//! publishes — no more, no fewer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dynzero_contracts::event_type::EventType;
use dynzero_contracts::outbound::STATE_TYPE;
use dynzero_contracts::rejection::Reason;
use dynzero_contracts::schemas::{
    ALERT_KINDS, SCHEMA_BASE_URI, alert_schema_path, inbound_schema_path,
};
use dynzero_domain::alerts::AlertKind;
use serde_json::Value;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn asyncapi() -> Value {
    serde_yaml_ng::from_str(&read("schemas/asyncapi.yaml"))
        .unwrap_or_else(|e| panic!("schemas/asyncapi.yaml is not YAML: {e}"))
}

fn object<'a>(value: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a mapping"))
}

/// Follows a local `$ref` (`#/a/b`) within the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => doc
            .pointer(&r[1..])
            .unwrap_or_else(|| panic!("$ref {r} points at nothing")),
        _ => value,
    }
}

#[test]
fn asyncapi_document_is_valid_asyncapi_3() {
    let schema: Value = serde_json::from_str(&read("schemas/vendor/asyncapi/asyncapi-3.0.0.json"))
        .expect("the vendored AsyncAPI schema is JSON");
    let validator =
        jsonschema::draft7::new(&schema).expect("the vendored AsyncAPI schema compiles");
    let doc = asyncapi();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not AsyncAPI 3.0.0:\n{}",
        errors.join("\n")
    );

    // The check has teeth: a wrong action is refused.
    let mut broken = doc.clone();
    broken["operations"]["consumeInbound"]["action"] = "publish".into();
    assert!(!validator.is_valid(&broken));
}

/// Every `$ref` to a file names a schema in `schemas/` whose `$id` matches its path.
#[test]
fn every_file_reference_is_a_schema_of_the_hub() {
    let doc = asyncapi();
    let mut files = BTreeSet::new();
    collect_file_refs(&doc, &mut files);
    assert!(!files.is_empty());
    for file in &files {
        let path = file.strip_prefix("./").unwrap_or(file);
        let schema: Value = serde_json::from_str(&read(&format!("schemas/{path}")))
            .unwrap_or_else(|e| panic!("schemas/{path} is not JSON: {e}"));
        assert_eq!(
            schema["$id"],
            format!("{SCHEMA_BASE_URI}{path}"),
            "$id of schemas/{path}"
        );
    }
}

fn collect_file_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) if !r.starts_with('#') => {
                        out.insert(r.to_owned());
                    }
                    _ => collect_file_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_file_refs(v, out)),
        _ => {}
    }
}

/// Every message: its payload is a `$ref` to an envelope whose `data` is the
/// schema the hub validates that type with.
#[test]
fn every_payload_is_a_reference_to_the_hubs_schema_of_its_type() {
    let doc = asyncapi();
    for (name, message) in object(&doc["components"]["messages"], "components.messages") {
        let payload = &message["payload"];
        assert!(
            payload.get("$ref").is_some(),
            "message {name}: the payload is not a $ref"
        );
        let event_type = message["name"].as_str().expect("a message name");
        let envelope = resolve(&doc, payload);
        let expected_data = if let Some(t) = EventType::parse(event_type) {
            Some(inbound_schema_path(t))
        } else if event_type == STATE_TYPE {
            Some("outbound/household.state.json".to_owned())
        } else {
            event_type
                .strip_prefix("dynzero.alert.")
                .map(alert_schema_path)
        };
        let Some(expected_data) = expected_data else {
            assert_eq!(event_type, "rejected", "message {name} is of no known type");
            continue;
        };
        let parts = envelope["allOf"].as_array().expect("an envelope allOf");
        assert_eq!(parts[1]["properties"]["type"]["const"], event_type);
        assert_eq!(
            parts[1]["properties"]["data"]["$ref"],
            format!("./{expected_data}"),
            "message {name}: data schema"
        );
        assert_eq!(
            message["bindings"]["amqp"]["messageType"], event_type,
            "message {name}: AMQP type"
        );
    }
}

/// The names of every message the hub takes in or publishes.
fn code_message_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = EventType::ALL.iter().map(|t| t.to_string()).collect();
    names.insert(STATE_TYPE.to_owned());
    for kind in AlertKind::ALL {
        names.insert(format!("dynzero.alert.{}", kind.as_str()));
    }
    names.insert("rejected".to_owned());
    names
}

#[test]
fn messages_are_exactly_those_the_code_consumes_and_publishes() {
    let doc = asyncapi();
    let names: BTreeSet<String> = object(&doc["components"]["messages"], "messages")
        .values()
        .map(|m| m["name"].as_str().expect("a message name").to_owned())
        .collect();
    assert_eq!(names, code_message_names());
    let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds, ALERT_KINDS,
        "domain and contracts agree on the kinds"
    );

    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let headers = resolve(&doc, &doc["components"]["messages"]["rejected"]["headers"]);
    let documented: Vec<&str> = headers["properties"]["x-dynzero-reason"]["enum"]
        .as_array()
        .expect("the reasons")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        documented, reasons,
        "rejection reasons, in the contract's order"
    );
}

/// The default configuration's `[amqp]` names and the notifier's queue.
struct Names {
    exchanges: BTreeSet<String>,
    queues: BTreeSet<String>,
    inbound: String,
    households: String,
    alerts: String,
}

fn configured_names() -> Names {
    let config: toml::Value = read("config/default.toml")
        .parse::<toml::Table>()
        .map(toml::Value::Table)
        .expect("config/default.toml is TOML");
    let notifier: dynzero_notifier::settings::Settings =
        config.clone().try_into().expect("the notifier's settings");
    let amqp = &config["amqp"];
    let name = |key: &str| {
        amqp[key]
            .as_str()
            .unwrap_or_else(|| panic!("amqp.{key}"))
            .to_owned()
    };
    Names {
        exchanges: [
            "inbound_exchange",
            "households_exchange",
            "alerts_exchange",
            "rejected_exchange",
        ]
        .into_iter()
        .map(name)
        .collect(),
        queues: [name("queue"), name("rejected_queue"), notifier.queue()].into(),
        inbound: name("inbound_exchange"),
        households: name("households_exchange"),
        alerts: name("alerts_exchange"),
    }
}

#[test]
fn channels_are_exactly_the_exchanges_queues_and_routing_keys_the_code_uses() {
    let doc = asyncapi();
    let names = configured_names();
    let mut exchanges = BTreeSet::new();
    let mut queues = BTreeSet::new();
    let addresses = |exchange: &str| -> BTreeSet<String> {
        object(&doc["channels"], "channels")
            .values()
            .filter(|c| c["bindings"]["amqp"]["exchange"]["name"] == exchange)
            .map(|c| c["address"].as_str().expect("an address").to_owned())
            .collect()
    };
    let inbound = addresses(&names.inbound);
    let households = addresses(&names.households);
    let alerts = addresses(&names.alerts);
    for channel in object(&doc["channels"], "channels").values() {
        let amqp = &channel["bindings"]["amqp"];
        match amqp["is"].as_str() {
            Some("routingKey") => exchanges.insert(amqp["exchange"]["name"].to_string()),
            Some("queue") => {
                assert_eq!(channel["address"], amqp["queue"]["name"]);
                queues.insert(amqp["queue"]["name"].to_string())
            }
            other => panic!("a channel is neither routing key nor queue: {other:?}"),
        };
    }
    let quoted = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter().map(|n| format!("{n:?}")).collect()
    };
    assert_eq!(exchanges, quoted(&names.exchanges));
    assert_eq!(queues, quoted(&names.queues));

    let types: BTreeSet<String> = EventType::ALL.iter().map(|t| t.to_string()).collect();
    assert_eq!(inbound, types, "routing keys on the inbound exchange");
    assert_eq!(households, BTreeSet::from(["state.{division}".to_owned()]));
    let kinds: BTreeSet<String> = AlertKind::ALL
        .iter()
        .map(|k| format!("{}.{{division}}", k.as_str()))
        .collect();
    assert_eq!(alerts, kinds, "routing keys on the alerts exchange");
}

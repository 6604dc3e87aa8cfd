//! The envelope's bounds: `id`, `source` and `type` are each limited in length,
//! so that nothing echoed from them (rejection details, logs) can grow large.

use chrono::NaiveDate;
use dynzero_contracts::inbound::{
    self, DEFAULT_MAX_BODY_BYTES, MAX_ID_CHARS, MAX_SOURCE_CHARS, MAX_TYPE_CHARS,
};
use dynzero_contracts::rejection::Reason;
use serde_json::{Value, json};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

/// A valid `household.registered` event with no members.
fn event() -> Value {
    json!({
        "specversion": "1.0", "id": "reg-1", "source": "civil-affairs/anshan",
        "type": "household.registered", "time": "2026-11-01T08:00:00+08:00",
        "data": {
            "household_id": "H-1", "division_code": "210302001002",
            "effective_date": "2026-01-01", "members": []
        }
    })
}

fn reason_with(attribute: &str, value: String) -> Option<(Reason, String)> {
    let mut e = event();
    e[attribute] = Value::String(value);
    let body = e.to_string();
    inbound::parse(body.as_bytes(), DEFAULT_MAX_BODY_BYTES, today())
        .err()
        .map(|r| (r.reason, r.detail))
}

#[test]
fn the_base_event_is_valid() {
    assert_eq!(reason_with("id", "reg-1".into()), None);
}

#[test]
fn id_source_and_type_are_accepted_up_to_their_bound_in_characters() {
    // Multi-byte characters: the bound counts characters, not bytes.
    assert_eq!(reason_with("id", "编".repeat(MAX_ID_CHARS)), None);
    assert_eq!(reason_with("source", "源".repeat(MAX_SOURCE_CHARS)), None);
    let (reason, _) = reason_with("type", "t".repeat(MAX_TYPE_CHARS)).expect("rejected");
    assert_eq!(
        reason,
        Reason::UnknownType,
        "a long but bounded type is only unknown"
    );
}

#[test]
fn one_character_over_the_bound_is_envelope_invalid_at_that_attribute() {
    for (attribute, max) in [
        ("id", MAX_ID_CHARS),
        ("source", MAX_SOURCE_CHARS),
        ("type", MAX_TYPE_CHARS),
    ] {
        let (reason, detail) = reason_with(attribute, "é".repeat(max + 1)).expect("rejected");
        assert_eq!(reason, Reason::EnvelopeInvalid, "{attribute}");
        assert!(detail.starts_with(&format!("/{attribute}:")), "{detail}");
        assert!(detail.len() < 100, "the detail does not echo the value");
    }
}

#[test]
fn a_300_kb_type_or_source_gives_a_short_detail() {
    for attribute in ["type", "source"] {
        let (reason, detail) = reason_with(attribute, "x".repeat(300 * 1024)).expect("rejected");
        assert_eq!(reason, Reason::EnvelopeInvalid);
        assert!(detail.len() < 100, "{attribute}: {} bytes", detail.len());
    }
}

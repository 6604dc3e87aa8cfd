//! The published schemas: well-formed, self-consistent, and strict exactly where
//! the contract is (docs/contract.md sections 2–4 and 6).

use std::collections::BTreeSet;

use dynzero_contracts::{
    event_type::EventType,
    schemas::{ALERT_KINDS, SCHEMA_BASE_URI, Schemas, Violation, all_schema_files},
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn schemas() -> &'static Schemas {
    Schemas::get()
}

fn file(path: &str) -> Value {
    let (_, text) = all_schema_files()
        .into_iter()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("no schema file {path}"));
    serde_json::from_str(text).unwrap()
}

fn example(path: &str, index: usize) -> Value {
    file(path)["examples"][index].clone()
}

fn registered() -> Value {
    example("inbound/household.registered.json", 0)
}

fn layoff() -> Value {
    example("inbound/layoff.notice.json", 0)
}

fn inbound(t: EventType, data: &Value) -> Result<(), Violation> {
    schemas().validate_inbound(t, data)
}

fn rejected_at(result: Result<(), Violation>, pointer: &str) -> Violation {
    let violation = result.expect_err("should be rejected");
    assert_eq!(violation.pointer, pointer, "{violation}");
    violation
}

/// Validate any example against the schema it is an example of, through the
/// public API (and, for `defs.json`, through a reference to the definition).
fn validate_example(path: &str, def: Option<&str>, value: &Value) -> Result<(), String> {
    let s = schemas();
    let result = match (path, def) {
        ("defs.json", Some(def)) => return validate_def(def, value),
        ("cloudevent.json", None) => s.validate_envelope(value),
        ("outbound/household.state.json", None) => s.validate_state(value),
        ("outbound/cloudevent.json", None) => s.validate_output_envelope(value),
        (p, None) if p.starts_with("inbound/") => {
            let name = p.trim_start_matches("inbound/").trim_end_matches(".json");
            s.validate_inbound(
                EventType::parse(name).expect("inbound file of a known type"),
                value,
            )
        }
        (p, None) if p.starts_with("outbound/alert.") => {
            let kind = p
                .trim_start_matches("outbound/alert.")
                .trim_end_matches(".json");
            s.validate_alert(kind, value)
        }
        _ => panic!("no validator for {path} {def:?}"),
    };
    result.map_err(|v| v.to_string())
}

fn validate_def(def: &str, value: &Value) -> Result<(), String> {
    let documents: Vec<(String, Value)> = all_schema_files()
        .into_iter()
        .map(|(p, t)| {
            (
                format!("{SCHEMA_BASE_URI}{p}"),
                serde_json::from_str(t).unwrap(),
            )
        })
        .collect();
    let registry = jsonschema::Registry::new()
        .extend(documents.iter().map(|(u, v)| (u.as_str(), v)))
        .unwrap()
        .prepare()
        .unwrap();
    let validator = jsonschema::draft202012::options()
        .offline()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&json!({ "$ref": format!("{SCHEMA_BASE_URI}defs.json#/$defs/{def}") }))
        .unwrap();
    validator.validate(value).map_err(|e| e.to_string())
}

// ------------------------------------------------------------ well-formedness

#[test]
fn the_embedded_schemas_compile() {
    Schemas::build().expect("every embedded schema compiles offline");
}

#[test]
fn every_schema_file_is_valid_against_the_2020_12_meta_schema() {
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{path}"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{path}: {e} at {}", e.instance_path().as_str());
        }
    }
}

#[test]
fn every_schema_file_has_id_title_description_and_one_to_three_examples() {
    let files = all_schema_files();
    assert_eq!(files.len(), 20);
    for (path, text) in files {
        let schema: Value = serde_json::from_str(text).unwrap();
        assert_eq!(schema["$id"], format!("{SCHEMA_BASE_URI}{path}"), "{path}");
        assert!(
            schema["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{path}"
        );
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{path}"
        );
        if path == "defs.json" {
            continue;
        }
        let examples = schema["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}"));
        assert!((1..=3).contains(&examples.len()), "{path}");
    }
}

/// Walks every subschema, calling `f(location, schema)`.
fn walk(location: &str, schema: &Value, f: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
    let Some(object) = schema.as_object() else {
        return;
    };
    f(location, object);
    for (key, value) in object {
        match key.as_str() {
            "properties" | "$defs" => {
                for (name, sub) in value.as_object().unwrap() {
                    walk(&format!("{location}/{key}/{name}"), sub, f);
                }
            }
            "items" | "if" | "then" | "else" | "not" => {
                walk(&format!("{location}/{key}"), value, f)
            }
            "allOf" | "anyOf" | "oneOf" => {
                for (i, sub) in value.as_array().unwrap().iter().enumerate() {
                    walk(&format!("{location}/{key}/{i}"), sub, f);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_property_and_definition_has_a_description() {
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        walk("", &schema, &mut |location, object| {
            // Conditions (if/then) restate declared properties; they need no second description.
            if location.contains("/if") || location.contains("/then") {
                return;
            }
            for key in ["properties", "$defs"] {
                for (name, sub) in object
                    .get(key)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        sub.get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| !d.is_empty()),
                        "{path}#{location}/{key}/{name} has no description"
                    );
                }
            }
        });
    }
}

#[test]
fn schemas_use_only_draft_2020_12_keywords() {
    let known: BTreeSet<&str> = [
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "title",
        "description",
        "examples",
        "default",
        "type",
        "enum",
        "const",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "multipleOf",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "if",
        "then",
        "else",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    ]
    .into();
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        walk("", &schema, &mut |location, object| {
            for key in object.keys() {
                assert!(
                    known.contains(key.as_str()),
                    "{path}#{location}: unexpected keyword {key}"
                );
            }
        });
    }
}

#[test]
fn identifiers_are_plain_strings_checked_in_code() {
    // A pattern here would turn an invalid_identifier into a schema_invalid.
    let defs = file("defs.json");
    for def in ["idNumber", "uscc", "divisionCode"] {
        let mut keys: Vec<&str> = defs["$defs"][def]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["description", "examples", "type"], "{def}");
        assert_eq!(defs["$defs"][def]["type"], "string");
    }
    let identifiers = [
        "id_number",
        "applicant_id_number",
        "uscc",
        "division_code",
        "employer_uscc",
    ];
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        walk("", &schema, &mut |location, object| {
            let Some(properties) = object.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (name, sub) in properties {
                if identifiers.contains(&name.as_str()) || name == "covered_members" {
                    for banned in ["pattern", "minLength", "maxLength", "format"] {
                        assert!(
                            sub.get(banned).is_none(),
                            "{path}#{location}/{name} has {banned}"
                        );
                    }
                }
            }
        });
    }
}

// ------------------------------------------------------------ examples

/// GB 11643-1999 check character.
fn id_number_is_valid(s: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let bytes = s.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize] == bytes[17] && province_is_real(&s[..2])
}

/// GB 32100-2015 check character.
fn uscc_is_valid(s: &str) -> bool {
    const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let values: Option<Vec<usize>> = s.chars().map(|c| CHARSET.find(c)).collect();
    let Some(values) = values.filter(|v| v.len() == 18) else {
        return false;
    };
    let sum: usize = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    (31 - sum % 31) % 31 == values[17]
}

fn province_is_real(code: &str) -> bool {
    let n: u8 = code.parse().unwrap_or(0);
    matches!(n, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82)
}

fn division_code_is_valid(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) && province_is_real(&s[..2])
}

/// Checks every identifier inside an example by its field name.
fn check_identifiers(location: &str, value: &Value) {
    match value {
        Value::Object(object) => {
            for (key, v) in object {
                let here = format!("{location}/{key}");
                match (key.as_str(), v) {
                    ("id_number" | "applicant_id_number", Value::String(s)) => {
                        assert!(id_number_is_valid(s), "{here}: {s}");
                    }
                    ("uscc" | "employer_uscc", Value::String(s)) => {
                        assert!(uscc_is_valid(s), "{here}: {s}")
                    }
                    ("division_code", Value::String(s)) => {
                        assert!(division_code_is_valid(s), "{here}: {s}")
                    }
                    ("covered_members", Value::Array(ids)) => {
                        for id in ids {
                            assert!(id_number_is_valid(id.as_str().unwrap()), "{here}: {id}");
                        }
                    }
                    _ => check_identifiers(&here, v),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_identifiers(&format!("{location}/{i}"), v);
            }
        }
        _ => {}
    }
}

#[test]
fn the_check_helpers_agree_with_published_reference_numbers() {
    assert!(id_number_is_valid("11010519491231002X"));
    assert!(!id_number_is_valid("110105194912310021"));
    assert!(uscc_is_valid("91350100M000100Y43"));
    assert!(!uscc_is_valid("91350100M000100Y44"));
}

#[test]
fn every_example_validates_against_its_own_schema() {
    let mut count = 0;
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        for example in schema["examples"].as_array().into_iter().flatten() {
            validate_example(path, None, example).unwrap_or_else(|e| panic!("{path}: {e}"));
            count += 1;
        }
        for (name, def) in schema["$defs"].as_object().into_iter().flatten() {
            for example in def["examples"].as_array().into_iter().flatten() {
                validate_example(path, Some(name), example)
                    .unwrap_or_else(|e| panic!("{path}#{name}: {e}"));
                count += 1;
            }
        }
    }
    assert!(count >= 40, "only {count} examples");
}

#[test]
fn every_example_carries_valid_identifiers() {
    for (path, text) in all_schema_files() {
        let schema: Value = serde_json::from_str(text).unwrap();
        check_identifiers(&format!("{path}#/examples"), &schema["examples"]);
        for (name, def) in schema["$defs"].as_object().into_iter().flatten() {
            check_identifiers(&format!("{path}#/$defs/{name}/examples"), &def["examples"]);
        }
    }
    // The $defs examples of the identifier types themselves are bare strings.
    let defs = file("defs.json");
    assert!(id_number_is_valid(
        defs["$defs"]["idNumber"]["examples"][0].as_str().unwrap()
    ));
    assert!(uscc_is_valid(
        defs["$defs"]["uscc"]["examples"][0].as_str().unwrap()
    ));
    assert!(division_code_is_valid(
        defs["$defs"]["divisionCode"]["examples"][0]
            .as_str()
            .unwrap()
    ));
}

#[test]
fn the_enums_match_the_contract() {
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "inbound/household.registered.json",
            "/properties/members/items/properties/relation",
            &["head", "spouse", "child", "parent", "sibling", "other"],
        ),
        (
            "inbound/household.registered.json",
            "/properties/members/items/properties/status",
            &["none", "student", "retired", "military", "disabled"],
        ),
        (
            "inbound/household.visited.json",
            "/properties/findings/items/properties/employment",
            &["employed", "flexible", "unemployed"],
        ),
        (
            "inbound/layoff.notice.json",
            "/properties/stage",
            &["planned", "effective", "withdrawn"],
        ),
        (
            "inbound/employment.started.json",
            "/properties/kind",
            &["formal", "public_welfare", "flexible"],
        ),
        (
            "inbound/employment.ended.json",
            "/properties/reason",
            &[
                "resigned",
                "contract_expired",
                "dismissed",
                "retired",
                "other",
            ],
        ),
        (
            "inbound/subsidy.changed.json",
            "/properties/change",
            &["granted", "adjusted", "revoked"],
        ),
    ];
    for (path, pointer, values) in cases {
        assert_eq!(
            file(path).pointer(&format!("{pointer}/enum")).unwrap(),
            &json!(values),
            "{path}{pointer}"
        );
    }
    let state = file("outbound/household.state.json");
    assert_eq!(
        state["properties"]["status"]["enum"],
        json!(["zero_employment", "employed", "no_labour_force"])
    );
    assert_eq!(
        state["properties"]["members"]["items"]["properties"]["sex"]["enum"],
        json!(["male", "female"])
    );
    assert_eq!(
        state["properties"]["members"]["items"]["properties"]["employment_kind"]["enum"],
        json!(["formal", "public_welfare", "flexible", null])
    );
}

#[test]
fn registration_defaults_are_published() {
    let member =
        &file("inbound/household.registered.json")["properties"]["members"]["items"]["properties"];
    assert_eq!(member["able_to_work"]["default"], true);
    assert_eq!(member["seeking_work"]["default"], true);
    assert_eq!(member["status"]["default"], "none");
}

// ------------------------------------------------------------ negative cases

#[test]
fn unknown_extra_field_is_rejected() {
    let mut data = registered();
    data["nickname"] = json!("老李家");
    let v = rejected_at(inbound(EventType::HouseholdRegistered, &data), "/nickname");
    assert!(v.message.contains("nickname"), "{v}");

    let mut data = registered();
    data["members"][1]["phone"] = json!("13800000000");
    rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/members/1/phone",
    );

    let mut data = layoff();
    data["enterprise"]["legal_person"] = json!("张三");
    rejected_at(
        inbound(EventType::LayoffNotice, &data),
        "/enterprise/legal_person",
    );
}

#[test]
fn every_closed_object_rejects_an_extra_field() {
    for (path, text) in all_schema_files() {
        if path.ends_with("cloudevent.json") || path == "defs.json" {
            continue;
        }
        let schema: Value = serde_json::from_str(text).unwrap();
        let mut data = schema["examples"][0].clone();
        data["unexpected"] = json!(1);
        let result = validate_example(path, None, &data);
        assert!(result.is_err(), "{path} accepted an extra field");
    }
}

#[test]
fn missing_required_field_is_reported_at_that_field() {
    let mut data = registered();
    data["members"][0].as_object_mut().unwrap().remove("name");
    let v = rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/members/0/name",
    );
    assert!(v.message.contains("required"), "{v}");
}

#[test]
fn date_2025_02_30_is_rejected_as_a_date() {
    let mut data = registered();
    data["effective_date"] = json!("2025-02-30");
    let v = rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/effective_date",
    );
    assert!(v.message.contains("date"), "{v}");

    for bad in [
        "2025-13-01",
        "2025-3-1",
        "20250301",
        "2025-03-01T00:00:00+08:00",
        "2023-02-29",
    ] {
        data["effective_date"] = json!(bad);
        rejected_at(
            inbound(EventType::HouseholdRegistered, &data),
            "/effective_date",
        );
    }
    data["effective_date"] = json!("2024-02-29");
    inbound(EventType::HouseholdRegistered, &data).unwrap();
}

#[test]
fn timestamps_without_offset_are_rejected() {
    let mut envelope = example("cloudevent.json", 0);
    envelope["time"] = json!("2025-03-01T10:15:00");
    rejected_at(schemas().validate_envelope(&envelope), "/time");
    envelope["time"] = json!("2025-03-01T10:15:00.123Z");
    schemas().validate_envelope(&envelope).unwrap();
}

fn with_wage(text: &str) -> Value {
    let mut data = example("inbound/employment.started.json", 0);
    data["monthly_wage"] = serde_json::from_str(text).unwrap();
    data
}

#[test]
fn money_100_101_is_rejected_and_100_10_is_accepted() {
    let v = rejected_at(
        inbound(EventType::EmploymentStarted, &with_wage("100.101")),
        "/monthly_wage",
    );
    assert!(v.message.contains("multiple"), "{v}");
    inbound(EventType::EmploymentStarted, &with_wage("100.10")).unwrap();
}

#[test]
fn money_with_two_decimals_by_value_is_accepted() {
    for ok in [
        "0",
        "0.0",
        "0.07",
        "0.1",
        "19.99",
        "2100",
        "2100.00",
        "1234567.89",
        "4.35",
        "0.29",
        "99999999999.99",
        "1e2",
    ] {
        inbound(EventType::EmploymentStarted, &with_wage(ok))
            .unwrap_or_else(|v| panic!("{ok}: {v}"));
    }
    for bad in [
        "-0.01",
        "-1",
        "0.001",
        "0.005",
        "19.999",
        "1234567.891",
        "0.07000001",
        "1e-3",
    ] {
        assert!(
            inbound(EventType::EmploymentStarted, &with_wage(bad)).is_err(),
            "{bad} accepted"
        );
    }
    for bad in ["\"2100\"", "null", "true"] {
        rejected_at(
            inbound(EventType::EmploymentStarted, &with_wage(bad)),
            "/monthly_wage",
        );
    }
}

#[test]
fn a_revoked_subsidy_must_have_amount_zero() {
    let mut data = example("inbound/subsidy.changed.json", 1);
    data["monthly_amount"] = json!(0.0);
    inbound(EventType::SubsidyChanged, &data).unwrap();
    data["monthly_amount"] = json!(1860.5);
    rejected_at(inbound(EventType::SubsidyChanged, &data), "/monthly_amount");
}

proptest! {
    #[test]
    fn any_amount_in_whole_fen_is_accepted(fen in 0u64..100_000_000_000_000) {
        let text = format!("{}.{:02}", fen / 100, fen % 100);
        prop_assert!(inbound(EventType::EmploymentStarted, &with_wage(&text)).is_ok(), "{}", text);
    }

    #[test]
    fn any_amount_with_a_third_decimal_is_rejected(milli in 0u64..10_000_000_000_000) {
        prop_assume!(milli % 10 != 0);
        let text = format!("{}.{:03}", milli / 1000, milli % 1000);
        prop_assert!(inbound(EventType::EmploymentStarted, &with_wage(&text)).is_err(), "{}", text);
    }
}

#[test]
fn non_string_id_number_is_rejected() {
    let mut data = registered();
    data["members"][0]["id_number"] = json!(210302198503150014_u64);
    let v = rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/members/0/id_number",
    );
    assert!(v.message.contains("string"), "{v}");
    assert!(
        !v.message.contains("210302198503150014"),
        "the message must not carry the id number: {v}"
    );

    let mut data = example("inbound/subsidy.changed.json", 0);
    data["covered_members"][1] = json!(null);
    rejected_at(
        inbound(EventType::SubsidyChanged, &data),
        "/covered_members/1",
    );

    let mut data = layoff();
    data["enterprise"]["uscc"] = json!(91210300);
    rejected_at(inbound(EventType::LayoffNotice, &data), "/enterprise/uscc");

    let mut data = registered();
    data["division_code"] = json!(210302001002_u64);
    rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/division_code",
    );
}

#[test]
fn id_number_with_a_bad_check_character_is_accepted_by_the_schema() {
    // Identifiers are checked in code, so that the failure is invalid_identifier.
    let mut data = registered();
    data["members"][0]["id_number"] = json!("210302198503150015");
    assert!(!id_number_is_valid("210302198503150015"));
    inbound(EventType::HouseholdRegistered, &data).unwrap();
    for anything in ["", "x", "21030219850315001", "210302850315001"] {
        data["members"][0]["id_number"] = json!(anything);
        inbound(EventType::HouseholdRegistered, &data).unwrap();
    }
    data["division_code"] = json!("99ABC");
    inbound(EventType::HouseholdRegistered, &data).unwrap();

    let mut data = layoff();
    data["enterprise"]["uscc"] = json!("91210300ma0ybk2n3z");
    inbound(EventType::LayoffNotice, &data).unwrap();
}

#[test]
fn household_id_with_a_space_is_rejected() {
    let mut data = registered();
    data["household_id"] = json!("hh 0173");
    let v = rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/household_id",
    );
    assert!(v.message.contains("match"), "{v}");
    for bad in ["", "户0173", "hh/0173", &"a".repeat(65)] {
        data["household_id"] = json!(bad);
        rejected_at(
            inbound(EventType::HouseholdRegistered, &data),
            "/household_id",
        );
    }
    for ok in ["a", "hh:210302001002.0173_A-9", &"a".repeat(64)] {
        data["household_id"] = json!(ok);
        inbound(EventType::HouseholdRegistered, &data).unwrap();
    }
    let mut data = layoff();
    data["notice_id"] = json!("CY 7");
    rejected_at(inbound(EventType::LayoffNotice, &data), "/notice_id");
}

fn member(i: usize) -> Value {
    json!({ "id_number": format!("2103021985031{i:05}"), "name": "成员", "relation": "other" })
}

#[test]
fn members_31_are_rejected() {
    let mut data = registered();
    data["members"] = (0..31).map(member).collect();
    let v = rejected_at(inbound(EventType::HouseholdRegistered, &data), "/members");
    assert!(v.message.contains("30"), "{v}");
    data["members"] = (0..30).map(member).collect();
    inbound(EventType::HouseholdRegistered, &data).unwrap();
    data["members"] = json!([]);
    inbound(EventType::HouseholdRegistered, &data).unwrap();
}

#[test]
fn findings_31_are_rejected() {
    let mut data = example("inbound/household.visited.json", 0);
    let finding = data["findings"][0].clone();
    data["findings"] = Value::Array(vec![finding; 31]);
    rejected_at(inbound(EventType::HouseholdVisited, &data), "/findings");
}

#[test]
fn employees_0_are_rejected() {
    let mut data = layoff();
    data["employees"] = json!([]);
    rejected_at(inbound(EventType::LayoffNotice, &data), "/employees");
    let employee = json!({ "id_number": "210302198503150014", "name": "李志刚" });
    data["employees"] = Value::Array(vec![employee.clone(); 10_000]);
    inbound(EventType::LayoffNotice, &data).unwrap();
    data["employees"] = Value::Array(vec![employee; 10_001]);
    rejected_at(inbound(EventType::LayoffNotice, &data), "/employees");
}

#[test]
fn integers_are_integers_with_their_minimum() {
    let mut data = layoff();
    for (bad, _) in [
        (json!(0), "min"),
        (json!(12.5), "type"),
        (json!("180"), "type"),
    ] {
        data["enterprise"]["headcount"] = bad;
        rejected_at(
            inbound(EventType::LayoffNotice, &data),
            "/enterprise/headcount",
        );
    }
    let mut data = example("inbound/employment.started.json", 0);
    data["contract_months"] = json!(0);
    rejected_at(
        inbound(EventType::EmploymentStarted, &data),
        "/contract_months",
    );
    data["contract_months"] = json!(null);
    inbound(EventType::EmploymentStarted, &data).unwrap();
    data.as_object_mut().unwrap().remove("contract_months");
    rejected_at(
        inbound(EventType::EmploymentStarted, &data),
        "/contract_months",
    );
}

#[test]
fn optional_fields_may_be_absent() {
    let mut data = registered();
    data.as_object_mut().unwrap().remove("address");
    for m in data["members"].as_array_mut().unwrap() {
        let m = m.as_object_mut().unwrap();
        m.remove("able_to_work");
        m.remove("seeking_work");
        m.remove("status");
    }
    inbound(EventType::HouseholdRegistered, &data).unwrap();

    let mut posting = example("inbound/job.posting.json", 0);
    posting.as_object_mut().unwrap().remove("age_min");
    posting.as_object_mut().unwrap().remove("age_max");
    inbound(EventType::JobPosting, &posting).unwrap();

    let mut ended = example("inbound/employment.ended.json", 0);
    ended["employer"].as_object_mut().unwrap().remove("name");
    inbound(EventType::EmploymentEnded, &ended).unwrap();
    let mut started = example("inbound/employment.started.json", 0);
    started["employer"].as_object_mut().unwrap().remove("name");
    rejected_at(
        inbound(EventType::EmploymentStarted, &started),
        "/employer/name",
    );
}

/// (type, an example, the field's pointer, its allowed values)
fn enum_fields() -> Vec<(EventType, Value, &'static str, Vec<&'static str>)> {
    vec![
        (
            EventType::HouseholdRegistered,
            registered(),
            "/members/0/relation",
            vec!["head", "spouse", "child", "parent", "sibling", "other"],
        ),
        (
            EventType::HouseholdRegistered,
            registered(),
            "/members/1/status",
            vec!["none", "student", "retired", "military", "disabled"],
        ),
        (
            EventType::HouseholdVisited,
            example("inbound/household.visited.json", 0),
            "/findings/0/employment",
            vec!["employed", "flexible", "unemployed"],
        ),
        (
            EventType::LayoffNotice,
            layoff(),
            "/stage",
            vec!["planned", "effective", "withdrawn"],
        ),
        (
            EventType::EmploymentStarted,
            example("inbound/employment.started.json", 0),
            "/kind",
            vec!["formal", "public_welfare", "flexible"],
        ),
        (
            EventType::EmploymentEnded,
            example("inbound/employment.ended.json", 0),
            "/reason",
            vec![
                "resigned",
                "contract_expired",
                "dismissed",
                "retired",
                "other",
            ],
        ),
        (
            EventType::SubsidyChanged,
            example("inbound/subsidy.changed.json", 0),
            "/change",
            vec!["granted", "adjusted", "revoked"],
        ),
    ]
}

#[test]
fn each_enum_value_outside_the_list_is_rejected() {
    for (t, base, pointer, allowed) in enum_fields() {
        for bad in [
            json!("unknown"),
            json!(""),
            json!(allowed[0].to_uppercase()),
            json!(format!("{} ", allowed[0])),
            json!(1),
            json!(null),
        ] {
            let mut data = base.clone();
            *data
                .pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = bad.clone();
            rejected_at(inbound(t, &data), pointer);
        }
        for ok in allowed {
            let mut data = base.clone();
            *data.pointer_mut(pointer).unwrap() = json!(ok);
            if pointer == "/change" && ok == "revoked" {
                data["monthly_amount"] = json!(0);
            }
            inbound(t, &data).unwrap_or_else(|v| panic!("{t} {pointer}={ok}: {v}"));
        }
    }
    let mut state = example("outbound/household.state.json", 0);
    state["status"] = json!("unemployed");
    rejected_at(schemas().validate_state(&state), "/status");
    let mut state = example("outbound/household.state.json", 0);
    state["members"][0]["employment_kind"] = json!("informal");
    rejected_at(
        schemas().validate_state(&state),
        "/members/0/employment_kind",
    );
    state["members"][0]["employment_kind"] = json!(null);
    state["members"][0]["sex"] = json!("M");
    rejected_at(schemas().validate_state(&state), "/members/0/sex");
}

#[test]
fn the_pointer_of_a_violation_names_the_field() {
    let mut data = registered();
    data["members"][0]["relation"] = json!("cousin");
    let v = rejected_at(
        inbound(EventType::HouseholdRegistered, &data),
        "/members/0/relation",
    );
    assert_eq!(
        v.to_string(),
        format!("at /members/0/relation: {}", v.message)
    );
    assert!(
        v.message.contains("head"),
        "the message lists the allowed values: {v}"
    );
}

#[test]
fn the_first_violation_is_the_same_every_time() {
    let mut data = registered();
    data["household_id"] = json!("bad id");
    data["effective_date"] = json!("2025-02-30");
    data["members"][2]["relation"] = json!("cousin");
    data["zzz"] = json!(1);
    let first = inbound(EventType::HouseholdRegistered, &data).unwrap_err();
    let rebuilt = Schemas::build().unwrap();
    for _ in 0..20 {
        assert_eq!(
            inbound(EventType::HouseholdRegistered, &data).unwrap_err(),
            first
        );
        assert_eq!(
            rebuilt
                .validate_inbound(EventType::HouseholdRegistered, &data)
                .unwrap_err(),
            first
        );
    }
}

#[test]
fn a_field_name_with_a_slash_is_escaped_in_the_pointer() {
    let mut data = registered();
    data["a/b~c"] = json!(1);
    rejected_at(inbound(EventType::HouseholdRegistered, &data), "/a~1b~0c");
}

// ------------------------------------------------------------ envelopes

#[test]
fn the_inbound_envelope_needs_every_attribute() {
    let envelope = example("cloudevent.json", 0);
    for attribute in ["specversion", "id", "source", "type", "time", "data"] {
        let mut e = envelope.clone();
        e.as_object_mut().unwrap().remove(attribute);
        rejected_at(schemas().validate_envelope(&e), &format!("/{attribute}"));
    }
    let cases = [
        ("/specversion", json!("0.3")),
        ("/specversion", json!(1.0)),
        ("/id", json!("")),
        ("/id", json!("i".repeat(129))),
        ("/source", json!("")),
        ("/type", json!("")),
        ("/type", json!(7)),
        ("/time", json!("yesterday")),
        ("/data", json!([])),
        ("/data", json!("{}")),
        ("/data", json!(null)),
    ];
    for (pointer, value) in cases {
        let mut e = envelope.clone();
        *e.pointer_mut(pointer).unwrap() = value;
        rejected_at(schemas().validate_envelope(&e), pointer);
    }
}

#[test]
fn the_inbound_envelope_allows_extensions_and_any_type_name() {
    let mut envelope = example("cloudevent.json", 0);
    envelope["traceparent"] = json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    envelope["type"] = json!("household.deleted"); // unknown_type is decided by the caller
    envelope["id"] = json!("i".repeat(128));
    envelope["data"] = json!({});
    schemas().validate_envelope(&envelope).unwrap();
}

#[test]
fn the_output_envelope_checks_source_type_and_data() {
    let envelope = example("outbound/cloudevent.json", 0);
    let mut e = envelope.clone();
    e["source"] = json!("civil-affairs/anshan");
    rejected_at(schemas().validate_output_envelope(&e), "/source");
    let mut e = envelope.clone();
    e["type"] = json!("dynzero.alert.unknown");
    rejected_at(schemas().validate_output_envelope(&e), "/type");
    let mut e = envelope.clone();
    e["data"]["version"] = json!(0);
    rejected_at(schemas().validate_output_envelope(&e), "/data/version");
    let mut e = envelope.clone();
    e["traceparent"] = json!("x");
    rejected_at(schemas().validate_output_envelope(&e), "/traceparent");
    // An alert's data under the state type is caught.
    let mut e = example("outbound/cloudevent.json", 1);
    e["type"] = json!("dynzero.household.state");
    assert!(
        schemas()
            .validate_output_envelope(&e)
            .unwrap_err()
            .pointer
            .starts_with("/data")
    );
}

// ------------------------------------------------------------ outputs

#[test]
fn every_alert_kind_has_a_schema_whose_kind_is_const() {
    for kind in ALERT_KINDS {
        let schema = file(&format!("outbound/alert.{kind}.json"));
        assert_eq!(schema["properties"]["kind"]["const"], kind);
        let mut data = schema["examples"][0].clone();
        schemas().validate_alert(kind, &data).unwrap();
        data["kind"] = json!("something_else");
        rejected_at(schemas().validate_alert(kind, &data), "/kind");
    }
    let v = schemas().validate_alert("flood", &json!({})).unwrap_err();
    assert_eq!(v.pointer, "/kind");
}

#[test]
fn alert_fields_follow_the_contract() {
    let s = schemas();
    let mut data = example("outbound/alert.layoff_early_warning.json", 0);
    data["ratio"] = json!(1.2);
    rejected_at(s.validate_alert("layoff_early_warning", &data), "/ratio");

    let mut data = example("outbound/alert.visit_overdue.json", 1);
    data["last_visit"] = json!("2025-07-32");
    rejected_at(s.validate_alert("visit_overdue", &data), "/last_visit");

    let mut data = example("outbound/alert.zero_employment_new.json", 0);
    data["household"]["dibao"]["monthly_amount"] = json!(1860.555);
    rejected_at(
        s.validate_alert("zero_employment_new", &data),
        "/household/dibao/monthly_amount",
    );

    let mut data = example("outbound/alert.job_match.json", 0);
    data["posting"]
        .as_object_mut()
        .unwrap()
        .remove("posting_id");
    rejected_at(s.validate_alert("job_match", &data), "/posting/posting_id");

    let mut data = example("outbound/alert.placement_overdue.json", 0);
    data["raised_at"] = json!("2025-07-02 00:01:00");
    rejected_at(s.validate_alert("placement_overdue", &data), "/raised_at");
}

#[test]
fn state_nullables_take_null() {
    let mut state = example("outbound/household.state.json", 0);
    state["zero_since"] = json!(null);
    state["dibao"] = json!(null);
    state["members"][0]["employer_uscc"] = json!(null);
    state["caused_by"] = json!([]);
    schemas().validate_state(&state).unwrap();
    state["zero_since"] = json!("2025-06-31");
    rejected_at(schemas().validate_state(&state), "/zero_since");
}

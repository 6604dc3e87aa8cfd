//! Who a message body names, read without checking it: what a transaction
//! applying it locks, and a little more (a 低保 change's covered members are
//! named here, its applicant alone is locked; holding back on more than is
//! locked only costs a wait). The consumer schedules
//! batches by it before [`crate::inbound::parse`] runs; nothing here is
//! trusted, and a body that does not read names no one (it is rejected
//! later, by the checks that count).

use serde::Deserialize;

/// The people (id numbers) and households a body names, as written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Named {
    /// `data.household_id` of a registration or a visit: where its people
    /// live (a 低保 change or an employment fact names no household).
    pub household: Option<String>,
    /// Every id number in `data`: the person of an employment fact, the
    /// members of a registration, the findings of a visit, the employees of
    /// a layoff, the applicant and covered members of a 低保 change.
    pub people: Vec<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    household_id: Option<String>,
    id_number: Option<String>,
    applicant_id_number: Option<String>,
    #[serde(default)]
    members: Vec<Person>,
    #[serde(default)]
    findings: Vec<Person>,
    #[serde(default)]
    employees: Vec<Person>,
    #[serde(default)]
    covered_members: Vec<String>,
}

#[derive(Deserialize)]
struct Person {
    id_number: String,
}

/// Who `body` names; nobody when it does not read as an event whose `data`
/// has the inbound types' fields.
pub fn named(body: &[u8]) -> Named {
    let Ok(Envelope { data: Some(data) }) = serde_json::from_slice::<Envelope>(body) else {
        return Named::default();
    };
    let people = data
        .id_number
        .into_iter()
        .chain(data.applicant_id_number)
        .chain(data.members.into_iter().map(|p| p.id_number))
        .chain(data.findings.into_iter().map(|p| p.id_number))
        .chain(data.employees.into_iter().map(|p| p.id_number))
        .chain(data.covered_members)
        .collect();
    Named {
        household: data.household_id,
        people,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(data: serde_json::Value) -> Named {
        let body = json!({"specversion": "1.0", "type": "x", "data": data});
        named(body.to_string().as_bytes())
    }

    #[test]
    fn a_registration_names_its_household_and_members() {
        let n = of(json!({
            "household_id": "H-1", "division_code": "210302001001",
            "members": [{"id_number": "A", "name": "a"}, {"id_number": "B", "name": "b"}]
        }));
        assert_eq!(n.household.as_deref(), Some("H-1"));
        assert_eq!(n.people, ["A", "B"]);
    }

    #[test]
    fn a_visit_names_its_household_and_findings() {
        let n = of(
            json!({"household_id": "H-2", "findings": [{"id_number": "C", "employment": "employed"}]}),
        );
        assert_eq!(n.household.as_deref(), Some("H-2"));
        assert_eq!(n.people, ["C"]);
    }

    #[test]
    fn employment_layoff_and_subsidy_name_people_only() {
        assert_eq!(
            of(json!({"id_number": "D", "employer": {"uscc": "u"}})),
            Named {
                household: None,
                people: vec!["D".into()]
            }
        );
        assert_eq!(
            of(json!({"employees": [{"id_number": "E", "name": "e"}, {"id_number": "F", "name": "f"}]}))
                .people,
            ["E", "F"]
        );
        let subsidy = of(json!({"applicant_id_number": "G", "covered_members": ["G", "H"]}));
        assert_eq!(subsidy.household.as_deref(), None);
        assert_eq!(subsidy.people, ["G", "G", "H"]);
    }

    #[test]
    fn a_posting_names_no_one() {
        assert_eq!(
            of(json!({"posting_id": "P", "employer": {"uscc": "u"}, "openings": 3})),
            Named::default()
        );
    }

    #[test]
    fn what_does_not_read_names_no_one() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"data": 5}"#,
            br#"{"data": {"household_id": 7}}"#,
            br#"{"data": {"members": [{"name": "no id"}]}}"#,
        ] {
            assert_eq!(
                named(body),
                Named::default(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

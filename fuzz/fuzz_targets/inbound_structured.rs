//! Structure-aware: a valid event from the published schemas' examples, then
//! a few edits chosen by the fuzzer (a field set to another value, removed,
//! renamed or duplicated; a string nudged, as a check character is). Most
//! inputs get past the JSON and envelope checks, so the schema, identifier and
//! domain conversions are what gets exercised.

#![no_main]

use arbitrary::Arbitrary;
use chrono::NaiveDate;
use dynzero_contracts::inbound::{self, MAX_ID_CHARS, MAX_SOURCE_CHARS, MAX_TYPE_CHARS};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const SCHEMAS: [(&str, &str); 7] = [
    (
        "household.registered",
        include_str!("../../schemas/inbound/household.registered.json"),
    ),
    (
        "household.visited",
        include_str!("../../schemas/inbound/household.visited.json"),
    ),
    (
        "layoff.notice",
        include_str!("../../schemas/inbound/layoff.notice.json"),
    ),
    (
        "employment.started",
        include_str!("../../schemas/inbound/employment.started.json"),
    ),
    (
        "employment.ended",
        include_str!("../../schemas/inbound/employment.ended.json"),
    ),
    (
        "subsidy.changed",
        include_str!("../../schemas/inbound/subsidy.changed.json"),
    ),
    (
        "job.posting",
        include_str!("../../schemas/inbound/job.posting.json"),
    ),
];

/// Every example of every inbound schema, as a whole event.
fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = Vec::new();
        for (event_type, text) in SCHEMAS {
            let schema: Value = serde_json::from_str(text).expect("schemas are JSON");
            for (i, data) in schema["examples"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                seeds.push(json!({
                    "specversion": "1.0", "id": format!("fuzz-{i}"),
                    "source": "fuzz/seed", "type": event_type,
                    "time": "2026-11-01T08:00:00+08:00", "data": data,
                }));
            }
        }
        seeds
    })
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// A run of digits, as identifiers and dates are made of.
    Digits(u8, u64),
    EmptyObject,
    EmptyArray,
}

impl Leaf {
    fn value(self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(b),
            Leaf::Int(n) => json!(n),
            Leaf::Float(f) => json!(f),
            Leaf::Text(s) => Value::String(s),
            Leaf::Digits(len, seed) => {
                let digits: String = format!("{seed:020}")
                    .chars()
                    .cycle()
                    .take(usize::from(len % 40))
                    .collect();
                Value::String(digits)
            }
            Leaf::EmptyObject => Value::Object(Map::new()),
            Leaf::EmptyArray => Value::Array(Vec::new()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Nudge {
    /// Change the last character (a check character, a day of month).
    Last(char),
    Truncate(u8),
    Append(char),
    Lowercase,
    Repeat(u8),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(u16, Leaf),
    Remove(u16),
    Rename(u16, String),
    /// Copy one array element onto the end of its array.
    Duplicate(u16),
    Nudge(u16, Nudge),
}

#[derive(Arbitrary, Debug)]
struct Case {
    seed: u8,
    edits: Vec<Edit>,
}

/// JSON pointers of every value below the root, in document order.
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, &p, out);
            }
        }
        _ => {}
    }
}

fn split(pointer: &str) -> (&str, String) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointers start with /");
    (parent, last.replace("~1", "/").replace("~0", "~"))
}

fn apply(event: &mut Value, edit: Edit) {
    let mut all = Vec::new();
    pointers(event, "", &mut all);
    let pick = |i: u16| all.get(usize::from(i) % all.len().max(1)).cloned();
    match edit {
        Edit::Set(i, leaf) => {
            if let Some(v) = pick(i).and_then(|p| event.pointer_mut(&p)) {
                *v = leaf.value();
            }
        }
        Edit::Remove(i) | Edit::Rename(i, _) | Edit::Duplicate(i) if pick(i).is_none() => {}
        Edit::Remove(i) => {
            let p = pick(i).expect("checked");
            let (parent, last) = split(&p);
            match event.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(n) = last.parse::<usize>() {
                        a.remove(n);
                    }
                }
                _ => {}
            }
        }
        Edit::Rename(i, name) => {
            let p = pick(i).expect("checked");
            let (parent, last) = split(&p);
            if let Some(Value::Object(m)) = event.pointer_mut(parent)
                && let Some(v) = m.remove(&last)
            {
                m.insert(name, v);
            }
        }
        Edit::Duplicate(i) => {
            let p = pick(i).expect("checked");
            let (parent, last) = split(&p);
            if let Some(Value::Array(a)) = event.pointer_mut(parent)
                && let Ok(n) = last.parse::<usize>()
            {
                let copy = a[n].clone();
                a.push(copy);
            }
        }
        Edit::Nudge(i, nudge) => {
            if let Some(Value::String(s)) = pick(i).and_then(|p| event.pointer_mut(&p)) {
                match nudge {
                    Nudge::Last(c) => {
                        s.pop();
                        s.push(c);
                    }
                    Nudge::Truncate(n) => {
                        let keep = s.chars().count().saturating_sub(usize::from(n % 4) + 1);
                        *s = s.chars().take(keep).collect();
                    }
                    Nudge::Append(c) => s.push(c),
                    Nudge::Lowercase => *s = s.to_lowercase(),
                    Nudge::Repeat(n) => {
                        // Long enough to cross a bound, never large enough
                        // to measure the fuzzer's memory instead of the parser.
                        let times = usize::from(n % 64) + 1;
                        if s.len() * times <= 64 * 1024 {
                            *s = s.repeat(times);
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|case: Case| {
    let seeds = seeds();
    let mut event = seeds[usize::from(case.seed) % seeds.len()].clone();
    for edit in case.edits.into_iter().take(8) {
        apply(&mut event, edit);
    }
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("a real date");
    let compact = serde_json::to_vec(&event).expect("values serialise");
    let first = inbound::parse(&compact, inbound::DEFAULT_MAX_BODY_BYTES, today);
    if let Ok(message) = &first {
        assert!(message.id.chars().count() <= MAX_ID_CHARS);
        assert!(message.source.chars().count() <= MAX_SOURCE_CHARS);
        assert!(message.event_type.as_str().chars().count() <= MAX_TYPE_CHARS);
    }
    // White space never changes the verdict (nor, when accepted, the digest).
    let pretty = serde_json::to_vec_pretty(&event).expect("values serialise");
    if pretty.len() <= inbound::DEFAULT_MAX_BODY_BYTES {
        let second = inbound::parse(&pretty, inbound::DEFAULT_MAX_BODY_BYTES, today);
        match (&first, &second) {
            (Ok(a), Ok(b)) => assert_eq!(a.data_digest, b.data_digest),
            (Err(a), Err(b)) => assert_eq!(a.reason, b.reason, "{} / {}", a.detail, b.detail),
            _ => panic!("compact and pretty disagree: {first:?} / {second:?}"),
        }
    }
});

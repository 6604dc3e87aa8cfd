//! The CloudEvents distributed-tracing extension: `traceparent` and
//! `tracestate` as W3C Trace Context (docs/contract.md, "Tracing"). Read
//! from inbound events, carried on the outputs they cause. An attribute
//! that is not valid trace context is ignored, never a rejection: the
//! contract lets extension attributes through.

use serde_json::{Map, Value};

/// The most of `tracestate` that is carried on (W3C: 32 list members of at
/// most 256 characters; a propagator may cut at 512).
const MAX_TRACESTATE: usize = 512;

/// A valid W3C `traceparent`: `version-traceid-parentid-flags`, lower-case
/// hex, neither id all zeros, version not `ff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// `None` unless `s` is valid trace context. A version above `00` is
    /// read as `00` reads it (its first four fields), as W3C asks.
    pub fn parse(s: &str) -> Option<TraceParent> {
        let lower_hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let version = s.get(..2)?;
        if !lower_hex(version, 2) || version == "ff" {
            return None;
        }
        let known = if version == "00" {
            (s.len() == 55).then_some(s)?
        } else if s.len() == 55 || s.as_bytes().get(55) == Some(&b'-') {
            &s[..55]
        } else {
            return None;
        };
        let parts: Vec<&str> = known.split('-').collect();
        let [_, trace_id, parent_id, flags] = parts[..] else {
            return None;
        };
        let valid = lower_hex(trace_id, 32)
            && lower_hex(parent_id, 16)
            && lower_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0');
        valid.then(|| TraceParent(known.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 hex digits naming the trace.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }
}

/// The trace context an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: TraceParent,
    /// Vendors' entries, carried on unchanged; dropped if not printable
    /// ASCII or longer than 512 characters.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context of a CloudEvent's attributes; `None` without a valid
    /// `traceparent`.
    pub fn from_attributes(event: &Map<String, Value>) -> Option<TraceContext> {
        let traceparent = TraceParent::parse(event.get("traceparent")?.as_str()?)?;
        let tracestate = event
            .get("tracestate")
            .and_then(Value::as_str)
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= MAX_TRACESTATE
                    && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
            })
            .map(str::to_string);
        Some(TraceContext {
            traceparent,
            tracestate,
        })
    }

    /// Write the context as attributes of a CloudEvent.
    pub fn write_attributes(&self, event: &mut Value) {
        if let Value::Object(attributes) = event {
            attributes.insert("traceparent".into(), self.traceparent.as_str().into());
            if let Some(tracestate) = &self.tracestate {
                attributes.insert("tracestate".into(), tracestate.as_str().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let t = TraceParent::parse(VALID).unwrap();
        assert_eq!(t.as_str(), VALID);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let t = TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
            .unwrap();
        assert_eq!(
            t.as_str(),
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn invalid_traceparents_are_none() {
        for s in [
            "",
            "00",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(TraceParent::parse(s), None, "{s}");
        }
    }

    #[test]
    fn attributes_are_read_and_written() {
        let event = json!({"traceparent": VALID, "tracestate": "dz=1"});
        let context = TraceContext::from_attributes(event.as_object().unwrap()).unwrap();
        assert_eq!(context.tracestate.as_deref(), Some("dz=1"));
        let mut out = json!({"id": "x"});
        context.write_attributes(&mut out);
        assert_eq!(out["traceparent"], VALID);
        assert_eq!(out["tracestate"], "dz=1");
    }

    #[test]
    fn a_wrong_attribute_is_ignored() {
        for event in [
            json!({"traceparent": 7}),
            json!({"traceparent": "nope", "tracestate": "dz=1"}),
            json!({}),
        ] {
            assert_eq!(
                TraceContext::from_attributes(event.as_object().unwrap()),
                None
            );
        }
        let bad_state = json!({"traceparent": VALID, "tracestate": "é"});
        let context = TraceContext::from_attributes(bad_state.as_object().unwrap()).unwrap();
        assert_eq!(context.tracestate, None);
    }
}

//! One inbound message, as a source system would publish it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// One inbound message as a source system would publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub routing_key: String,
    pub body: Vec<u8>,
    /// False for the deliberately bad messages of the demo.
    pub valid: bool,
}

impl Message {
    pub(crate) fn event(
        event_type: &str,
        source: &str,
        id: &str,
        time: DateTime<Utc>,
        data: Value,
    ) -> Self {
        let envelope = json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": event_type,
            "time": time.to_rfc3339(),
            "datacontenttype": "application/json",
            "data": data,
        });
        Message {
            routing_key: event_type.to_string(),
            body: serde_json::to_vec(&envelope).unwrap_or_default(),
            valid: true,
        }
    }

    /// An event an employer reports: its source names the enterprise.
    pub(crate) fn from_enterprise(
        event_type: &str,
        uscc: &str,
        id: &str,
        time: DateTime<Utc>,
        data: Value,
    ) -> Self {
        Self::event(event_type, &format!("urn:uscc:{uscc}"), id, time, data)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

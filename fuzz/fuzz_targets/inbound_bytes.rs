//! Raw bytes into `inbound::parse`: it may reject, never panic, and what it
//! accepts keeps the envelope's bounds.

#![no_main]

use chrono::NaiveDate;
use dynzero_contracts::inbound::{self, MAX_ID_CHARS, MAX_SOURCE_CHARS, MAX_TYPE_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("a real date");
    if let Ok(message) = inbound::parse(body, inbound::DEFAULT_MAX_BODY_BYTES, today) {
        assert!(message.id.chars().count() <= MAX_ID_CHARS);
        assert!(message.source.chars().count() <= MAX_SOURCE_CHARS);
        assert!(message.event_type.as_str().chars().count() <= MAX_TYPE_CHARS);
    }
});

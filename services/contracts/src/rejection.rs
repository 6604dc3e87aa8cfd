//! Why an inbound message is rejected (docs/contract.md section 6, "Refused messages").

use std::fmt;

/// The `x-dynzero-reason` codes, in the order the contract checks them: a
/// message with several faults gets the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    TooLarge,
    Malformed,
    EnvelopeInvalid,
    UnknownType,
    SchemaInvalid,
    InvalidIdentifier,
    DuplicateIdConflict,
    Poison,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::EnvelopeInvalid,
        Reason::UnknownType,
        Reason::SchemaInvalid,
        Reason::InvalidIdentifier,
        Reason::DuplicateIdConflict,
        Reason::Poison,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::EnvelopeInvalid => "envelope_invalid",
            Reason::UnknownType => "unknown_type",
            Reason::SchemaInvalid => "schema_invalid",
            Reason::InvalidIdentifier => "invalid_identifier",
            Reason::DuplicateIdConflict => "duplicate_id_conflict",
            Reason::Poison => "poison",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permanent refusal of one message: it goes to `dynzero.rejected` with
/// `reason` and `detail`, and is never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: Reason,
    /// Human-readable; names the JSON pointer of the offending field where there is one.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

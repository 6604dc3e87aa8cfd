//! The wire words of the domain's enums, both ways. The domain stays free of serde.

use dynzero_domain::facts::{
    EmploymentKind, Finding, LayoffStage, MemberStatus, Relation, SubsidyChangeKind,
};
use serde::Deserialize;

/// Enums by their wire words; the domain stays free of serde.
macro_rules! wire_enum {
    ($module:ident, $ty:ty, { $($word:literal => $variant:expr),+ $(,)? }) => {
        pub mod $module {
            use super::*;

            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($word => Some($variant),)+
                    _ => None,
                }
            }

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = String::deserialize(d)?;
                parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown value '{s}'")))
            }

            pub fn word(v: $ty) -> &'static str {
                $(if v == $variant { return $word; })+
                unreachable!("every variant has a word")
            }
        }
    };
}

wire_enum!(relation, Relation, {
    "head" => Relation::Head, "spouse" => Relation::Spouse, "child" => Relation::Child,
    "parent" => Relation::Parent, "sibling" => Relation::Sibling, "other" => Relation::Other,
});
wire_enum!(member_status, MemberStatus, {
    "none" => MemberStatus::None, "student" => MemberStatus::Student,
    "retired" => MemberStatus::Retired, "military" => MemberStatus::Military,
    "disabled" => MemberStatus::Disabled,
});
wire_enum!(finding, Finding, {
    "employed" => Finding::Employed, "flexible" => Finding::Flexible,
    "unemployed" => Finding::Unemployed,
});
wire_enum!(stage, LayoffStage, {
    "planned" => LayoffStage::Planned, "effective" => LayoffStage::Effective,
    "withdrawn" => LayoffStage::Withdrawn,
});
wire_enum!(kind, EmploymentKind, {
    "formal" => EmploymentKind::Formal, "public_welfare" => EmploymentKind::PublicWelfare,
    "flexible" => EmploymentKind::Flexible,
});
wire_enum!(change, SubsidyChangeKind, {
    "granted" => SubsidyChangeKind::Granted, "adjusted" => SubsidyChangeKind::Adjusted,
    "revoked" => SubsidyChangeKind::Revoked,
});

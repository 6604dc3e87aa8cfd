//! Deployment-specific parameters of the rules.

use crate::ids::{DivisionCode, Money};
use crate::retirement::FemaleCategory;

/// Minimum monthly wage (最低工资标准) by division prefix; the longest matching prefix wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumWage {
    default: Money,
    by_prefix: Vec<(String, Money)>,
}

impl MinimumWage {
    /// The same wage for every division.
    pub fn flat(default: Money) -> Self {
        Self {
            default,
            by_prefix: Vec::new(),
        }
    }

    /// A table of division-code prefixes (digits only) and their minimum wage.
    pub fn new(default: Money, by_prefix: impl IntoIterator<Item = (String, Money)>) -> Self {
        let mut by_prefix: Vec<(String, Money)> = by_prefix.into_iter().collect();
        // Longest first, so the first match is the longest prefix.
        by_prefix.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Self { default, by_prefix }
    }

    pub fn for_division(&self, division: &DivisionCode) -> Money {
        self.by_prefix
            .iter()
            .find(|(prefix, _)| division.as_str().starts_with(prefix.as_str()))
            .map_or(self.default, |(_, wage)| *wage)
    }
}

impl Default for MinimumWage {
    /// The contract's default: 2,100 yuan for every division.
    fn default() -> Self {
        Self::flat(Money::from_fen(210_000).expect("2100.00 is a valid amount"))
    }
}

/// The rules' parameters: what a deployment may set (the fields), and the
/// thresholds the programme fixes (the associated constants). Every rule, alert
/// and summary reads its number from here, so each is named once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub minimum_wage: MinimumWage,
    pub female_category: FemaleCategory,
    /// `placement_overdue`: a spell may last this many days before the alert
    /// ("today − `zero_since` > the configured limit").
    pub placement_limit_days: u32,
}

impl Rules {
    /// 经济性裁员: a layoff of this many people or more must be reported in advance…
    pub const LAYOFF_REPORT_PEOPLE: u32 = 20;
    /// …or of this percentage of the headcount or more.
    pub const LAYOFF_REPORT_PERCENT: u32 = 10;
    /// `layoff_unreported`: a planned notice counts when its `time` is at
    /// least this many days before the `effective_date` (§6a 13).
    pub const LAYOFF_NOTICE_DAYS: u32 = 30;
    /// `visit_overdue`: more than this many days since the last visit (or
    /// `zero_since`, if later).
    pub const VISIT_INTERVAL_DAYS: u32 = 31;
    /// Stable employment: a contract of at least this many months, or open-ended.
    pub const STABLE_CONTRACT_MONTHS: u32 = 12;
    /// `job_match`: at most this many households per opening.
    pub const MATCHES_PER_OPENING: u32 = 3;
    /// Working age starts on this birthday.
    pub const WORKING_AGE_FROM_YEARS: u32 = 16;
    /// The contract's default for `placement_limit_days`.
    pub const DEFAULT_PLACEMENT_LIMIT_DAYS: u32 = 30;
}

impl Default for Rules {
    /// The contract's defaults: 2,100 yuan everywhere, category F55, 30 days.
    fn default() -> Self {
        Self {
            minimum_wage: MinimumWage::default(),
            female_category: FemaleCategory::default(),
            placement_limit_days: Self::DEFAULT_PLACEMENT_LIMIT_DAYS,
        }
    }
}

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

/// Everything a deployment may set about the rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    pub minimum_wage: MinimumWage,
    pub female_category: FemaleCategory,
}

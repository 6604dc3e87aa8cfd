//! Working age: from the 16th birthday to the statutory retirement date
//! (NPC Standing Committee decision of 2024-09-13, in force 2025-01-01).

use crate::ids::Sex;
use chrono::{Datelike, Months, NaiveDate};

/// What women's retirement category a deployment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FemaleCategory {
    #[default]
    F55,
    F50,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetirementCategory {
    M60,
    F55,
    F50,
}

impl RetirementCategory {
    pub fn of(sex: Sex, female: FemaleCategory) -> Self {
        match (sex, female) {
            (Sex::Male, _) => RetirementCategory::M60,
            (Sex::Female, FemaleCategory::F55) => RetirementCategory::F55,
            (Sex::Female, FemaleCategory::F50) => RetirementCategory::F50,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetirementCategory::M60 => "M60",
            RetirementCategory::F55 => "F55",
            RetirementCategory::F50 => "F50",
        }
    }

    /// The rule of the 2024 decision for this category.
    fn rule(self) -> PhaseIn {
        match self {
            RetirementCategory::M60 => PhaseIn {
                base_age_years: 60,
                start: (1965, 1),
                step_months: 4,
                max_delay_months: 36,
            },
            RetirementCategory::F55 => PhaseIn {
                base_age_years: 55,
                start: (1970, 1),
                step_months: 4,
                max_delay_months: 36,
            },
            RetirementCategory::F50 => PhaseIn {
                base_age_years: 50,
                start: (1975, 1),
                step_months: 2,
                max_delay_months: 60,
            },
        }
    }
}

/// One row of the phase-in table: births from `start` (year, month) on retire
/// one month later for every `step_months` of birth, up to `max_delay_months`.
struct PhaseIn {
    base_age_years: u32,
    start: (i32, u32),
    step_months: i64,
    max_delay_months: i64,
}

/// Months since January of year 0.
fn month_index(year: i32, month: u32) -> i64 {
    i64::from(year) * 12 + i64::from(month) - 1
}

/// `date` plus `months`, same day of month, clamped to the month's last day.
///
/// Saturates at `NaiveDate::MAX` beyond chrono's range (year 262142), which no
/// birth date plus a retirement age comes near.
pub fn add_months_clamped(date: NaiveDate, months: u32) -> NaiveDate {
    // chrono already clamps the day to the end of the resulting month.
    date.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// Statutory retirement age in months for someone born on `birth`.
pub fn retirement_age_months(birth: NaiveDate, category: RetirementCategory) -> u32 {
    let rule = category.rule();
    let k = month_index(birth.year(), birth.month()) - month_index(rule.start.0, rule.start.1);
    let delay = if k < 0 {
        0
    } else {
        (k / rule.step_months + 1).min(rule.max_delay_months)
    };
    // 0 <= delay <= 60, so the conversion cannot fail.
    rule.base_age_years * 12 + u32::try_from(delay).unwrap_or(0)
}

/// The first day a person is no longer of working age.
pub fn retirement_date(birth: NaiveDate, category: RetirementCategory) -> NaiveDate {
    add_months_clamped(birth, retirement_age_months(birth, category))
}

/// The 16th birthday ([`crate::rules::Rules::WORKING_AGE_FROM_YEARS`]; 29
/// February falls on 28 February in other years).
pub fn sixteenth_birthday(birth: NaiveDate) -> NaiveDate {
    add_months_clamped(birth, crate::rules::Rules::WORKING_AGE_FROM_YEARS * 12)
}

/// Of working age on `day`: `sixteenth_birthday <= day < retirement_date`.
pub fn is_working_age(birth: NaiveDate, category: RetirementCategory, day: NaiveDate) -> bool {
    sixteenth_birthday(birth) <= day && day < retirement_date(birth, category)
}

/// Age in completed years on `day` (29 February birthdays count on 28 February).
///
/// 0 when `day` is before `birth`.
pub fn age_in_years(birth: NaiveDate, day: NaiveDate) -> u32 {
    if day <= birth {
        return 0;
    }
    let years = u32::try_from(day.year() - birth.year()).unwrap_or(0);
    if day < add_months_clamped(birth, years * 12) {
        years - 1
    } else {
        years
    }
}

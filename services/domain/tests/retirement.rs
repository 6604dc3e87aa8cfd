//! Working age, checked against every test vector of the retirement rules (docs/contract.md section 7) and the
//! boundary days around the 16th birthday and the retirement date.

use chrono::{Datelike, NaiveDate};
use dynzero_domain::ids::Sex;
use dynzero_domain::retirement::{
    FemaleCategory, RetirementCategory, add_months_clamped, age_in_years, is_working_age,
    retirement_age_months, retirement_date, sixteenth_birthday,
};
use proptest::prelude::*;

use RetirementCategory::{F50, F55, M60};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// One row of the retirement test vectors, checked for births on the 1st, the 15th
/// and the 28th of the birth month (the day never changes the month's result).
fn assert_vector(
    born: (i32, u32),
    category: RetirementCategory,
    age: (u32, u32),
    retires: (i32, u32),
) {
    for day in [1, 15, 28] {
        let birth = date(born.0, born.1, day);
        assert_eq!(
            retirement_age_months(birth, category),
            age.0 * 12 + age.1,
            "age of {birth} {category:?}"
        );
        assert_eq!(
            retirement_date(birth, category),
            date(retires.0, retires.1, day),
            "retirement date of {birth} {category:?}"
        );
    }
}

// ------------------------------------------------------ retirement vectors

#[test]
fn m60_born_1964_12_retires_at_60y0m_in_2024_12() {
    assert_vector((1964, 12), M60, (60, 0), (2024, 12));
}

#[test]
fn m60_born_1965_01_retires_at_60y1m_in_2025_02() {
    assert_vector((1965, 1), M60, (60, 1), (2025, 2));
}

#[test]
fn m60_born_1965_04_retires_at_60y1m_in_2025_05() {
    assert_vector((1965, 4), M60, (60, 1), (2025, 5));
}

#[test]
fn m60_born_1965_05_retires_at_60y2m_in_2025_07() {
    assert_vector((1965, 5), M60, (60, 2), (2025, 7));
}

#[test]
fn f55_born_1971_04_retires_at_55y4m_in_2026_08() {
    assert_vector((1971, 4), F55, (55, 4), (2026, 8));
}

#[test]
fn f50_born_1975_03_retires_at_50y2m_in_2025_05() {
    assert_vector((1975, 3), F50, (50, 2), (2025, 5));
}

#[test]
fn m60_born_1976_08_retires_at_62y11m_in_2039_07() {
    assert_vector((1976, 8), M60, (62, 11), (2039, 7));
}

#[test]
fn m60_born_1976_09_retires_at_63y0m_in_2039_09() {
    assert_vector((1976, 9), M60, (63, 0), (2039, 9));
}

#[test]
fn f55_born_1990_06_retires_at_58y0m_in_2048_06() {
    assert_vector((1990, 6), F55, (58, 0), (2048, 6));
}

#[test]
fn f50_born_1984_11_retires_at_55y0m_in_2039_11() {
    assert_vector((1984, 11), F50, (55, 0), (2039, 11));
}

// ------------------------------------------------------- phase-in boundaries

#[test]
fn births_before_each_phase_in_keep_the_old_age() {
    assert_eq!(retirement_age_months(date(1900, 1, 1), M60), 60 * 12);
    assert_eq!(retirement_age_months(date(1969, 12, 31), F55), 55 * 12);
    assert_eq!(retirement_age_months(date(1974, 12, 31), F50), 50 * 12);
}

#[test]
fn first_births_of_each_phase_in_retire_one_month_later() {
    assert_eq!(retirement_age_months(date(1965, 1, 1), M60), 60 * 12 + 1);
    assert_eq!(retirement_age_months(date(1970, 1, 1), F55), 55 * 12 + 1);
    assert_eq!(retirement_age_months(date(1975, 1, 1), F50), 50 * 12 + 1);
}

#[test]
fn f50_delay_grows_every_two_birth_months() {
    assert_eq!(retirement_age_months(date(1975, 2, 1), F50), 50 * 12 + 1);
    assert_eq!(retirement_age_months(date(1975, 3, 1), F50), 50 * 12 + 2);
}

#[test]
fn delay_stops_at_each_categorys_maximum() {
    assert_eq!(retirement_age_months(date(2000, 1, 1), M60), 63 * 12);
    assert_eq!(retirement_age_months(date(2000, 1, 1), F55), 58 * 12);
    assert_eq!(retirement_age_months(date(2000, 1, 1), F50), 55 * 12);
    // The last month before the maximum for F55: k = 139 -> 35 months.
    assert_eq!(retirement_age_months(date(1981, 8, 1), F55), 55 * 12 + 35);
    assert_eq!(retirement_age_months(date(1981, 9, 1), F55), 58 * 12);
    // F50: k = 117 -> 59 months, k = 118 -> 60 months.
    assert_eq!(retirement_age_months(date(1984, 10, 1), F50), 50 * 12 + 59);
}

// ------------------------------------------------------------------ category

#[test]
fn men_are_m60_whatever_the_female_category() {
    assert_eq!(RetirementCategory::of(Sex::Male, FemaleCategory::F55), M60);
    assert_eq!(RetirementCategory::of(Sex::Male, FemaleCategory::F50), M60);
}

#[test]
fn women_follow_the_deployments_female_category() {
    assert_eq!(
        RetirementCategory::of(Sex::Female, FemaleCategory::F55),
        F55
    );
    assert_eq!(
        RetirementCategory::of(Sex::Female, FemaleCategory::F50),
        F50
    );
}

#[test]
fn women_default_to_f55() {
    assert_eq!(FemaleCategory::default(), FemaleCategory::F55);
}

// ---------------------------------------------------------- month arithmetic

#[test]
fn adding_months_keeps_the_day_of_month() {
    assert_eq!(add_months_clamped(date(2024, 1, 15), 1), date(2024, 2, 15));
    assert_eq!(add_months_clamped(date(2024, 11, 30), 2), date(2025, 1, 30));
    assert_eq!(add_months_clamped(date(2024, 5, 31), 0), date(2024, 5, 31));
}

#[test]
fn adding_months_clamps_to_the_end_of_a_shorter_month() {
    assert_eq!(add_months_clamped(date(2024, 1, 31), 1), date(2024, 2, 29));
    assert_eq!(add_months_clamped(date(2023, 1, 31), 1), date(2023, 2, 28));
    assert_eq!(add_months_clamped(date(2024, 3, 31), 1), date(2024, 4, 30));
}

#[test]
fn adding_months_beyond_the_calendar_saturates() {
    assert_eq!(
        add_months_clamped(date(2024, 1, 1), u32::MAX),
        NaiveDate::MAX
    );
}

#[test]
fn retirement_on_the_31st_is_clamped_to_a_30_day_month() {
    // 1965-03: k = 2 -> 60y1m, so 2025-04, which has no 31st.
    assert_eq!(retirement_date(date(1965, 3, 31), M60), date(2025, 4, 30));
    // 1965-07: k = 6 -> 60y2m, so 2025-09.
    assert_eq!(retirement_date(date(1965, 7, 31), M60), date(2025, 9, 30));
}

#[test]
fn retirement_of_29_february_birth_falls_on_28_february_in_a_common_year() {
    // Before the F55 phase-in: 55y0m, 2023 is not a leap year.
    assert_eq!(retirement_date(date(1968, 2, 29), F55), date(2023, 2, 28));
}

#[test]
fn retirement_of_29_february_birth_stays_on_29_february_in_a_leap_year() {
    // Before the M60 phase-in: 60y0m, 2024 is a leap year.
    assert_eq!(retirement_date(date(1964, 2, 29), M60), date(2024, 2, 29));
}

// ------------------------------------------------------------ 16th birthday

#[test]
fn sixteenth_birthday_is_the_same_day_sixteen_years_later() {
    assert_eq!(sixteenth_birthday(date(2009, 7, 1)), date(2025, 7, 1));
}

#[test]
fn sixteenth_birthday_of_29_february_stays_in_a_leap_year() {
    assert_eq!(sixteenth_birthday(date(2008, 2, 29)), date(2024, 2, 29));
}

#[test]
fn sixteenth_birthday_of_29_february_falls_on_28_february_in_a_common_year() {
    // 16 years after a leap year is a leap year, except across a century: 2100
    // and 1900 are not leap years.
    assert_eq!(sixteenth_birthday(date(2084, 2, 29)), date(2100, 2, 28));
    assert_eq!(sixteenth_birthday(date(1884, 2, 29)), date(1900, 2, 28));
}

#[test]
fn day_before_the_16th_birthday_is_not_working_age() {
    assert!(!is_working_age(date(2009, 7, 1), M60, date(2025, 6, 30)));
}

#[test]
fn the_16th_birthday_is_working_age() {
    assert!(is_working_age(date(2009, 7, 1), M60, date(2025, 7, 1)));
}

#[test]
fn the_16th_birthday_of_29_february_in_a_common_year_is_28_february() {
    let birth = date(2084, 2, 29);
    assert!(!is_working_age(birth, F55, date(2100, 2, 27)));
    assert!(is_working_age(birth, F55, date(2100, 2, 28)));
}

// --------------------------------------------------------- retirement day

#[test]
fn day_before_the_retirement_date_is_working_age() {
    // 1965-05-20, M60: 60y2m -> 2025-07-20.
    assert!(is_working_age(date(1965, 5, 20), M60, date(2025, 7, 19)));
}

#[test]
fn the_retirement_date_is_not_working_age() {
    assert!(!is_working_age(date(1965, 5, 20), M60, date(2025, 7, 20)));
    assert!(!is_working_age(date(1965, 5, 20), M60, date(2030, 1, 1)));
}

#[test]
fn category_decides_working_age_on_the_same_day() {
    // A woman born 1975-03-10 retires 2025-05-10 as F50 (50y2m), 2030-07-10 as F55 (55y4m).
    let birth = date(1975, 3, 10);
    let day = date(2025, 6, 1);
    assert!(!is_working_age(birth, F50, day));
    assert!(is_working_age(birth, F55, day));
}

// ------------------------------------------------------------ age in years

#[test]
fn age_counts_completed_years() {
    let birth = date(1990, 6, 15);
    assert_eq!(age_in_years(birth, date(2025, 6, 14)), 34);
    assert_eq!(age_in_years(birth, date(2025, 6, 15)), 35);
    assert_eq!(age_in_years(birth, date(2025, 12, 31)), 35);
}

#[test]
fn age_on_the_day_of_birth_is_zero() {
    assert_eq!(age_in_years(date(2000, 1, 1), date(2000, 1, 1)), 0);
    assert_eq!(age_in_years(date(2000, 1, 1), date(2000, 12, 31)), 0);
}

#[test]
fn age_before_birth_is_zero() {
    assert_eq!(age_in_years(date(2000, 1, 1), date(1999, 12, 31)), 0);
}

#[test]
fn birthday_of_29_february_counts_on_28_february_in_a_common_year() {
    let birth = date(2000, 2, 29);
    assert_eq!(age_in_years(birth, date(2001, 2, 27)), 0);
    assert_eq!(age_in_years(birth, date(2001, 2, 28)), 1);
    assert_eq!(age_in_years(birth, date(2003, 2, 28)), 3);
}

#[test]
fn birthday_of_29_february_counts_on_29_february_in_a_leap_year() {
    let birth = date(2000, 2, 29);
    assert_eq!(age_in_years(birth, date(2004, 2, 28)), 3);
    assert_eq!(age_in_years(birth, date(2004, 2, 29)), 4);
}

// --------------------------------------------------------------- properties

fn any_birth() -> impl Strategy<Value = NaiveDate> {
    let first = date(1900, 1, 1);
    (0i64..=(date(2025, 12, 31) - first).num_days())
        .prop_map(move |days| first + chrono::Duration::days(days))
}

fn any_category() -> impl Strategy<Value = RetirementCategory> {
    prop_oneof![Just(M60), Just(F55), Just(F50)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn retirement_age_lies_between_base_and_maximum(
        birth in any_birth(),
        category in any_category(),
    ) {
        let (base, max_delay) = match category {
            M60 => (60, 36),
            F55 => (55, 36),
            F50 => (50, 60),
        };
        let age = retirement_age_months(birth, category);
        prop_assert!(age >= base * 12 && age <= base * 12 + max_delay);
    }

    #[test]
    fn later_births_never_retire_younger(
        birth in any_birth(),
        category in any_category(),
        later_days in 0i64..2000,
    ) {
        let later = birth + chrono::Duration::days(later_days);
        prop_assert!(
            retirement_age_months(later, category) >= retirement_age_months(birth, category)
        );
    }

    #[test]
    fn retirement_date_keeps_the_birth_day_or_the_month_end(
        birth in any_birth(),
        category in any_category(),
    ) {
        let retires = retirement_date(birth, category);
        let months = retirement_age_months(birth, category) as i32;
        let month0 = birth.year() * 12 + birth.month0() as i32 + months;
        prop_assert_eq!(retires.year() * 12 + retires.month0() as i32, month0);
        let next_day_is_next_month = retires.succ_opt().unwrap().month() != retires.month();
        prop_assert!(
            retires.day() == birth.day()
                || (retires.day() < birth.day() && next_day_is_next_month)
        );
    }

    #[test]
    fn working_age_is_exactly_from_16th_birthday_to_retirement(
        birth in any_birth(),
        category in any_category(),
        offset in -2i64..=2,
    ) {
        let start = sixteenth_birthday(birth);
        let end = retirement_date(birth, category);
        let around_start = start + chrono::Duration::days(offset);
        let around_end = end + chrono::Duration::days(offset);
        prop_assert_eq!(is_working_age(birth, category, around_start), offset >= 0);
        prop_assert_eq!(is_working_age(birth, category, around_end), offset < 0);
        prop_assert_eq!(age_in_years(birth, start), 16);
        prop_assert_eq!(age_in_years(birth, start.pred_opt().unwrap()), 15);
    }
}

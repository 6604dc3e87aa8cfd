//! Identifiers: what is accepted, in what canonical form, and every way of
//! being refused. Check characters are computed here independently of the
//! crate (the oracle below), and cross-checked against published real codes.

use chrono::NaiveDate;
use dynzero_domain::ids::{
    DivisionCode, IdNumber, IdentifierError, Key, Money, MoneyError, Sex, Uscc, is_province,
};
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn today() -> NaiveDate {
    date(2025, 6, 30)
}

const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// ISO 7064 MOD 11-2, written out as in GB 11643-1999 (weight = 2^(17-i) mod 11).
fn id_check(first17: &str) -> char {
    let sum: u32 = first17
        .chars()
        .enumerate()
        .map(|(i, c)| c.to_digit(10).unwrap() * (2u32.pow(17 - i as u32) % 11))
        .sum();
    let value = (12 - sum % 11) % 11;
    if value == 10 {
        'X'
    } else {
        char::from_digit(value, 10).unwrap()
    }
}

const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// MOD 31 as in GB 32100-2015 (weight = 3^i mod 31).
fn uscc_check(first17: &str) -> char {
    let sum: u32 = first17
        .chars()
        .enumerate()
        .map(|(i, c)| USCC_ALPHABET.find(c).unwrap() as u32 * (3u32.pow(i as u32) % 31))
        .sum();
    USCC_ALPHABET
        .chars()
        .nth(((31 - sum % 31) % 31) as usize)
        .unwrap()
}

fn valid_id(first17: &str) -> String {
    format!("{first17}{}", id_check(first17))
}

fn valid_uscc(first17: &str) -> String {
    format!("{first17}{}", uscc_check(first17))
}

fn parse_id(s: &str) -> Result<IdNumber, IdentifierError> {
    IdNumber::parse(s, today())
}

// ---------------------------------------------------------------- provinces

#[test]
fn every_listed_province_code_is_real_and_no_other() {
    for code in 0..=u8::MAX {
        assert_eq!(is_province(code), PROVINCES.contains(&code), "code {code}");
    }
}

// ---------------------------------------------------------------- id number

#[test]
fn oracle_agrees_with_published_example_numbers() {
    assert_eq!(id_check("11010519491231002"), 'X');
    assert_eq!(id_check("44052418800101001"), '4');
}

#[test]
fn published_example_id_number_parses_with_birth_date_and_sex() {
    let id = parse_id("11010519491231002X").unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    assert_eq!(id.birth_date(), date(1949, 12, 31));
    assert_eq!(id.sex(), Sex::Female);
}

#[test]
fn odd_sequence_is_male_even_is_female() {
    let male = parse_id(&valid_id("21030219900101123")).unwrap();
    let female = parse_id(&valid_id("21030219900101124")).unwrap();
    assert_eq!(male.sex(), Sex::Male);
    assert_eq!(female.sex(), Sex::Female);
}

#[test]
fn lower_case_x_is_stored_upper_case() {
    let id = parse_id("11010519491231002x").unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    assert_eq!(id, parse_id("11010519491231002X").unwrap());
}

#[test]
fn masked_keeps_first_six_and_last_four() {
    let id = parse_id("11010519491231002X").unwrap();
    assert_eq!(id.masked(), "110105********002X");
}

#[test]
fn debug_and_display_show_only_the_masked_number() {
    let id = parse_id("11010519491231002X").unwrap();
    assert_eq!(format!("{id}"), "110105********002X");
    assert_eq!(format!("{id:?}"), "IdNumber(110105********002X)");
}

#[test]
fn fifteen_digit_number_is_rejected() {
    assert_eq!(
        parse_id("110105491231002"),
        Err(IdentifierError::Length {
            expected: 18,
            actual: 15
        })
    );
}

#[test]
fn seventeen_and_nineteen_characters_are_rejected() {
    assert!(matches!(
        parse_id("11010519491231002"),
        Err(IdentifierError::Length { actual: 17, .. })
    ));
    assert!(matches!(
        parse_id("11010519491231002X0"),
        Err(IdentifierError::Length { actual: 19, .. })
    ));
}

#[test]
fn empty_id_number_is_a_length_error() {
    assert!(matches!(
        parse_id(""),
        Err(IdentifierError::Length { actual: 0, .. })
    ));
}

#[test]
fn non_digit_in_the_body_is_rejected_with_its_position() {
    assert_eq!(
        parse_id("1101051949123100AX"),
        Err(IdentifierError::Character {
            position: 17,
            character: 'A'
        })
    );
}

#[test]
fn x_before_the_last_position_is_rejected() {
    assert_eq!(
        parse_id("X10105194912310020"),
        Err(IdentifierError::Character {
            position: 1,
            character: 'X'
        })
    );
}

#[test]
fn letter_other_than_x_as_check_character_is_rejected() {
    assert_eq!(
        parse_id("11010519491231002Y"),
        Err(IdentifierError::Character {
            position: 18,
            character: 'Y'
        })
    );
}

#[test]
fn non_ascii_id_number_is_rejected_without_panicking() {
    // 18 characters, the last one two bytes long.
    assert_eq!(
        parse_id("11010519491231002é"),
        Err(IdentifierError::Character {
            position: 18,
            character: 'é'
        })
    );
    // 18 bytes but 6 characters.
    assert_eq!(
        parse_id("一二三四五六"),
        Err(IdentifierError::Length {
            expected: 18,
            actual: 6
        })
    );
    // 18 characters, none ASCII.
    assert!(matches!(
        parse_id("一二三四五六七八九十一二三四五六七八"),
        Err(IdentifierError::Character { position: 1, .. })
    ));
    // Full-width digits are not digits here.
    assert!(matches!(
        parse_id("１１０１０５１９４９１２３１００２Ｘ"),
        Err(IdentifierError::Character { position: 1, .. })
    ));
}

#[test]
fn province_10_is_rejected() {
    assert_eq!(
        parse_id(&valid_id("10010519491231002")),
        Err(IdentifierError::Province("10".into()))
    );
}

#[test]
fn province_19_is_rejected() {
    assert_eq!(
        parse_id(&valid_id("19010519491231002")),
        Err(IdentifierError::Province("19".into()))
    );
}

#[test]
fn province_00_is_rejected() {
    assert_eq!(
        parse_id(&valid_id("00010519491231002")),
        Err(IdentifierError::Province("00".into()))
    );
}

#[test]
fn birth_date_19990230_is_not_a_real_date() {
    assert_eq!(
        parse_id(&valid_id("21030219990230123")),
        Err(IdentifierError::BirthDate("19990230".into()))
    );
}

#[test]
fn birth_month_13_and_day_00_are_not_real_dates() {
    assert_eq!(
        parse_id(&valid_id("21030219991301123")),
        Err(IdentifierError::BirthDate("19991301".into()))
    );
    assert_eq!(
        parse_id(&valid_id("21030219990100123")),
        Err(IdentifierError::BirthDate("19990100".into()))
    );
}

#[test]
fn leap_day_birth_date_is_accepted_only_in_leap_years() {
    assert!(parse_id(&valid_id("21030220000229123")).is_ok());
    assert_eq!(
        parse_id(&valid_id("21030219000229123")),
        Err(IdentifierError::BirthDate("19000229".into()))
    );
}

#[test]
fn birth_date_after_today_is_rejected() {
    assert_eq!(
        parse_id(&valid_id("21030220250701123")),
        Err(IdentifierError::BirthDateInFuture(date(2025, 7, 1)))
    );
}

#[test]
fn birth_date_of_today_is_accepted() {
    let id = parse_id(&valid_id("21030220250630123")).unwrap();
    assert_eq!(id.birth_date(), today());
}

#[test]
fn birth_date_before_1900_is_rejected() {
    assert_eq!(
        parse_id("440524188001010014"),
        Err(IdentifierError::BirthDateTooEarly(date(1880, 1, 1)))
    );
    assert_eq!(
        parse_id(&valid_id("21030218991231123")),
        Err(IdentifierError::BirthDateTooEarly(date(1899, 12, 31)))
    );
}

#[test]
fn birth_date_1900_01_01_is_accepted() {
    assert!(parse_id(&valid_id("21030219000101123")).is_ok());
}

#[test]
fn wrong_check_character_is_rejected_naming_the_expected_one() {
    assert_eq!(
        parse_id("110105194912310021"),
        Err(IdentifierError::CheckCharacter {
            expected: 'X',
            actual: '1'
        })
    );
}

// --------------------------------------------------------------------- uscc

#[test]
fn oracle_agrees_with_published_uscc_examples() {
    for code in [
        "91350100M000100Y43",
        "91110000600037341L",
        "91110108551385082Q",
        "91440300708461136T",
    ] {
        assert_eq!(
            uscc_check(&code[..17]),
            code.chars().last().unwrap(),
            "{code}"
        );
    }
}

#[test]
fn published_usccs_parse() {
    for code in [
        "91350100M000100Y43",
        "91110000600037341L",
        "91110108551385082Q",
        "91440300708461136T",
    ] {
        assert_eq!(Uscc::parse(code).unwrap().as_str(), code);
    }
}

#[test]
fn lower_case_uscc_letters_are_stored_upper_case() {
    let uscc = Uscc::parse("91350100m000100y43").unwrap();
    assert_eq!(uscc.as_str(), "91350100M000100Y43");
    assert_eq!(uscc.to_string(), "91350100M000100Y43");
    let uscc = Uscc::parse("91110000600037341l").unwrap();
    assert_eq!(uscc.as_str(), "91110000600037341L");
}

#[test]
fn uscc_letters_i_o_s_v_z_are_rejected_in_either_case() {
    for bad in ['I', 'O', 'S', 'V', 'Z', 'i', 'o', 's', 'v', 'z'] {
        let code = format!("9135010{bad}M000100Y43");
        assert_eq!(
            Uscc::parse(&code),
            Err(IdentifierError::Character {
                position: 8,
                character: bad
            }),
            "{code}"
        );
    }
}

#[test]
fn uscc_check_character_i_o_s_v_z_is_rejected() {
    for bad in ['I', 'O', 'S', 'V', 'Z'] {
        let code = format!("91350100M000100Y4{bad}");
        assert!(
            matches!(
                Uscc::parse(&code),
                Err(IdentifierError::Character { position: 18, .. })
            ),
            "{code}"
        );
    }
}

#[test]
fn uscc_wrong_check_character_is_rejected() {
    assert_eq!(
        Uscc::parse("91350100M000100Y44"),
        Err(IdentifierError::CheckCharacter {
            expected: '3',
            actual: '4'
        })
    );
}

#[test]
fn uscc_of_wrong_length_is_rejected() {
    assert_eq!(
        Uscc::parse("91350100M000100Y4"),
        Err(IdentifierError::Length {
            expected: 18,
            actual: 17
        })
    );
    assert_eq!(
        Uscc::parse("91350100M000100Y433"),
        Err(IdentifierError::Length {
            expected: 18,
            actual: 19
        })
    );
}

#[test]
fn non_ascii_uscc_is_rejected_without_panicking() {
    assert!(matches!(
        Uscc::parse("91350100M000100Y4é"),
        Err(IdentifierError::Character {
            position: 18,
            character: 'é'
        })
    ));
    assert!(matches!(
        Uscc::parse("统一社会信用代码"),
        Err(IdentifierError::Length { actual: 8, .. })
    ));
}

#[test]
fn uscc_from_str_is_parse() {
    let uscc: Uscc = "91350100m000100y43".parse().unwrap();
    assert_eq!(uscc.as_str(), "91350100M000100Y43");
}

// ------------------------------------------------------------ division code

#[test]
fn community_division_code_parses_with_its_levels() {
    let code = DivisionCode::parse_community("210302001002").unwrap();
    assert_eq!(code.as_str(), "210302001002");
    assert_eq!(code.city(), "2103");
    assert_eq!(code.county(), "210302");
    assert_eq!(code.street(), "210302001");
    assert!(code.is_community());
}

#[test]
fn dotted_division_code_is_the_routing_key_form() {
    let code = DivisionCode::parse("210302001002").unwrap();
    assert_eq!(code.dotted(), "21.03.02.001.002");
}

#[test]
fn division_with_zero_community_part_is_not_a_community() {
    assert_eq!(
        DivisionCode::parse_community("210302001000"),
        Err(IdentifierError::NotCommunity)
    );
}

#[test]
fn division_with_zero_township_part_is_not_a_community() {
    assert_eq!(
        DivisionCode::parse_community("210302000001"),
        Err(IdentifierError::NotCommunity)
    );
}

#[test]
fn county_level_division_is_accepted_for_any_level_but_not_as_community() {
    let county = DivisionCode::parse("210302000000").unwrap();
    assert!(!county.is_community());
    assert_eq!(
        DivisionCode::parse_community("210302000000"),
        Err(IdentifierError::NotCommunity)
    );
}

#[test]
fn division_with_unreal_province_is_rejected() {
    for province in ["00", "10", "19", "99"] {
        let code = format!("{province}0302001002");
        assert_eq!(
            DivisionCode::parse(&code),
            Err(IdentifierError::Province(province.into()))
        );
        assert_eq!(
            DivisionCode::parse_community(&code),
            Err(IdentifierError::Province(province.into()))
        );
    }
}

#[test]
fn division_of_wrong_length_is_rejected() {
    assert_eq!(
        DivisionCode::parse("210302001"),
        Err(IdentifierError::Length {
            expected: 12,
            actual: 9
        })
    );
}

#[test]
fn division_with_non_digit_is_rejected() {
    assert_eq!(
        DivisionCode::parse("21.302001002"),
        Err(IdentifierError::Character {
            position: 3,
            character: '.'
        })
    );
    assert!(matches!(
        DivisionCode::parse("二一０３０２００１００２"),
        Err(IdentifierError::Character { position: 1, .. })
    ));
}

// -------------------------------------------------------------------- money

fn yuan(s: &str) -> Result<i64, MoneyError> {
    Money::from_yuan_str(s).map(Money::fen)
}

#[test]
fn whole_yuan_is_converted_to_fen() {
    assert_eq!(yuan("2100"), Ok(210_000));
    assert_eq!(yuan("0"), Ok(0));
}

#[test]
fn two_decimals_are_fen() {
    assert_eq!(yuan("100.10"), Ok(10_010));
    assert_eq!(yuan("0.01"), Ok(1));
    assert_eq!(yuan("0.5"), Ok(50));
}

#[test]
fn exponents_are_applied_exactly() {
    assert_eq!(yuan("1.5e3"), Ok(150_000));
    assert_eq!(yuan("2E2"), Ok(20_000));
    assert_eq!(yuan("2e+2"), Ok(20_000));
    assert_eq!(yuan("1e-2"), Ok(1));
    assert_eq!(yuan("12345e-2"), Ok(12_345));
    assert_eq!(yuan("1.2345e2"), Ok(12_345));
    assert_eq!(yuan("0.001e1"), Ok(1));
}

#[test]
fn trailing_zero_decimals_are_not_too_precise() {
    assert_eq!(yuan("100.100"), Ok(10_010));
    assert_eq!(yuan("100.1000000000000000000000"), Ok(10_010));
}

#[test]
fn third_decimal_is_too_precise() {
    assert_eq!(yuan("100.101"), Err(MoneyError::TooPrecise));
    assert_eq!(yuan("0.001"), Err(MoneyError::TooPrecise));
    assert_eq!(yuan("1e-3"), Err(MoneyError::TooPrecise));
    assert_eq!(
        yuan("1e-99999999999999999999999"),
        Err(MoneyError::TooPrecise)
    );
}

#[test]
fn negative_amount_is_rejected() {
    assert_eq!(yuan("-1"), Err(MoneyError::Negative));
    assert_eq!(yuan("-0.01"), Err(MoneyError::Negative));
    assert_eq!(yuan("-0.001"), Err(MoneyError::Negative));
}

#[test]
fn negative_zero_is_zero() {
    assert_eq!(yuan("-0"), Ok(0));
    assert_eq!(yuan("-0.00"), Ok(0));
    assert_eq!(yuan("-0e5"), Ok(0));
}

#[test]
fn zero_with_any_exponent_is_zero() {
    assert_eq!(yuan("0e99999999999999999999999"), Ok(0));
    assert_eq!(yuan("0.000e-7"), Ok(0));
}

#[test]
fn largest_amount_is_i64_max_fen() {
    assert_eq!(yuan("92233720368547758.07"), Ok(i64::MAX));
}

#[test]
fn amount_beyond_i64_fen_is_too_large() {
    assert_eq!(yuan("92233720368547758.08"), Err(MoneyError::TooLarge));
    assert_eq!(yuan("100000000000000000"), Err(MoneyError::TooLarge));
    assert_eq!(yuan("1e17"), Err(MoneyError::TooLarge));
    assert_eq!(yuan("1e99999999999999999999999"), Err(MoneyError::TooLarge));
    assert_eq!(
        yuan("99999999999999999999999999"),
        Err(MoneyError::TooLarge)
    );
}

#[test]
fn text_that_is_not_a_json_number_is_rejected() {
    for text in [
        "", "abc", "+1", "01", ".5", "5.", "1e", "1e+", " 1", "1 ", "NaN", "Infinity", "--1", "-",
        "1,5", "0x10", "1.5.0", "١",
    ] {
        assert_eq!(yuan(text), Err(MoneyError::NotANumber), "{text:?}");
    }
}

#[test]
fn money_displays_with_two_decimals() {
    assert_eq!(Money::from_fen(210_000).unwrap().to_string(), "2100.00");
    assert_eq!(Money::from_fen(5).unwrap().to_string(), "0.05");
    assert_eq!(Money::ZERO.to_string(), "0.00");
    assert_eq!(Money::from_fen(10_010).unwrap().to_string(), "100.10");
}

#[test]
fn negative_fen_is_rejected() {
    assert_eq!(Money::from_fen(-1), Err(MoneyError::Negative));
    assert_eq!(Money::from_fen(i64::MIN), Err(MoneyError::Negative));
}

#[test]
fn yuan_f64_is_fen_over_100() {
    assert_eq!(Money::from_fen(210_050).unwrap().yuan_f64(), 2100.5);
}

#[test]
fn money_from_str_is_yuan() {
    let money: Money = "1.5e3".parse().unwrap();
    assert_eq!(money.fen(), 150_000);
}

// ---------------------------------------------------------------------- key

#[test]
fn key_of_allowed_characters_parses() {
    let key = Key::parse("hh-2024:0001_a.B").unwrap();
    assert_eq!(key.as_str(), "hh-2024:0001_a.B");
    assert_eq!(key.to_string(), "hh-2024:0001_a.B");
}

#[test]
fn key_of_64_characters_is_accepted_and_65_rejected() {
    assert!(Key::parse(&"a".repeat(64)).is_ok());
    assert!(matches!(
        Key::parse(&"a".repeat(65)),
        Err(IdentifierError::Key(_))
    ));
}

#[test]
fn empty_key_is_rejected() {
    assert!(matches!(Key::parse(""), Err(IdentifierError::Key(_))));
}

#[test]
fn key_with_other_characters_is_rejected() {
    for bad in ["a b", "a/b", "a#b", "户", "a\n", "é"] {
        assert!(
            matches!(Key::parse(bad), Err(IdentifierError::Key(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn key_error_names_the_rule() {
    assert_eq!(
        Key::parse("a b").unwrap_err().to_string(),
        "may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-'"
    );
    assert_eq!(Key::parse("").unwrap_err().to_string(), "must not be empty");
}

// --------------------------------------------------------------- properties

fn province() -> impl Strategy<Value = u8> {
    proptest::sample::select(PROVINCES.to_vec())
}

/// A valid id number's first 17 characters, with a birth date in 1900-01-01..=today.
fn id_body() -> impl Strategy<Value = String> {
    let first = date(1900, 1, 1);
    let span = (today() - first).num_days();
    (province(), 0u32..10_000, 0..=span, 0u32..1000).prop_map(move |(p, area, days, seq)| {
        let birth = first + chrono::Duration::days(days);
        format!("{p:02}{area:04}{}{seq:03}", birth.format("%Y%m%d"))
    })
}

fn valid_id_number() -> impl Strategy<Value = String> {
    id_body().prop_map(|body| valid_id(&body))
}

fn valid_uscc_code() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(USCC_ALPHABET.as_bytes().to_vec()),
        17,
    )
    .prop_map(|bytes| valid_uscc(&String::from_utf8(bytes).unwrap()))
}

/// Replaces position `i` of `s` by the `pick`-th character of `allowed` that
/// differs from the one there.
fn corrupt(s: &str, i: usize, allowed: &str, pick: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let others: Vec<char> = allowed.chars().filter(|&c| c != chars[i]).collect();
    chars[i] = others[pick % others.len()];
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_valid_id_number_parses_and_round_trips(id in valid_id_number()) {
        let parsed = parse_id(&id).unwrap();
        prop_assert_eq!(parsed.as_str(), id.as_str());
        let birth = NaiveDate::parse_from_str(&id[6..14], "%Y%m%d").unwrap();
        prop_assert_eq!(parsed.birth_date(), birth);
        let odd = id.as_bytes()[16] % 2 == 1;
        prop_assert_eq!(parsed.sex(), if odd { Sex::Male } else { Sex::Female });
    }

    #[test]
    fn lower_case_id_number_parses_to_the_upper_case_one(id in valid_id_number()) {
        let parsed = parse_id(&id.to_ascii_lowercase()).unwrap();
        prop_assert_eq!(parsed.as_str(), id.as_str());
    }

    #[test]
    fn every_single_character_corruption_of_an_id_number_is_rejected(
        id in valid_id_number(),
        i in 0usize..18,
        pick in 0usize..100,
    ) {
        let allowed = if i == 17 { "0123456789X" } else { "0123456789" };
        let corrupted = corrupt(&id, i, allowed, pick);
        prop_assert!(parse_id(&corrupted).is_err(), "{} accepted", corrupted);
    }

    #[test]
    fn masked_never_shows_the_birth_date(id in valid_id_number()) {
        let parsed = parse_id(&id).unwrap();
        let masked = parsed.masked();
        prop_assert_eq!(&masked[..6], &id[..6]);
        prop_assert_eq!(&masked[6..14], "********");
        prop_assert_eq!(&masked[14..], &id[14..]);
        prop_assert!(!masked.contains(&id[6..14]));
        let shown = format!("{parsed:?} {parsed}");
        prop_assert!(!shown.contains(&id[6..14]));
    }

    #[test]
    fn every_valid_uscc_parses_and_round_trips(code in valid_uscc_code()) {
        let parsed = Uscc::parse(&code).unwrap();
        prop_assert_eq!(parsed.as_str(), code.as_str());
        prop_assert_eq!(parsed.to_string(), code.clone());
        prop_assert_eq!(Uscc::parse(&code.to_ascii_lowercase()).unwrap(), parsed);
    }

    #[test]
    fn every_single_character_corruption_of_a_uscc_is_rejected(
        code in valid_uscc_code(),
        i in 0usize..18,
        pick in 0usize..100,
    ) {
        let corrupted = corrupt(&code, i, USCC_ALPHABET, pick);
        prop_assert!(Uscc::parse(&corrupted).is_err(), "{} accepted", corrupted);
    }

    #[test]
    fn every_valid_division_code_parses_and_round_trips(
        p in province(),
        county in 0u32..10_000,
        township in 0u32..1000,
        community in 0u32..1000,
    ) {
        let code = format!("{p:02}{county:04}{township:03}{community:03}");
        let parsed = DivisionCode::parse(&code).unwrap();
        prop_assert_eq!(parsed.as_str(), code.as_str());
        prop_assert_eq!(parsed.to_string(), code.clone());
        prop_assert_eq!(parsed.dotted().replace('.', ""), code.clone());
        let is_community = township != 0 && community != 0;
        prop_assert_eq!(parsed.is_community(), is_community);
        prop_assert_eq!(DivisionCode::parse_community(&code).is_ok(), is_community);
    }

    #[test]
    fn yuan_text_of_any_fen_amount_parses_to_that_amount(fen in 0i64..=i64::MAX) {
        let text = format!("{}.{:02}", fen / 100, fen % 100);
        prop_assert_eq!(Money::from_yuan_str(&text), Money::from_fen(fen));
        prop_assert_eq!(Money::from_fen(fen).unwrap().to_string(), text);
        let scientific = format!("{fen}e-2");
        prop_assert_eq!(Money::from_yuan_str(&scientific), Money::from_fen(fen));
    }

    #[test]
    fn small_amounts_round_trip_through_display(fen in 0i64..100_000_000) {
        let money = Money::from_fen(fen).unwrap();
        prop_assert_eq!(Money::from_yuan_str(&money.to_string()), Ok(money));
    }
}

//! Identifier parsing from untrusted text: `IdNumber`, `Uscc`, `DivisionCode`
//! and `Money` may refuse, never panic, and what they accept parses again to
//! the same value.

#![no_main]

use arbitrary::Arbitrary;
use chrono::NaiveDate;
use dynzero_domain::ids::{DivisionCode, IdNumber, Money, Uscc};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case<'a> {
    text: &'a str,
    fen: i64,
    /// Days after 1900-01-01 for "today", which bounds birth dates.
    day: u16,
}

fuzz_target!(|case: Case<'_>| {
    let s = case.text;
    let today = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a real date")
        + chrono::Days::new(u64::from(case.day));
    if let Ok(id) = IdNumber::parse(s, today) {
        assert_eq!(id.as_str().len(), 18);
        assert_eq!(id.as_str(), s.to_ascii_uppercase());
        assert!(id.birth_date() <= today);
        assert_eq!(IdNumber::parse(id.as_str(), today).ok(), Some(id.clone()));
        assert!(!format!("{id:?}").contains(&id.as_str()[6..14]), "masked");
    }
    if let Ok(code) = Uscc::parse(s) {
        assert_eq!(code.as_str(), s.to_ascii_uppercase());
        assert_eq!(Uscc::parse(code.as_str()).ok(), Some(code.clone()));
    }
    if let Ok(code) = DivisionCode::parse(s) {
        assert_eq!(DivisionCode::parse(code.as_str()).ok(), Some(code.clone()));
    }
    if let Ok(code) = DivisionCode::parse_community(s) {
        assert!(code.is_community());
        assert!(DivisionCode::parse(code.as_str()).is_ok());
    }
    if let Ok(money) = Money::from_yuan_str(s) {
        assert!(money.fen() >= 0);
        assert_eq!(Money::from_yuan_str(&money.to_string()).ok(), Some(money));
    }
    if let Ok(money) = Money::from_fen(case.fen) {
        assert_eq!(Money::from_yuan_str(&money.to_string()).ok(), Some(money));
    }
});

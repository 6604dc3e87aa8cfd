//! Identifiers that can only hold valid values (parse, don't validate).

use chrono::NaiveDate;
use std::fmt;
use std::str::FromStr;

/// Why an identifier was refused. The text names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("must be {expected} characters, is {actual}")]
    Length { expected: usize, actual: usize },
    #[error("character {position} ('{character}') is not allowed")]
    Character { position: usize, character: char },
    #[error("province code {0} is not a real province")]
    Province(String),
    #[error("birth date {0} is not a real date")]
    BirthDate(String),
    #[error("birth date {0} is in the future")]
    BirthDateInFuture(NaiveDate),
    #[error("birth date {0} is before 1900-01-01")]
    BirthDateTooEarly(NaiveDate),
    #[error("check character is '{actual}', expected '{expected}'")]
    CheckCharacter { expected: char, actual: char },
    #[error("must name a community (township and community parts non-zero)")]
    NotCommunity,
    #[error("{0}")]
    Key(&'static str),
}

/// Sex as encoded in the id number's sequence (odd = male).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
}

/// Real province codes (GB/T 2260): 11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82.
pub fn is_province(code: u8) -> bool {
    matches!(
        code,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82
    )
}

/// The province code at the start of `s`, whose first two characters are known ASCII digits.
fn province_of(s: &str) -> Result<u8, IdentifierError> {
    let code = &s[..2];
    code.parse::<u8>()
        .ok()
        .filter(|&c| is_province(c))
        .ok_or_else(|| IdentifierError::Province(code.to_owned()))
}

/// Refuses anything but exactly `expected` characters, counted as `char`s so that
/// multi-byte input is reported by length rather than sliced mid-character.
fn check_length(s: &str, expected: usize) -> Result<(), IdentifierError> {
    let actual = s.chars().count();
    if actual == expected {
        Ok(())
    } else {
        Err(IdentifierError::Length { expected, actual })
    }
}

/// The first character (1-based position) that `allowed` refuses.
fn check_characters(s: &str, allowed: impl Fn(usize, char) -> bool) -> Result<(), IdentifierError> {
    match s.chars().enumerate().find(|&(i, c)| !allowed(i, c)) {
        Some((i, character)) => Err(IdentifierError::Character {
            position: i + 1,
            character,
        }),
        None => Ok(()),
    }
}

/// ISO 7064 MOD 11-2 weights for the first 17 characters of an id number.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character, indexed by the weighted sum mod 11.
const ID_CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// The check character for the first 17 characters of an id number, or `None`
/// unless they are exactly 17 ASCII digits. For building valid numbers (fixtures).
pub fn id_number_check_char(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    (bytes.len() == 17 && bytes.iter().all(u8::is_ascii_digit)).then(|| id_check_char(bytes))
}

/// `digits`: 17 ASCII digits.
fn id_check_char(digits: &[u8]) -> char {
    let sum: u32 = digits
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    char::from(ID_CHECK_CHARS[(sum % 11) as usize])
}

/// An 18-character PRC resident identity number (GB 11643-1999), stored with an upper-case `X`.
/// `Debug` and `Display` show it masked; `as_str` gives it whole.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdNumber(String);

impl IdNumber {
    /// `today` bounds the birth date: a number born in the future is invalid.
    ///
    /// Checked in this order, the first failure is returned: length (a 15-digit
    /// number is a `Length` error), characters (17 digits then a digit or `X`/`x`),
    /// province, birth date, check character.
    pub fn parse(s: &str, today: NaiveDate) -> Result<Self, IdentifierError> {
        check_length(s, 18)?;
        check_characters(s, |i, c| {
            c.is_ascii_digit() || (i == 17 && matches!(c, 'X' | 'x'))
        })?;
        // From here on `s` is 18 ASCII bytes, so byte slicing is safe.
        let canonical = s.to_ascii_uppercase();
        province_of(&canonical)?;
        let birth = birth_date_of(&canonical)?;
        if birth < earliest_birth_date() {
            return Err(IdentifierError::BirthDateTooEarly(birth));
        }
        if birth > today {
            return Err(IdentifierError::BirthDateInFuture(birth));
        }
        let expected = id_check_char(&canonical.as_bytes()[..17]);
        let actual = char::from(canonical.as_bytes()[17]);
        if actual != expected {
            return Err(IdentifierError::CheckCharacter { expected, actual });
        }
        Ok(IdNumber(canonical))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn birth_date(&self) -> NaiveDate {
        // `parse` accepted only real dates, so the fallback is never taken.
        birth_date_of(&self.0).unwrap_or_default()
    }
    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }
    /// First 6 and last 4 characters, 8 `*` between: `210302********123X`.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

fn earliest_birth_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The birth date in characters 7–14 of an id number known to be ASCII digits.
fn birth_date_of(s: &str) -> Result<NaiveDate, IdentifierError> {
    let text = &s[6..14];
    let (year, month, day) = (&text[..4], &text[4..6], &text[6..]);
    year.parse::<i32>()
        .ok()
        .zip(month.parse::<u32>().ok())
        .zip(day.parse::<u32>().ok())
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(|| IdentifierError::BirthDate(text.to_owned()))
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}
impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// An 18-character unified social credit code (GB 32100-2015), stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

/// The USCC alphabet; a character's value is its index (no I, O, S, V, Z).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The value of a USCC character (either case), `None` outside the alphabet.
fn uscc_value(c: char) -> Option<u32> {
    let upper = c.to_ascii_uppercase();
    USCC_CHARSET
        .iter()
        .position(|&b| char::from(b) == upper)
        .map(|i| i as u32)
}

/// The check character for the first 17 characters of a USCC (either case), or
/// `None` unless they are exactly 17 characters of the USCC alphabet. For
/// building valid codes (fixtures).
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let values: Option<Vec<u32>> = first17.chars().map(uscc_value).collect();
    Some(uscc_check(&values?))
}

/// `values`: the values of the first 17 characters.
fn uscc_check(values: &[u32]) -> char {
    let sum: u32 = values.iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    char::from(USCC_CHARSET[((31 - sum % 31) % 31) as usize])
}

impl Uscc {
    /// Lower-case letters are accepted and stored upper-case. Checked in this
    /// order: length, characters, check character.
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        check_length(s, 18)?;
        check_characters(s, |_, c| uscc_value(c).is_some())?;
        let canonical = s.to_ascii_uppercase();
        let values: Vec<u32> = canonical.chars().filter_map(uscc_value).collect();
        let expected = uscc_check(&values[..17]);
        let actual = char::from(canonical.as_bytes()[17]);
        if actual != expected {
            return Err(IdentifierError::CheckCharacter { expected, actual });
        }
        Ok(Uscc(canonical))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl FromStr for Uscc {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uscc::parse(s)
    }
}
impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit statistical division code: province(2) city(2) county(2) street(3) community(3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DivisionCode(String);

impl DivisionCode {
    /// Any level (an enterprise's division).
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        check_length(s, 12)?;
        check_characters(s, |_, c| c.is_ascii_digit())?;
        province_of(s)?;
        Ok(DivisionCode(s.to_owned()))
    }
    /// A community-level code (households, postings): township and community parts non-zero.
    pub fn parse_community(s: &str) -> Result<Self, IdentifierError> {
        let code = Self::parse(s)?;
        if code.is_community() {
            Ok(code)
        } else {
            Err(IdentifierError::NotCommunity)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// First 4 digits.
    pub fn city(&self) -> &str {
        &self.0[..4]
    }
    /// First 6 digits.
    pub fn county(&self) -> &str {
        &self.0[..6]
    }
    /// First 9 digits.
    pub fn street(&self) -> &str {
        &self.0[..9]
    }
    pub fn is_community(&self) -> bool {
        &self.0[6..9] != "000" && &self.0[9..] != "000"
    }
    /// `210302001002` → `21.03.02.001.002`, the routing-key form.
    pub fn dotted(&self) -> String {
        let s = &self.0;
        format!(
            "{}.{}.{}.{}.{}",
            &s[..2],
            &s[2..4],
            &s[4..6],
            &s[6..9],
            &s[9..]
        )
    }
}
impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount of money in fen (1/100 yuan), never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Money(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("not a decimal number")]
    NotANumber,
    #[error("negative")]
    Negative,
    #[error("more than 2 decimals")]
    TooPrecise,
    #[error("too large")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);
    pub fn from_fen(fen: i64) -> Result<Self, MoneyError> {
        if fen < 0 {
            Err(MoneyError::Negative)
        } else {
            Ok(Money(fen))
        }
    }
    /// From the decimal text of a JSON number in yuan (`2100`, `100.10`, `1.5e3`).
    /// More than 2 decimals *by value* is refused (`100.100` is fine).
    ///
    /// The text must follow the JSON number grammar exactly (no `+`, no leading
    /// zeros, no surrounding space, no bare `.5` or `5.`), else `NotANumber`.
    /// Zero with a sign (`-0`, `-0.00`) is zero; any other negative value is
    /// `Negative`, checked before `TooPrecise` and `TooLarge`. The value is exact:
    /// no floating point is involved, and the exponent may be any size.
    pub fn from_yuan_str(s: &str) -> Result<Self, MoneyError> {
        let number = JsonNumber::parse(s).ok_or(MoneyError::NotANumber)?;
        let all: Vec<u8> = number
            .integer
            .iter()
            .chain(number.fraction)
            .copied()
            .collect();
        let first = all.iter().position(|&d| d != b'0');
        let Some(first) = first else {
            return Ok(Money::ZERO);
        };
        if number.negative {
            return Err(MoneyError::Negative);
        }
        let last = all.iter().rposition(|&d| d != b'0').unwrap_or(first);
        // The value is `significant × 10^(-scale)`: the mantissa's digits without
        // leading or trailing zeros, and where the decimal point falls.
        let significant = &all[first..=last];
        let trailing_zeros = (all.len() - 1 - last) as i128;
        let scale = number.fraction.len() as i128 - number.exponent - trailing_zeros;
        // fen = significant × 10^(2 - scale)
        let shift = 2 - scale;
        if shift < 0 {
            return Err(MoneyError::TooPrecise);
        }
        // i64::MAX has 19 digits, so anything longer cannot fit.
        if significant.len() as i128 + shift > 19 {
            return Err(MoneyError::TooLarge);
        }
        let fen = significant
            .iter()
            .map(|d| i64::from(d - b'0'))
            .chain(std::iter::repeat_n(0, shift as usize))
            .try_fold(0i64, |fen, d| fen.checked_mul(10)?.checked_add(d))
            .ok_or(MoneyError::TooLarge)?;
        Ok(Money(fen))
    }
    pub fn fen(self) -> i64 {
        self.0
    }
    /// For JSON output.
    pub fn yuan_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}
impl fmt::Display for Money {
    /// `2100.00`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    /// Yuan, as [`Money::from_yuan_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::from_yuan_str(s)
    }
}

/// The parts of a number in JSON syntax:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
struct JsonNumber<'a> {
    negative: bool,
    integer: &'a [u8],
    fraction: &'a [u8],
    /// Saturated far beyond any exponent that could still give a valid amount.
    exponent: i128,
}

impl<'a> JsonNumber<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let mut rest = s.as_bytes();
        let negative = rest.first() == Some(&b'-');
        if negative {
            rest = &rest[1..];
        }
        let integer = take_digits(&mut rest);
        if integer.is_empty() || (integer.len() > 1 && integer[0] == b'0') {
            return None;
        }
        let mut fraction: &[u8] = &[];
        if rest.first() == Some(&b'.') {
            rest = &rest[1..];
            fraction = take_digits(&mut rest);
            if fraction.is_empty() {
                return None;
            }
        }
        let mut exponent = 0i128;
        if let Some(b'e' | b'E') = rest.first() {
            rest = &rest[1..];
            let exponent_negative = match rest.first() {
                Some(b'-') => {
                    rest = &rest[1..];
                    true
                }
                Some(b'+') => {
                    rest = &rest[1..];
                    false
                }
                _ => false,
            };
            let digits = take_digits(&mut rest);
            if digits.is_empty() {
                return None;
            }
            // Saturate: an exponent this size already over- or underflows any
            // i64 amount, and the input length bounds the other terms.
            const LIMIT: i128 = 1 << 80;
            for &d in digits {
                exponent = (exponent * 10 + i128::from(d - b'0')).min(LIMIT);
            }
            if exponent_negative {
                exponent = -exponent;
            }
        }
        rest.is_empty().then_some(JsonNumber {
            negative,
            integer,
            fraction,
            exponent,
        })
    }
}

fn take_digits<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, tail) = rest.split_at(n);
    *rest = tail;
    digits
}

/// `household_id`, `case_id`, `notice_id`, `posting_id`: 1–64 chars of `A-Za-z0-9_.:-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        if s.is_empty() {
            return Err(IdentifierError::Key("must not be empty"));
        }
        // Characters before length, so that the length below counts ASCII only.
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Err(IdentifierError::Key(
                "may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-'",
            ));
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdentifierError::Key("must be at most 64 characters long"));
        }
        Ok(Key(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl FromStr for Key {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Key::parse(s)
    }
}
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One identifier kind over [`Key`]: a household's id cannot be passed where a
/// case's is meant.
macro_rules! key_kind {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Key);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdentifierError> {
                Key::parse(s).map(Self)
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }
        impl FromStr for $name {
            type Err = IdentifierError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

key_kind!(
    /// `household_id`: a household as the community registers it.
    HouseholdId
);
key_kind!(
    /// `case_id`: a 低保 case of the civil-affairs system.
    CaseId
);
key_kind!(
    /// `notice_id`: a layoff notice, unique per enterprise.
    NoticeId
);
key_kind!(
    /// `posting_id`: a job posting.
    PostingId
);

//! Personal data in what leaves the hub: id numbers as `210302********123X`,
//! names as `王*明`. Shared by the notifier (what it delivers) and the read
//! side (what a `masked` token sees), so both mask alike.

use serde_json::Value;

/// What a subscription may see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiPolicy {
    #[default]
    Masked,
    Full,
}

impl PiiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiPolicy::Masked => "masked",
            PiiPolicy::Full => "full",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "masked" => Some(PiiPolicy::Masked),
            "full" => Some(PiiPolicy::Full),
            _ => None,
        }
    }
}

fn is_id_char(i: usize, c: char) -> bool {
    c.is_ascii_digit() || (i == 17 && matches!(c, 'X' | 'x'))
}

/// Every run that looks like an 18-character id number, masked as
/// `IdNumber::masked` does (first 6 and last 4 kept), wherever it appears.
pub fn mask_id_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_run = i == 0 || !chars[i - 1].is_ascii_digit();
        let candidate = starts_run
            && i + 18 <= chars.len()
            && (0..18).all(|k| is_id_char(k, chars[i + k]))
            && chars.get(i + 18).is_none_or(|c| !c.is_ascii_alphanumeric());
        if candidate {
            out.extend(&chars[i..i + 6]);
            out.push_str("********");
            out.extend(&chars[i + 14..i + 18]);
            i += 18;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `王小明` → `王*明`, `王明` → `王*`, `王` → `*`.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".into(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// Mask a whole CloudEvent in place: every id number in every string, and
/// `name` in every object that describes a person (it has an `id_number`).
pub fn mask_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = mask_id_numbers(s),
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        Value::Object(map) => {
            let person = map.contains_key("id_number");
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if person && key == "name" => *s = mask_name(s),
                    _ => mask_value(v),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_keep_first_and_last() {
        assert_eq!(mask_name("王小明"), "王*明");
        assert_eq!(mask_name("欧阳小明"), "欧**明");
        assert_eq!(mask_name("王明"), "王*");
        assert_eq!(mask_name("王"), "*");
    }

    #[test]
    fn id_numbers_are_masked_in_text_and_json() {
        assert_eq!(
            mask_id_numbers("登记 21030219800301123X 为失业"),
            "登记 210302********123X 为失业"
        );
        // Longer digit runs are not id numbers.
        assert_eq!(
            mask_id_numbers("1234567890123456789"),
            "1234567890123456789"
        );
        let mut event = json!({"data": {"members": [{"id_number": "210302198003011234", "name": "王小明"}],
                                        "enterprise": {"name": "鞍山钢铁机械厂"}}});
        mask_value(&mut event);
        assert_eq!(
            event["data"]["members"][0]["id_number"],
            "210302********1234"
        );
        assert_eq!(event["data"]["members"][0]["name"], "王*明");
        assert_eq!(event["data"]["enterprise"]["name"], "鞍山钢铁机械厂");
    }
}

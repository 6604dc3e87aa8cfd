//! The reconciler's configuration: the shared `[amqp]`, `[database]`,
//! `[metrics]` and `[shutdown]` sections and its own `[rules]` and `[sweep]`.
//! Every value comes from `config/default.toml` and the layers over it; a bad
//! one is an error at start naming its key, never a silent clamp.

use dynzero_domain::ids::Money;
use dynzero_domain::retirement::FemaleCategory;
use dynzero_domain::rules::{MinimumWage, Rules};
use dynzero_runtime::config::{self, ConfigError, ensure};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

pub use dynzero_runtime::redact;
pub use dynzero_runtime::settings::{
    AmqpSettings, DatabaseSettings, MetricsSettings, ShutdownSettings,
};

/// An amount in yuan as configured: decimal text (`"2100.50"`) or a number,
/// at most 2 decimals, read exactly (a number is read from its shortest
/// decimal text, so `2100.5` is 2100.50 yuan, never a rounded float).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Yuan(pub Money);

impl<'de> Deserialize<'de> for Yuan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Yuan;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount in yuan, at most 2 decimals, e.g. \"2100.00\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Yuan, E> {
                Money::from_yuan_str(text.trim())
                    .map(Yuan)
                    .map_err(|e| E::custom(format!("{text:?} yuan: {e}")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Yuan, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Yuan, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Yuan, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_any(Text)
    }
}

impl Serialize for Yuan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Women's retirement category, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum FemaleCategorySetting {
    F55,
    F50,
}

/// A minimum wage for the divisions starting with `prefix`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MinimumWageEntry {
    pub prefix: String,
    pub yuan: Yuan,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    pub female_category: FemaleCategorySetting,
    /// 最低工资标准 for every division without a longer prefix in `minimum_wage`.
    pub minimum_wage_yuan: Yuan,
    pub minimum_wage: Vec<MinimumWageEntry>,
    /// `placement_overdue` is raised this many days into a zero-employment spell.
    pub placement_limit_days: u32,
    pub max_body_bytes: usize,
}

impl RulesSettings {
    pub fn defaults() -> Self {
        config::defaults("rules")
    }

    /// The domain's rules: the one place they are built from configuration.
    pub fn rules(&self) -> Result<Rules, ConfigError> {
        let female_category = match self.female_category {
            FemaleCategorySetting::F55 => FemaleCategory::F55,
            FemaleCategorySetting::F50 => FemaleCategory::F50,
        };
        let mut table = Vec::new();
        for entry in &self.minimum_wage {
            let prefix = &entry.prefix;
            ensure(
                (1..=12).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_digit()),
                "rules.minimum_wage.prefix",
                &format!("{prefix:?} must be 1 to 12 digits of a division code"),
            )?;
            table.push((prefix.clone(), entry.yuan.0));
        }
        ensure(
            self.placement_limit_days >= 1,
            "rules.placement_limit_days",
            "must be at least 1",
        )?;
        ensure(
            self.max_body_bytes >= 1,
            "rules.max_body_bytes",
            "must be at least 1",
        )?;
        Ok(Rules {
            minimum_wage: MinimumWage::new(self.minimum_wage_yuan.0, table),
            female_category,
            placement_limit_days: self.placement_limit_days,
        })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    pub interval_secs: u64,
}

impl SweepSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// The sections the reconciler reads. Sections it does not read are passed
/// over here; the binary's one configuration tree refuses unknown ones.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub rules: RulesSettings,
    pub sweep: SweepSettings,
    pub metrics: MetricsSettings,
    pub shutdown: ShutdownSettings,
}

impl Settings {
    /// The built-in configuration.
    pub fn defaults() -> Self {
        config::built_in_settings()
    }

    /// Every value checked, the rules built once to prove they can be.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.amqp.validate()?;
        self.database.validate()?;
        self.shutdown.validate()?;
        self.rules.rules()?;
        ensure(
            self.sweep.interval_secs >= 1,
            "sweep.interval_secs",
            "must be at least 1",
        )
    }

    /// These settings as the environment variables (`DYNZERO__SECTION__KEY`)
    /// that give them to another `dynzero` process.
    pub fn environment(&self) -> Vec<(String, String)> {
        config::environment(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_settings_are_valid() {
        let settings = Settings::defaults();
        settings.validate().unwrap();
        let rules = settings.rules.rules().unwrap();
        assert_eq!(rules, Rules::default());
    }

    #[test]
    fn wages_are_exact_and_bad_ones_are_refused() {
        let table: [(&str, Option<i64>); 7] = [
            (r#""2100.50""#, Some(210_050)),
            ("2100.5", Some(210_050)),
            ("2100", Some(210_000)),
            ("0.1", Some(10)),
            ("2100.005", None),
            ("-1", None),
            (r#""lots""#, None),
        ];
        for (json, fen) in table {
            let parsed = serde_json::from_str::<Yuan>(json).ok().map(|y| y.0.fen());
            assert_eq!(parsed, fen, "{json}");
        }
    }

    #[test]
    fn bad_rules_are_errors_naming_the_key() {
        let mut rules = RulesSettings::defaults();
        rules.placement_limit_days = 0;
        let e = rules.rules().unwrap_err().to_string();
        assert!(e.contains("rules.placement_limit_days"), "{e}");
        let mut rules = RulesSettings::defaults();
        rules.minimum_wage.push(MinimumWageEntry {
            prefix: "21x".into(),
            yuan: Yuan(Money::ZERO),
        });
        let e = rules.rules().unwrap_err().to_string();
        assert!(e.contains("rules.minimum_wage.prefix"), "{e}");
    }

    #[test]
    fn debug_and_environment_carry_the_settings() {
        let settings = Settings::defaults();
        let env = settings.environment();
        let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(value("DYNZERO__AMQP__PREFETCH").as_deref(), Some("2048"));
        assert_eq!(value("DYNZERO__AMQP__BATCH").as_deref(), Some("512"));
        assert_eq!(
            value("DYNZERO__RULES__MINIMUM_WAGE_YUAN").as_deref(),
            Some("2100.00")
        );
        assert_eq!(
            value("DYNZERO__SHUTDOWN__GRACE_SECS").as_deref(),
            Some("20")
        );
    }
}

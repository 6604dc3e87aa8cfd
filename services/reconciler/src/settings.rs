//! The reconciler's configuration. Defaults are the contract's names and limits.

use dynzero_domain::ids::Money;
use dynzero_domain::retirement::FemaleCategory;
use dynzero_domain::rules::{MinimumWage, Rules};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AmqpSettings {
    pub url: String,
    pub inbound_exchange: String,
    pub households_exchange: String,
    pub alerts_exchange: String,
    pub rejected_exchange: String,
    /// The durable quorum queue the reconciler consumes.
    pub queue: String,
    pub rejected_queue: String,
    /// Unacknowledged deliveries in flight per consumer.
    pub prefetch: u16,
    /// Consumers in one process, each with its own channel and transaction:
    /// while one batch commits, the next is being applied.
    pub consumers: u16,
    /// The hub rejects a message as `poison` once `x-delivery-count` reaches this.
    pub poison_after: u32,
    /// The broker's own last-resort limit (`x-delivery-limit`); above `poison_after`.
    pub broker_delivery_limit: u32,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            inbound_exchange: "dynzero.inbound".into(),
            households_exchange: "dynzero.households".into(),
            alerts_exchange: "dynzero.alerts".into(),
            rejected_exchange: "dynzero.rejected".into(),
            queue: "dynzero.reconciler".into(),
            rejected_queue: "dynzero.rejected".into(),
            prefetch: 64,
            consumers: 1,
            poison_after: 5,
            broker_delivery_limit: 10,
        }
    }
}

impl AmqpSettings {
    /// All names with a prefix: what tests use to stay out of each other's way.
    pub fn prefixed(prefix: &str) -> Self {
        let d = Self::default();
        Self {
            inbound_exchange: format!("{prefix}{}", d.inbound_exchange),
            households_exchange: format!("{prefix}{}", d.households_exchange),
            alerts_exchange: format!("{prefix}{}", d.alerts_exchange),
            rejected_exchange: format!("{prefix}{}", d.rejected_exchange),
            queue: format!("{prefix}{}", d.queue),
            rejected_queue: format!("{prefix}{}", d.rejected_queue),
            ..d
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/dynzero".into(),
            max_connections: 8,
        }
    }
}

/// A minimum wage for the divisions starting with `prefix`.
#[derive(Clone, Debug, Deserialize)]
pub struct MinimumWageEntry {
    pub prefix: String,
    pub yuan: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RulesSettings {
    /// `F55` (default) or `F50`.
    pub female_category: String,
    pub minimum_wage_yuan: f64,
    pub minimum_wage: Vec<MinimumWageEntry>,
    pub placement_limit_days: i64,
    pub max_body_bytes: usize,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            female_category: "F55".into(),
            minimum_wage_yuan: 2100.0,
            minimum_wage: Vec::new(),
            placement_limit_days: 30,
            max_body_bytes: dynzero_contracts::inbound::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl RulesSettings {
    pub fn rules(&self) -> anyhow::Result<Rules> {
        let money = |yuan: f64| {
            Money::from_fen((yuan * 100.0).round() as i64)
                .map_err(|e| anyhow::anyhow!("minimum wage {yuan}: {e}"))
        };
        let female_category = match self.female_category.as_str() {
            "F55" => FemaleCategory::F55,
            "F50" => FemaleCategory::F50,
            other => anyhow::bail!("rules.female_category must be F55 or F50, is {other}"),
        };
        let mut table = Vec::new();
        for entry in &self.minimum_wage {
            table.push((entry.prefix.clone(), money(entry.yuan)?));
        }
        Ok(Rules {
            minimum_wage: MinimumWage::new(money(self.minimum_wage_yuan)?, table),
            female_category,
            placement_limit_days: u32::try_from(self.placement_limit_days).map_err(|_| {
                anyhow::anyhow!(
                    "rules.placement_limit_days must be 0 or more, is {}",
                    self.placement_limit_days
                )
            })?,
        })
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct SweepSettings {
    pub interval_secs: u64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self { interval_secs: 30 }
    }
}

impl SweepSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub rules: RulesSettings,
    pub sweep: SweepSettings,
    pub metrics: MetricsSettings,
}

impl Settings {
    /// These settings as the environment variables (`DYNZERO__SECTION__KEY`)
    /// that give them to another `dynzero` process: names, connections,
    /// consumers and the metrics address. Rules and sweep stay at the
    /// process's own configuration.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let a = &self.amqp;
        vec![
            ("DYNZERO__AMQP__URL", a.url.clone()),
            (
                "DYNZERO__AMQP__INBOUND_EXCHANGE",
                a.inbound_exchange.clone(),
            ),
            (
                "DYNZERO__AMQP__HOUSEHOLDS_EXCHANGE",
                a.households_exchange.clone(),
            ),
            ("DYNZERO__AMQP__ALERTS_EXCHANGE", a.alerts_exchange.clone()),
            (
                "DYNZERO__AMQP__REJECTED_EXCHANGE",
                a.rejected_exchange.clone(),
            ),
            ("DYNZERO__AMQP__QUEUE", a.queue.clone()),
            ("DYNZERO__AMQP__REJECTED_QUEUE", a.rejected_queue.clone()),
            ("DYNZERO__AMQP__PREFETCH", a.prefetch.to_string()),
            ("DYNZERO__AMQP__CONSUMERS", a.consumers.to_string()),
            ("DYNZERO__AMQP__POISON_AFTER", a.poison_after.to_string()),
            ("DYNZERO__DATABASE__URL", self.database.url.clone()),
            ("DYNZERO__METRICS__LISTEN", self.metrics.listen.clone()),
        ]
    }
}

/// Where `dynzero run` serves `/metrics` (Prometheus text); empty: nowhere.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    pub listen: String,
}

/// A URL with its password replaced, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("amqp.url", &redact(&self.amqp.url))
            .field("amqp.queue", &self.amqp.queue)
            .field("database.url", &redact(&self.database.url))
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        let settings = Settings::default();
        assert!(!format!("{settings:?}").contains("guest:guest"));
    }
}

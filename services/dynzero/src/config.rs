//! The one configuration tree: every section of `config/default.toml`,
//! typed, layered (built-in defaults, `--config FILE`, then environment
//! variables `DYNZERO__SECTION__KEY`), every unknown key refused and every
//! value checked before anything starts. Each service gets its part.

use dynzero_reconciler::settings::{RulesSettings, SweepSettings};
use dynzero_runtime::config::{self as layers, ConfigError};
use dynzero_runtime::settings::{
    AmqpSettings, DatabaseSettings, LogSettings, MetricsSettings, ShutdownSettings,
    TelemetrySettings,
};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub rules: RulesSettings,
    pub sweep: SweepSettings,
    pub notifier: dynzero_notifier::settings::NotifierSettings,
    pub api: dynzero_api::settings::ApiSettings,
    pub retention: crate::retention::RetentionSettings,
    pub metrics: MetricsSettings,
    pub shutdown: ShutdownSettings,
    pub log: LogSettings,
    pub security: dynzero_notifier::seal::SecuritySettings,
    pub telemetry: TelemetrySettings,
}

impl Config {
    /// Load and check the layers.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let config: Config = layers::load(file)?;
        config.reconciler().validate()?;
        config.notifier.validate()?;
        config.telemetry.validate()?;
        config.retention.validate()?;
        config
            .api()
            .database
            .validate()
            .map_err(|e| match config.api.database_url.is_empty() {
                true => e,
                false => ConfigError(e.0.replace("database.url", "api.database_url")),
            })?;
        Ok(config)
    }

    /// The reconciler's part.
    pub fn reconciler(&self) -> dynzero_reconciler::settings::Settings {
        dynzero_reconciler::settings::Settings {
            amqp: self.amqp.clone(),
            database: self.database.clone(),
            rules: self.rules.clone(),
            sweep: self.sweep.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// The read side's part: its pool is `api.database_url` when set, while
    /// its migrations stay with the owner (`database.migration_url`, or the
    /// hub's `database.url`).
    pub fn api(&self) -> dynzero_api::settings::Settings {
        let database = match self.api.database_url.is_empty() {
            true => self.database.clone(),
            false => DatabaseSettings {
                url: self.api.database_url.clone(),
                migration_url: self.database.migrations_url().to_owned(),
                ..self.database.clone()
            },
        };
        dynzero_api::settings::Settings {
            api: self.api.clone(),
            amqp: self.amqp.clone(),
            database,
            rules: self.rules.clone(),
        }
    }

    /// The notifier's part.
    pub fn notifier(&self) -> dynzero_notifier::settings::Settings {
        dynzero_notifier::settings::Settings {
            amqp: self.amqp.clone(),
            database: self.database.clone(),
            notifier: self.notifier.clone(),
            shutdown: self.shutdown.clone(),
            security: self.security.clone(),
        }
    }
}

/// Keys whose values are secrets, wherever they are in the tree.
const SECRET_KEYS: [&str; 4] = ["secret", "password", "key", "token"];

/// The effective configuration as TOML, with passwords, tokens and secrets
/// replaced: what `dynzero check-config` prints.
pub fn effective_redacted(file: Option<&Path>) -> anyhow::Result<String> {
    let mut value = layers::effective(file)?;
    redact_tree(&mut value);
    Ok(toml::to_string_pretty(&value)?)
}

fn redact_tree(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if SECRET_KEYS.contains(&key.as_str()) && !s.is_empty() => {
                        *s = "***".into();
                    }
                    Value::String(s) if s.contains("://") => {
                        *s = dynzero_runtime::redact(s);
                    }
                    _ => redact_tree(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_tree),
        Value::String(s) if s.contains("://") => *s = dynzero_runtime::redact(s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_configuration_loads() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.shutdown.grace_secs, 20);
    }

    #[test]
    fn secrets_are_redacted_wherever_they_are() {
        let mut value = serde_json::json!({
            "amqp": { "urls": ["amqp://guest:guest@h:5672/%2f"] },
            "security": { "key": "c2VhbGluZy1rZXk=", "key_file": "/etc/dynzero/key" },
            "notifier": { "subscriptions": [{ "target": {
                "kind": "webhook", "url": "https://h/x?key=tok", "secret": "whsec_x" } }] }
        });
        redact_tree(&mut value);
        let text = value.to_string();
        assert!(
            text.contains("/etc/dynzero/key"),
            "a key file's path is not a secret"
        );
        for secret in ["guest:guest", "tok", "whsec_x", "c2VhbGluZy1rZXk="] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

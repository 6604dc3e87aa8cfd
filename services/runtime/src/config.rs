//! Layered configuration: `config/default.toml` (built in, the one place
//! defaults are written), an optional file, then environment variables
//! `DYNZERO__SECTION__KEY`. Every settings struct refuses keys it does not
//! know (`deny_unknown_fields`), so a misspelt key from any layer stops the
//! process at start with the key's name instead of being ignored.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The built-in defaults: the base layer of every configuration.
pub const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Environment variables `DYNZERO__SECTION__KEY` override the files.
pub const ENV_PREFIX: &str = "DYNZERO";
const ENV_SEPARATOR: &str = "__";

/// A configuration that cannot run: a bad value, an unknown key, an
/// unreadable file, or a TLS/certificate problem. `dynzero` exits with
/// status 2 and this one line; it is never retried.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(key: &str, message: &str) -> Self {
        Self(format!("{key} {message}"))
    }
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        Self(e.to_string())
    }
}

/// `Err` naming `key` unless `holds`.
pub fn ensure(holds: bool, key: &str, message: &str) -> Result<(), ConfigError> {
    if holds {
        Ok(())
    } else {
        Err(ConfigError::new(key, message))
    }
}

fn layers(file: Option<&Path>) -> Result<config::Config, ConfigError> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true),
    );
    Ok(builder.build()?)
}

/// The whole configuration tree `T` from the layers.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    Ok(layers(file)?.try_deserialize()?)
}

/// The merged layers as plain data, before typing: what `check-config` shows.
pub fn effective(file: Option<&Path>) -> Result<serde_json::Value, ConfigError> {
    Ok(layers(file)?.try_deserialize()?)
}

fn built_in() -> Result<config::Config, config::ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
}

/// One section of the built-in defaults, e.g. `defaults::<AmqpSettings>("amqp")`.
///
/// # Panics
/// If the built-in file does not hold that section; unit tests load every
/// section, so that is a defect found before release.
pub fn defaults<T: DeserializeOwned>(section: &str) -> T {
    built_in()
        .and_then(|c| c.get::<T>(section))
        .unwrap_or_else(|e| panic!("built-in config/default.toml, [{section}]: {e}"))
}

/// A service's settings (the sections it reads) from the built-in defaults.
///
/// # Panics
/// As [`defaults`].
pub fn built_in_settings<T: DeserializeOwned>() -> T {
    built_in()
        .and_then(|c| c.try_deserialize::<T>())
        .unwrap_or_else(|e| panic!("built-in config/default.toml: {e}"))
}

/// These settings as the environment variables that give them to another
/// `dynzero` process, generated from their serialized form: every scalar,
/// and lists of scalars comma-separated. Lists of tables (minimum wages by
/// division, subscriptions) cannot travel this way; give them in a file.
pub fn environment(settings: &impl Serialize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let value = serde_json::to_value(settings).unwrap_or_default();
    flatten(&value, ENV_PREFIX.to_owned(), &mut out);
    out
}

fn flatten(value: &serde_json::Value, name: String, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let name = format!("{name}{ENV_SEPARATOR}{}", key.to_ascii_uppercase());
                flatten(v, name, out);
            }
        }
        Value::Array(items) => {
            let texts: Option<Vec<String>> = items.iter().map(scalar).collect();
            if let Some(texts) = texts.filter(|t| !t.is_empty()) {
                out.push((name, texts.join(",")));
            }
        }
        Value::Null => {}
        other => out.extend(scalar(other).map(|text| (name, text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_follow_the_tree() {
        let value = serde_json::json!({
            "amqp": { "urls": ["amqp://a", "amqp://b"], "prefetch": 3 },
            "rules": { "minimum_wage": [{ "prefix": "21" }], "female_category": "F55" },
            "log": { "format": "json" }
        });
        let mut env = environment(&value);
        env.sort();
        let expected = [
            ("DYNZERO__AMQP__PREFETCH", "3"),
            ("DYNZERO__AMQP__URLS", "amqp://a,amqp://b"),
            ("DYNZERO__LOG__FORMAT", "json"),
            ("DYNZERO__RULES__FEMALE_CATEGORY", "F55"),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, expected);
    }
}

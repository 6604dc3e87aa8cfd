//! The settings sections every service shares: `[amqp]`, `[database]`,
//! `[metrics]`, `[shutdown]` and `[log]`. Their values come from
//! `config/default.toml` and the layers over it ([`crate::config`]); nothing
//! here carries a default of its own.

use crate::config::{self, ConfigError, ensure};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Brokers in order of preference: a connection goes to the first that
    /// answers, so a cluster's nodes are failed over between. From the
    /// environment, one comma-separated value.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// PEM file of the certificate authority for `amqps://` URLs, trusted
    /// besides the bundled public roots (webpki); empty: those roots only.
    pub ca_file: PathBuf,
    pub inbound_exchange: String,
    pub households_exchange: String,
    pub alerts_exchange: String,
    pub rejected_exchange: String,
    /// The durable quorum queue the reconciler consumes.
    pub queue: String,
    pub rejected_queue: String,
    /// Unacknowledged deliveries in flight per consumer.
    pub prefetch: u16,
    /// The most deliveries one batch takes; `prefetch` above it keeps the
    /// next batch arriving while one commits.
    pub batch: u16,
    /// Consumers in one process, each with its own channel and transaction:
    /// while one batch commits, the next is being applied.
    pub consumers: u16,
    /// The most batches one consumer applies at once (each in its own
    /// transaction, settled in order); 1: one at a time.
    pub pipeline: u16,
    /// Messages waiting while a batch is in flight that start the next batch
    /// beside it (up to `pipeline`); `batch` when it is lower.
    pub pipeline_from: u16,
    /// The hub rejects a message as `poison` once `x-delivery-count` reaches this.
    pub poison_after: u32,
    /// The broker's own last-resort limit (`x-delivery-limit`); above `poison_after`.
    pub broker_delivery_limit: u32,
}

impl AmqpSettings {
    /// The built-in `[amqp]` section.
    pub fn defaults() -> Self {
        config::defaults("amqp")
    }

    /// The built-in section with every name prefixed: what tests use to stay
    /// out of each other's way.
    pub fn prefixed(prefix: &str) -> Self {
        let d = Self::defaults();
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

    /// The same settings with one broker URL.
    pub fn with_url(self, url: &str) -> Self {
        Self {
            urls: vec![url.to_owned()],
            ..self
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(!self.urls.is_empty(), "amqp.urls", "names no broker")?;
        for url in &self.urls {
            ensure(
                url.starts_with("amqp://") || url.starts_with("amqps://"),
                "amqp.urls",
                &format!("{} is not an amqp:// or amqps:// URL", redact(url)),
            )?;
        }
        ensure(self.prefetch >= 1, "amqp.prefetch", "must be at least 1")?;
        ensure(self.batch >= 1, "amqp.batch", "must be at least 1")?;
        ensure(self.consumers >= 1, "amqp.consumers", "must be at least 1")?;
        ensure(self.pipeline >= 1, "amqp.pipeline", "must be at least 1")?;
        ensure(
            self.pipeline_from >= 1,
            "amqp.pipeline_from",
            "must be at least 1",
        )?;
        ensure(
            self.poison_after >= 1,
            "amqp.poison_after",
            "must be at least 1",
        )?;
        ensure(
            self.broker_delivery_limit > self.poison_after,
            "amqp.broker_delivery_limit",
            "must be above amqp.poison_after (the hub rejects first)",
        )
    }
}

/// A list, or one comma-separated string (how an environment variable gives it).
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(urls) => urls,
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Whether `dynzero run` creates its database when it does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateIfMissing {
    /// Only on this machine (loopback host or a Unix socket): a developer's or
    /// a test's server, never a shared one by accident.
    Local,
    Always,
    Never,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…`; TLS with `sslmode=verify-full&sslrootcert=FILE`.
    pub url: String,
    /// The owner role's URL, under which every migration runs; empty: `url`.
    /// With least-privilege roles (`deploy/postgres/roles.sql`) `url` is the
    /// runtime role, which may not run DDL.
    pub migration_url: String,
    pub max_connections: u32,
    pub create_if_missing: CreateIfMissing,
}

impl DatabaseSettings {
    pub fn defaults() -> Self {
        config::defaults("database")
    }

    /// The URL migrations run under: `migration_url`, or `url` when empty.
    pub fn migrations_url(&self) -> &str {
        if self.migration_url.is_empty() {
            &self.url
        } else {
            &self.migration_url
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let postgres =
            |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        ensure(
            postgres(&self.url),
            "database.url",
            "must be a postgres:// URL",
        )?;
        ensure(
            self.migration_url.is_empty() || postgres(&self.migration_url),
            "database.migration_url",
            "must be empty or a postgres:// URL",
        )?;
        ensure(
            self.max_connections >= 1,
            "database.max_connections",
            "must be at least 1",
        )
    }
}

/// Where `dynzero run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port`; empty: not served.
    pub listen: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM, the process exits within this many seconds whatever is
    /// away (Kubernetes kills at 30 by default).
    pub grace_secs: u64,
}

impl ShutdownSettings {
    pub fn defaults() -> Self {
        config::defaults("shutdown")
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.grace_secs >= 1,
            "shutdown.grace_secs",
            "must be at least 1",
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// Traces exported over OTLP (http/protobuf).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector's base URL (`/v1/traces` is added), e.g.
    /// `http://127.0.0.1:4318`; empty: no traces are exported.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let endpoint = self.otlp_endpoint.trim();
        ensure(
            endpoint.is_empty()
                || endpoint.starts_with("http://")
                || endpoint.starts_with("https://"),
            "telemetry.otlp_endpoint",
            "must be empty or an http:// or https:// URL",
        )?;
        ensure(
            !self.service_name.trim().is_empty(),
            "telemetry.service_name",
            "must not be empty",
        )
    }
}

// Debug shows URLs redacted: settings get logged.
impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("AmqpSettings")
            .field("urls", &urls)
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("batch", &self.batch)
            .field("consumers", &self.consumers)
            .field("pipeline", &self.pipeline)
            .field("pipeline_from", &self.pipeline_from)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact(&self.url))
            .field("migration_url", &redact(&self.migration_url))
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Query parameters whose values are secrets (bot tokens, passwords).
const SECRET_PARAMETERS: [&str; 6] = [
    "password",
    "key",
    "access_token",
    "token",
    "secret",
    "sslpassword",
];

/// A URL with its password and secret query values replaced, for logs and
/// `dynzero check-config`.
pub fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match (head.find("://"), head.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &head[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &head[..scheme + 3],
                    &userinfo[..colon],
                    &head[at..]
                ),
                None => head.to_string(),
            }
        }
        _ => head.to_string(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _))
                    if SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) =>
                {
                    format!("{name}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parameters.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_redacted() {
        let cases = [
            (
                "amqp://guest:secret@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            ("postgres://postgres@h/db", "postgres://postgres@h/db"),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
            ),
            (
                "postgres://u:p@h/db?sslmode=verify-full&password=x",
                "postgres://u:***@h/db?sslmode=verify-full&password=***",
            ),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }

    #[test]
    fn urls_come_as_a_list_or_comma_separated() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "one_or_many")]
            urls: Vec<String>,
        }
        let one: T = serde_json::from_str(r#"{"urls": "amqp://a, amqp://b"}"#).unwrap();
        assert_eq!(one.urls, ["amqp://a", "amqp://b"]);
        let many: T = serde_json::from_str(r#"{"urls": ["amqp://a"]}"#).unwrap();
        assert_eq!(many.urls, ["amqp://a"]);
    }

    #[test]
    fn the_built_in_sections_are_valid() {
        AmqpSettings::defaults().validate().unwrap();
        DatabaseSettings::defaults().validate().unwrap();
        ShutdownSettings::defaults().validate().unwrap();
        assert_eq!(ShutdownSettings::defaults().grace_secs, 20);
        let shown = format!(
            "{:?}",
            AmqpSettings::defaults().with_url("amqp://u:secret@h/")
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
}

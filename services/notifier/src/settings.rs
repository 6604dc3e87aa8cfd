//! The notifier's configuration: the `[notifier]` section beside the hub's
//! `[amqp]` and `[database]`.

use crate::seal::SecuritySettings;
use crate::subscription::SubscriptionSpec;
use crate::target_policy::TargetPolicy;
use dynzero_runtime::config::{self, ConfigError, ensure};
use dynzero_runtime::redact;
use dynzero_runtime::settings::{AmqpSettings, DatabaseSettings, ShutdownSettings};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSettings {
    /// The notifier's own durable queue, bound to the alerts exchange with
    /// `#`. Empty (the default): `dynzero.notifier`, with whatever prefix the
    /// reconciler's queue name has (see [`Settings::queue`]).
    pub queue: String,
    /// Unacknowledged alerts in flight.
    pub prefetch: u16,
    /// One HTTP attempt's limit.
    pub request_timeout_ms: u64,
    /// First retry delay; later ones grow exponentially, with jitter.
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_secs: u64,
    /// A delivery still failing this long after its alert arrived is given up
    /// (kept as `failed`).
    pub give_up_after_secs: u64,
    /// Attempts in flight per target URL, so one slow endpoint cannot hold
    /// up the others.
    pub per_target_concurrency: usize,
    /// Attempts in flight altogether.
    pub concurrency: usize,
    /// Messages per minute per group bot (both platforms allow about 20);
    /// what would exceed it is merged into one digest message.
    pub bot_messages_per_minute: usize,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll_ms: u64,
    /// Whether `http://` targets are allowed (tests, a receiver on the same
    /// host); `false`: `https://` only.
    pub allow_insecure_targets: bool,
    /// Targets allowed although they are on a loopback, private or
    /// link-local address, or are bots off their official host: `host`,
    /// `host:port` or a CIDR. From the environment: comma-separated.
    #[serde(deserialize_with = "dynzero_runtime::settings::one_or_many")]
    pub allowed_targets: Vec<String>,
    pub subscriptions: Vec<SubscriptionSpec>,
}

impl NotifierSettings {
    /// The built-in `[notifier]` section.
    pub fn defaults() -> Self {
        config::defaults("notifier")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            ("notifier.prefetch", u64::from(self.prefetch)),
            ("notifier.request_timeout_ms", self.request_timeout_ms),
            ("notifier.retry_min_delay_ms", self.retry_min_delay_ms),
            ("notifier.retry_max_delay_secs", self.retry_max_delay_secs),
            (
                "notifier.per_target_concurrency",
                self.per_target_concurrency as u64,
            ),
            ("notifier.concurrency", self.concurrency as u64),
            (
                "notifier.bot_messages_per_minute",
                self.bot_messages_per_minute as u64,
            ),
            ("notifier.poll_ms", self.poll_ms),
        ];
        for (key, value) in at_least_one {
            ensure(value >= 1, key, "must be at least 1")?;
        }
        self.target_policy()?;
        ensure(
            self.retry_max_delay() >= self.retry_min_delay(),
            "notifier.retry_max_delay_secs",
            "must not be shorter than notifier.retry_min_delay_ms",
        )
    }

    /// Which targets may be subscribed and sent to.
    pub fn target_policy(&self) -> Result<TargetPolicy, ConfigError> {
        TargetPolicy::new(self.allow_insecure_targets, &self.allowed_targets)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn retry_min_delay(&self) -> Duration {
        Duration::from_millis(self.retry_min_delay_ms)
    }
    pub fn retry_max_delay(&self) -> Duration {
        Duration::from_secs(self.retry_max_delay_secs)
    }
    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs(self.give_up_after_secs)
    }
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
}

/// The sections the notifier reads. Sections it does not read are passed
/// over here; the binary's one configuration tree refuses unknown ones.
#[derive(Clone, Deserialize)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub notifier: NotifierSettings,
    pub shutdown: ShutdownSettings,
    pub security: SecuritySettings,
}

impl Settings {
    /// The built-in configuration.
    pub fn defaults() -> Self {
        config::built_in_settings()
    }

    /// The notifier's queue: as configured, or `dynzero.notifier` beside the
    /// reconciler's queue (`x.dynzero.reconciler` → `x.dynzero.notifier`), so
    /// hubs that prefix their names never share a notifier queue.
    pub fn queue(&self) -> String {
        if !self.notifier.queue.is_empty() {
            return self.notifier.queue.clone();
        }
        let prefix = self
            .amqp
            .queue
            .strip_suffix("dynzero.reconciler")
            .unwrap_or_default();
        format!("{prefix}dynzero.notifier")
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("amqp", &self.amqp)
            .field("amqp.alerts_exchange", &self.amqp.alerts_exchange)
            .field("notifier.queue", &self.queue())
            .field("database.url", &redact(&self.database.url))
            .field("subscriptions", &self.notifier.subscriptions.len())
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_sits_beside_the_reconcilers() {
        let mut settings = Settings::defaults();
        assert_eq!(settings.queue(), "dynzero.notifier");
        settings.amqp = AmqpSettings::prefixed("t.hub.1.");
        assert_eq!(settings.queue(), "t.hub.1.dynzero.notifier");
        settings.notifier.queue = "mine".into();
        assert_eq!(settings.queue(), "mine");
    }

    #[test]
    fn the_built_in_section_is_valid() {
        NotifierSettings::defaults().validate().unwrap();
    }
}

//! The notifier's configuration: the `[notifier]` section beside the hub's
//! `[amqp]` and `[database]`.

use crate::subscription::SubscriptionSpec;
use dynzero_reconciler::settings::{AmqpSettings, DatabaseSettings, redact};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Deserialize)]
#[serde(default)]
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
    pub subscriptions: Vec<SubscriptionSpec>,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            queue: String::new(),
            prefetch: 64,
            request_timeout_ms: 10_000,
            retry_min_delay_ms: 1_000,
            retry_max_delay_secs: 3_600,
            give_up_after_secs: 24 * 3_600,
            per_target_concurrency: 4,
            concurrency: 64,
            bot_messages_per_minute: 20,
            poll_ms: 500,
            subscriptions: Vec::new(),
        }
    }
}

impl NotifierSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
    pub fn retry_min_delay(&self) -> Duration {
        Duration::from_millis(self.retry_min_delay_ms.max(1))
    }
    pub fn retry_max_delay(&self) -> Duration {
        Duration::from_secs(self.retry_max_delay_secs.max(1)).max(self.retry_min_delay())
    }
    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs(self.give_up_after_secs)
    }
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub notifier: NotifierSettings,
}

impl Settings {
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
            .field("amqp.url", &redact(&self.amqp.url))
            .field("amqp.alerts_exchange", &self.amqp.alerts_exchange)
            .field("notifier.queue", &self.queue())
            .field("database.url", &redact(&self.database.url))
            .field("subscriptions", &self.notifier.subscriptions.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_sits_beside_the_reconcilers() {
        let mut settings = Settings::default();
        assert_eq!(settings.queue(), "dynzero.notifier");
        settings.amqp = AmqpSettings::prefixed("t.hub.1.");
        assert_eq!(settings.queue(), "t.hub.1.dynzero.notifier");
        settings.notifier.queue = "mine".into();
        assert_eq!(settings.queue(), "mine");
    }
}

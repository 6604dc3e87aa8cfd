//! The read side's configuration: the `[api]` section beside the hub's
//! `[amqp]`, `[database]` and `[rules]`.

use dynzero_reconciler::settings::{AmqpSettings, DatabaseSettings, RulesSettings, redact};
use serde::Deserialize;
use std::fmt;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Where the API and the board listen (`DYNZERO__API__LISTEN`).
    pub listen: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
        }
    }
}

/// What the read side needs: its own section, the database it reads, the
/// broker a replay publishes to, and the placement limit the ledger's
/// "overdue" uses (the same `rules.placement_limit_days` the hub alerts on).
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub api: ApiSettings,
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub rules: RulesSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api.listen", &self.api.listen)
            .field("amqp.url", &redact(&self.amqp.url))
            .field("amqp.inbound_exchange", &self.amqp.inbound_exchange)
            .field("database.url", &redact(&self.database.url))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_in_the_api_section_are_refused() {
        let ok: ApiSettings = serde_json::from_str(r#"{"listen": "0.0.0.0:9000"}"#).unwrap();
        assert_eq!(ok.listen, "0.0.0.0:9000");
        assert!(serde_json::from_str::<ApiSettings>(r#"{"listne": "x"}"#).is_err());
    }
}

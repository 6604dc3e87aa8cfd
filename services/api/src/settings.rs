//! The read side's configuration: the `[api]` section beside the hub's
//! `[amqp]`, `[database]` and `[rules]`.

use dynzero_reconciler::settings::RulesSettings;
use dynzero_runtime::redact;
use dynzero_runtime::settings::{AmqpSettings, DatabaseSettings};
use serde::Deserialize;
use std::fmt;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Where the API and the board listen (`DYNZERO__API__LISTEN`).
    pub listen: String,
    /// The read-mostly role's `postgres://` URL; empty: `database.url`.
    pub database_url: String,
}

/// What the read side needs: its own section, the database it reads, the
/// broker a replay publishes to, and the placement limit the ledger's
/// "overdue" uses (the same `rules.placement_limit_days` the hub alerts on).
#[derive(Clone, Deserialize)]
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
            .field("api.database_url", &redact(&self.api.database_url))
            .field(
                "amqp.urls",
                &self.amqp.urls.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
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
        let ok: ApiSettings =
            serde_json::from_str(r#"{"listen": "0.0.0.0:9000", "database_url": ""}"#).unwrap();
        assert_eq!(ok.listen, "0.0.0.0:9000");
        assert!(serde_json::from_str::<ApiSettings>(r#"{"listne": "x"}"#).is_err());
    }
}

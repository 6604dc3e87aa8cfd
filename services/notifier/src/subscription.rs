//! Subscriptions: a division prefix, the alert kinds wanted, a target and a
//! PII policy. Parsed once (from the configuration, the command line or the
//! database) into values that can only hold valid subscriptions.

use crate::pii::PiiPolicy;
use crate::sign::{SecretError, WebhookSecret};
use dynzero_domain::alerts::AlertKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The first 4, 6, 9 or 12 digits of a division code: a city, a county or
/// district, a street, a community.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivisionPrefix(String);

impl DivisionPrefix {
    pub fn parse(s: &str) -> Result<Self, SubscriptionError> {
        if matches!(s.len(), 4 | 6 | 9 | 12) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(SubscriptionError::Division(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn covers(&self, division_code: &str) -> bool {
        division_code.starts_with(&self.0)
    }

    /// The binding key an AMQP subscriber declares on `dynzero.alerts` for
    /// every alert of this division (routing keys are `<kind>.<dotted code>`).
    pub fn binding_key(&self, kind: Option<AlertKind>) -> String {
        let s = &self.0;
        let parts = [
            &s[..2],
            &s[2..4],
            s.get(4..6).unwrap_or(""),
            s.get(6..9).unwrap_or(""),
            s.get(9..12).unwrap_or(""),
        ];
        let given: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let rest = match given.len() {
            5 => String::new(),
            4 => ".*".into(),
            _ => ".#".into(),
        };
        format!(
            "{}.{}{rest}",
            kind.map_or("*", AlertKind::as_str),
            given.join(".")
        )
    }
}

/// Where a subscription's alerts go.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An HTTP endpoint receiving the CloudEvent, signed per Standard Webhooks.
    Webhook { url: String, secret: String },
    /// A WeCom (企业微信) group robot's webhook URL.
    Wecom { url: String },
    /// A DingTalk custom robot's webhook URL, and its signing secret if set.
    Dingtalk {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// Nothing to deliver: the subscriber binds its own queue.
    Amqp,
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Webhook { .. } => TargetKind::Webhook,
            Target::Wecom { .. } => TargetKind::Wecom,
            Target::Dingtalk { .. } => TargetKind::Dingtalk,
            Target::Amqp => TargetKind::Amqp,
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            Target::Webhook { url, .. } | Target::Wecom { url } | Target::Dingtalk { url, .. } => {
                Some(url)
            }
            Target::Amqp => None,
        }
    }

    fn check(&self) -> Result<(), SubscriptionError> {
        if let Some(url) = self.url()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(SubscriptionError::Url(redact_url(url)));
        }
        if let Target::Webhook { secret, .. } = self {
            WebhookSecret::parse(secret)?;
        }
        Ok(())
    }
}

/// A URL without its query string (bot URLs carry their access token there).
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?***"),
        None => url.to_string(),
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Amqp => f.write_str("amqp"),
            other => write!(
                f,
                "{} {}",
                other.kind().as_str(),
                redact_url(other.url().unwrap_or_default())
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Webhook,
    Wecom,
    Dingtalk,
    Amqp,
}

impl TargetKind {
    pub const DELIVERED: [TargetKind; 3] =
        [TargetKind::Webhook, TargetKind::Wecom, TargetKind::Dingtalk];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Wecom => "wecom",
            TargetKind::Dingtalk => "dingtalk",
            TargetKind::Amqp => "amqp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TargetKind::Webhook,
            TargetKind::Wecom,
            TargetKind::Dingtalk,
            TargetKind::Amqp,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Group bots: chat messages, rate limited, always masked.
    pub fn is_bot(self) -> bool {
        matches!(self, TargetKind::Wecom | TargetKind::Dingtalk)
    }
}

/// A subscription as written in the configuration:
///
/// ```toml
/// [[notifier.subscriptions]]
/// name = "tiexi-street-001"
/// division = "210302001"
/// kinds = ["zero_employment_new", "household_at_risk"]   # default: all
/// pii = "masked"                                         # or "full"
/// target = { kind = "webhook", url = "https://…", secret = "whsec_…" }
/// ```
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub name: String,
    pub division: String,
    #[serde(default)]
    pub kinds: Vec<String>,
    pub target: Target,
    #[serde(default)]
    pub pii: PiiPolicy,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriptionError {
    #[error("a subscription needs a name")]
    Name,
    #[error("division prefix {0:?} is not 4, 6, 9 or 12 digits")]
    Division(String),
    #[error("unknown alert kind {0:?}")]
    Kind(String),
    #[error("target URL {0} is not http(s)")]
    Url(String),
    #[error("webhook secret: {0}")]
    Secret(#[from] SecretError),
}

/// A valid subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    name: String,
    prefix: DivisionPrefix,
    /// Empty: every kind.
    kinds: Vec<AlertKind>,
    target: Target,
    pii: PiiPolicy,
}

impl Subscription {
    pub fn parse(spec: SubscriptionSpec) -> Result<Self, SubscriptionError> {
        if spec.name.trim().is_empty() {
            return Err(SubscriptionError::Name);
        }
        let prefix = DivisionPrefix::parse(&spec.division)?;
        let kinds = spec
            .kinds
            .iter()
            .map(|k| AlertKind::parse(k).ok_or_else(|| SubscriptionError::Kind(k.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        spec.target.check()?;
        Ok(Self {
            name: spec.name,
            prefix,
            kinds,
            target: spec.target,
            pii: spec.pii,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn prefix(&self) -> &DivisionPrefix {
        &self.prefix
    }
    pub fn kinds(&self) -> &[AlertKind] {
        &self.kinds
    }
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Group bots are always masked, whatever the subscription asked for.
    pub fn pii(&self) -> PiiPolicy {
        if self.target.kind().is_bot() {
            PiiPolicy::Masked
        } else {
            self.pii
        }
    }

    pub fn wants(&self, kind: AlertKind, division_code: &str) -> bool {
        self.prefix.covers(division_code) && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }

    pub fn kind_words(&self) -> Vec<String> {
        self.kinds.iter().map(|k| k.as_str().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(division: &str, target: Target) -> SubscriptionSpec {
        SubscriptionSpec {
            name: "s".into(),
            division: division.into(),
            kinds: vec![],
            target,
            pii: PiiPolicy::Full,
        }
    }

    #[test]
    fn prefixes_are_division_levels() {
        for ok in ["2103", "210302", "210302001", "210302001002"] {
            assert!(DivisionPrefix::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["21", "21030", "2103020010", "21030200100X", ""] {
            assert!(DivisionPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binding_keys_follow_the_readme() {
        let key = |p: &str| DivisionPrefix::parse(p).unwrap().binding_key(None);
        assert_eq!(key("210302001002"), "*.21.03.02.001.002");
        assert_eq!(key("210302001"), "*.21.03.02.001.*");
        assert_eq!(key("210302"), "*.21.03.02.#");
        assert_eq!(key("2103"), "*.21.03.#");
    }

    #[test]
    fn bots_are_always_masked_and_secrets_checked() {
        let bot = Subscription::parse(spec(
            "210302",
            Target::Wecom {
                url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k".into(),
            },
        ))
        .unwrap();
        assert_eq!(bot.pii(), PiiPolicy::Masked);
        assert!(!format!("{bot:?}").contains("key=k"));
        let bad = spec(
            "210302",
            Target::Webhook {
                url: "https://x".into(),
                secret: "nope".into(),
            },
        );
        assert_eq!(
            Subscription::parse(bad),
            Err(SubscriptionError::Secret(SecretError::Prefix))
        );
        let hook = Subscription::parse(spec(
            "210302",
            Target::Webhook {
                url: "https://x".into(),
                secret: "whsec_c2VjcmV0".into(),
            },
        ))
        .unwrap();
        assert_eq!(hook.pii(), PiiPolicy::Full);
        assert!(hook.wants(AlertKind::JobMatch, "210302001002"));
        assert!(!hook.wants(AlertKind::JobMatch, "210303001002"));
    }
}

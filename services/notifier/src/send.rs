//! One HTTP attempt and what it means: delivered, try again later, or a
//! permanent failure.

use crate::render;
use crate::settings::NotifierSettings;
use crate::sign::{WebhookSecret, dingtalk_sign};
use crate::subscription::Target;
use crate::target_policy::{GuardedResolver, RefusedAddress, Route, TargetPolicy};
use chrono::Utc;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Bot error codes that mean "too many messages": retry later, not failure.
const DINGTALK_THROTTLED: i64 = 130101;
const WECOM_THROTTLED: i64 = 45009;
/// How long to wait after a bot said it is throttled, when it says nothing more.
const BOT_THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// A timeout, a connection error, 408, 429, 5xx, a bot's throttling.
    Retry {
        status: Option<u16>,
        /// What the server asked for (`Retry-After`), if anything.
        after: Option<Duration>,
        error: String,
    },
    /// Other 4xx, a bot's error code: trying again would not help.
    Permanent {
        status: Option<u16>,
        error: String,
    },
}

/// What to send: the alert CloudEvent to a webhook, or a markdown message to a bot.
pub enum Message<'a> {
    /// The CloudEvent's bytes (already masked if the subscription is).
    Event {
        id: &'a str,
        body: &'a [u8],
        /// Sent as the `traceparent` header.
        traceparent: Option<&'a str>,
    },
    Markdown {
        title: &'a str,
        text: &'a str,
    },
}

/// The HTTP side: two clients that never follow a redirect — one for
/// targets reached by public address (its DNS answers filtered by the
/// policy), one for allow-listed targets.
#[derive(Clone)]
pub struct Sender {
    public: reqwest::Client,
    listed: reqwest::Client,
    policy: Arc<TargetPolicy>,
    /// A `Retry-After` asking for longer is taken as this: past it the
    /// delivery is given up anyway.
    give_up_after: Duration,
}

impl Sender {
    pub fn new(settings: &NotifierSettings) -> anyhow::Result<Self> {
        let policy = Arc::new(settings.target_policy()?);
        let timeout = settings.request_timeout();
        let client = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("dynzero-notifier")
        };
        Ok(Self {
            public: client()
                .dns_resolver(Arc::new(GuardedResolver {
                    policy: policy.clone(),
                }))
                .build()?,
            listed: client().build()?,
            policy,
            give_up_after: settings.give_up_after(),
        })
    }

    #[tracing::instrument(skip_all, fields(target_kind = target.kind().as_str()))]
    pub async fn send(&self, target: &Target, message: Message<'_>) -> Attempt {
        let client = match self.policy.check(target) {
            Ok(Route::Public) => &self.public,
            Ok(Route::Listed) => &self.listed,
            Err(e) => {
                return Attempt::Permanent {
                    status: None,
                    error: e.to_string(),
                };
            }
        };
        let request = match (target, message) {
            (
                Target::Webhook { url, secret },
                Message::Event {
                    id,
                    body,
                    traceparent,
                },
            ) => {
                let secret = match WebhookSecret::parse(secret) {
                    Ok(s) => s,
                    Err(e) => {
                        return Attempt::Permanent {
                            status: None,
                            error: format!("webhook secret: {e}"),
                        };
                    }
                };
                let timestamp = Utc::now().timestamp();
                let request = client
                    .post(url)
                    .header("content-type", "application/cloudevents+json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", secret.sign(id, timestamp, body))
                    .body(body.to_vec());
                match traceparent {
                    Some(traceparent) => request.header("traceparent", traceparent),
                    None => request,
                }
            }
            (Target::Wecom { url }, Message::Markdown { title, text }) => {
                client.post(url).json(&render::wecom_body(title, text))
            }
            (Target::Dingtalk { url, secret }, Message::Markdown { title, text }) => {
                let mut request = client.post(url);
                if let Some(secret) = secret {
                    let timestamp = Utc::now().timestamp_millis();
                    request = request.query(&[
                        ("timestamp", timestamp.to_string()),
                        ("sign", dingtalk_sign(secret, timestamp)),
                    ]);
                }
                request.json(&render::dingtalk_body(title, text))
            }
            _ => {
                return Attempt::Permanent {
                    status: None,
                    error: "nothing to send to this target".into(),
                };
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(refused) = refused_address(&e) {
                    return Attempt::Permanent {
                        status: None,
                        error: refused.to_string(),
                    };
                }
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                // Bot URLs carry their access token: never in logs or the table.
                let e = e.without_url();
                return Attempt::Retry {
                    status: None,
                    after: None,
                    error: format!("{what}: {e}"),
                };
            }
        };
        let status = response.status();
        let after = retry_after(response.headers(), self.give_up_after);
        if status.is_success() {
            if target.kind().is_bot() {
                return match response.bytes().await {
                    Ok(body) => bot_reply(status.as_u16(), &body),
                    Err(e) => Attempt::Retry {
                        status: Some(status.as_u16()),
                        after: None,
                        error: format!("bot reply unreadable: {}", e.without_url()),
                    },
                };
            }
            return Attempt::Delivered {
                status: status.as_u16(),
            };
        }
        classify(status, after)
    }
}

/// The policy's refusal of every address a host name resolved to, if that
/// is why the request failed.
fn refused_address(e: &reqwest::Error) -> Option<&RefusedAddress> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<RefusedAddress>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

/// An HTTP status that is not 2xx.
pub fn classify(status: StatusCode, after: Option<Duration>) -> Attempt {
    let code = status.as_u16();
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Attempt::Retry {
            status: Some(code),
            after,
            error: format!("HTTP {code}"),
        }
    } else if status.is_redirection() {
        // Following it would send the signed body, or a bot's token,
        // wherever the target points: never.
        Attempt::Permanent {
            status: Some(code),
            error: format!("HTTP {code}: redirect not followed"),
        }
    } else {
        Attempt::Permanent {
            status: Some(code),
            error: format!("HTTP {code}"),
        }
    }
}

/// Both bots answer 200 with `{"errcode": …, "errmsg": …}`; a reply that
/// is not that may not have been delivered, so it is tried again.
pub fn bot_reply(status: u16, body: &[u8]) -> Attempt {
    let unreadable = || Attempt::Retry {
        status: Some(status),
        after: None,
        error: "bot reply unreadable: not {\"errcode\": …}".into(),
    };
    let Ok(reply) = serde_json::from_slice::<serde_json::Value>(body) else {
        return unreadable();
    };
    match reply["errcode"].as_i64() {
        None => unreadable(),
        Some(0) => Attempt::Delivered { status },
        Some(code @ (DINGTALK_THROTTLED | WECOM_THROTTLED)) => Attempt::Retry {
            status: Some(status),
            after: Some(BOT_THROTTLE_PAUSE),
            error: format!("bot throttled (errcode {code})"),
        },
        Some(code) => Attempt::Permanent {
            status: Some(status),
            error: format!(
                "bot errcode {code}: {}",
                reply["errmsg"].as_str().unwrap_or_default()
            ),
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date, at most `limit`: a value
/// past it (however many digits) means waiting until the delivery is given up.
pub fn retry_after(headers: &reqwest::header::HeaderMap, limit: Duration) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(limit));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (at.with_timezone(&Utc) - Utc::now())
        .to_std()
        .unwrap_or_default();
    Some(wait.min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        for retry in [408, 429, 500, 502, 503] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(retry).unwrap(), None),
                    Attempt::Retry { .. }
                ),
                "{retry}"
            );
        }
        for permanent in [400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(permanent).unwrap(), None),
                    Attempt::Permanent { .. }
                ),
                "{permanent}"
            );
        }
    }

    #[test]
    fn bot_throttling_is_retried_other_codes_fail() {
        assert_eq!(
            bot_reply(200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Attempt::Delivered { status: 200 }
        );
        assert!(matches!(
            bot_reply(200, br#"{"errcode":130101}"#),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            bot_reply(200, br#"{"errcode":45009}"#),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            bot_reply(200, br#"{"errcode":310000,"errmsg":"sign not match"}"#),
            Attempt::Permanent { .. }
        ));
    }

    #[test]
    fn an_unreadable_bot_reply_is_retried() {
        for body in [
            &b""[..],
            b"<html>gateway</html>",
            b"{\"ok\":true}",
            b"{\"errcode\":",
        ] {
            assert!(
                matches!(bot_reply(200, body), Attempt::Retry { .. }),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn redirects_are_permanent_failures() {
        for code in [301, 302, 303, 307, 308] {
            let attempt = classify(StatusCode::from_u16(code).unwrap(), None);
            assert!(
                matches!(&attempt, Attempt::Permanent { error, .. } if error.contains("redirect not followed")),
                "{code}: {attempt:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_clamped_to_the_give_up_limit() {
        let limit = Duration::from_secs(86_400);
        let after = |v: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&headers, limit)
        };
        let in_a_year = (Utc::now() + chrono::Duration::days(365)).to_rfc2822();
        let table = [
            ("120", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            ("86401", Some(limit)),
            ("18446744073709551615", Some(limit)),
            ("99999999999999999999999999999999", Some(limit)),
            (in_a_year.as_str(), Some(limit)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
        ];
        for (value, want) in table {
            assert_eq!(after(value), want, "{value}");
        }
    }
}

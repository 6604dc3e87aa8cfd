//! One HTTP attempt and what it means: delivered, try again later, or a
//! permanent failure.

use crate::render;
use crate::sign::{WebhookSecret, dingtalk_sign};
use crate::subscription::Target;
use chrono::Utc;
use reqwest::StatusCode;
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

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent("dynzero-notifier")
            .build()?;
        Ok(Self { client })
    }

    #[tracing::instrument(skip_all, fields(target_kind = target.kind().as_str()))]
    pub async fn send(&self, target: &Target, message: Message<'_>) -> Attempt {
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
                let request = self
                    .client
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
                self.client.post(url).json(&render::wecom_body(title, text))
            }
            (Target::Dingtalk { url, secret }, Message::Markdown { title, text }) => {
                let mut request = self.client.post(url);
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
        let after = retry_after(response.headers());
        if status.is_success() {
            if target.kind().is_bot() {
                let body = response.bytes().await.unwrap_or_default();
                return bot_reply(status.as_u16(), &body);
            }
            return Attempt::Delivered {
                status: status.as_u16(),
            };
        }
        classify(status, after)
    }
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
    } else {
        Attempt::Permanent {
            status: Some(code),
            error: format!("HTTP {code}"),
        }
    }
}

/// Both bots answer 200 with `{"errcode": …, "errmsg": …}`.
pub fn bot_reply(status: u16, body: &[u8]) -> Attempt {
    let reply: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match reply["errcode"].as_i64() {
        None | Some(0) => Attempt::Delivered { status },
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

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
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
}

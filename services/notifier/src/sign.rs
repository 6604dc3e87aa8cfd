//! Signatures: Standard Webhooks (`webhook-signature: v1,<base64>`) and the
//! DingTalk custom robot's `sign` query parameter.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// A Standard Webhooks signing secret, `whsec_<base64>`: the key is the
/// decoded bytes after the prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    #[error("the part after whsec_ is not base64")]
    Base64,
    #[error("the key is empty")]
    Empty,
}

impl WebhookSecret {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// DingTalk's robot signature: base64(HMAC-SHA256(key = secret,
/// "{timestamp}\n{secret}")), `timestamp` in milliseconds. The caller puts it
/// in the query string URL-encoded.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_need_the_prefix_and_base64() {
        assert_eq!(WebhookSecret::parse("abc"), Err(SecretError::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_!!"), Err(SecretError::Base64));
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Empty));
        assert!(WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(!format!("{:?}", WebhookSecret::parse("whsec_c2VjcmV0").unwrap()).contains("c2V"));
    }

    /// The Standard Webhooks specification's own example.
    #[test]
    fn standard_webhooks_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}

#[cfg(test)]
mod dingtalk_tests {
    /// Computed independently (Python `hmac`, `hashlib`, `base64`).
    #[test]
    fn dingtalk_vector() {
        assert_eq!(
            super::dingtalk_sign("SEC0123456789abcdef", 1_700_000_000_000),
            "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
        );
    }
}

//! Secrets sealed at rest: a subscription's target (its webhook secret, the
//! token in a bot's URL, DingTalk's signing secret) is stored encrypted with
//! AES-256-GCM under the key of `[security]`, bound to the subscription's
//! name; delivery rows keep a keyed hash of the target (HMAC-SHA256 under a
//! key derived from the sealing key), never its URL.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dynzero_runtime::config::{self, ConfigError};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;

/// The format of a sealed value: its first byte, so a later format can be told apart.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
/// What the hashing key is derived with: changing it changes every target hash.
const HASH_KEY_CONTEXT: &[u8] = b"dynzero target hash v1";

/// The `[security]` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// A file holding the base64 of 32 random bytes (`dynzero keys generate`).
    pub key_file: String,
    /// The key itself, base64 (for `DYNZERO__SECURITY__KEY`); wins over `key_file`.
    pub key: String,
}

impl SecuritySettings {
    /// The built-in `[security]` section.
    pub fn defaults() -> Self {
        config::defaults("security")
    }

    /// The configured key, or `None` when neither key nor key file is set.
    pub fn sealing_key(&self) -> Result<Option<SealingKey>, ConfigError> {
        if !self.key.trim().is_empty() {
            return SealingKey::from_base64(&self.key)
                .map(Some)
                .map_err(|e| ConfigError::new("security.key", &e));
        }
        if self.key_file.trim().is_empty() {
            return Ok(None);
        }
        SealingKey::read(std::path::Path::new(&self.key_file))
            .map(Some)
            .map_err(|e| ConfigError::new("security.key_file", &e))
    }
}

impl fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecuritySettings")
            .field("key_file", &self.key_file)
            .field("key", &if self.key.is_empty() { "" } else { "***" })
            .finish()
    }
}

/// A 256-bit key: seals targets and derives the target-hashing key.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    hash_key: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a sealed value that is not of this format")]
    Format,
    #[error("the key does not open this value (another key, or the value was altered)")]
    Open,
}

impl SealingKey {
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any size");
        mac.update(HASH_KEY_CONTEXT);
        Self {
            cipher: Aes256Gcm::new(key.into()),
            hash_key: mac.finalize().into_bytes().into(),
        }
    }

    /// The base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("is {} bytes, not 32", b.len()))?;
        Ok(Self::from_bytes(&key))
    }

    /// A key file: the base64 of 32 bytes, surrounding whitespace ignored.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
        Self::from_base64(&text).map_err(|e| format!("{}: the key {e}", path.display()))
    }

    /// A fresh random key, as the base64 a key file holds.
    pub fn generate() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// `VERSION || nonce || ciphertext+tag`; `bound_to` (the subscription's
    /// name) is authenticated, so a sealed target cannot be moved to another row.
    pub fn seal(&self, bound_to: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message of this size");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, bound_to: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Format)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }

    /// The keyed hash delivery rows keep instead of a target's URL: equal
    /// for equal URLs (so per-target limits still group them), and telling
    /// nothing of the URL to whoever reads the table without the key.
    pub fn target_hash(&self, url: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key)
            .expect("HMAC takes keys of any size");
        mac.update(url.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("t1:{hex}")
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&SealingKey::generate()).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_name() {
        let (k1, k2) = (key(), key());
        let sealed = k1.seal("street", b"whsec_c2VjcmV0");
        assert!(
            !sealed.windows(6).any(|w| w == b"whsec_"),
            "nothing of the plaintext shows"
        );
        assert_eq!(k1.open("street", &sealed).unwrap(), b"whsec_c2VjcmV0");
        assert_eq!(k2.open("street", &sealed), Err(SealError::Open));
        assert_eq!(k1.open("district", &sealed), Err(SealError::Open));
        assert_eq!(k1.open("street", &sealed[..5]), Err(SealError::Format));
        assert_ne!(
            k1.seal("street", b"x"),
            k1.seal("street", b"x"),
            "fresh nonces"
        );
    }

    #[test]
    fn target_hashes_are_keyed_and_stable() {
        let (k1, k2) = (key(), key());
        let url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-1";
        assert_eq!(k1.target_hash(url), k1.target_hash(url));
        assert_ne!(k1.target_hash(url), k2.target_hash(url));
        assert!(!k1.target_hash(url).contains("K-1"));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(SealingKey::from_base64("not base64!").is_err());
        assert_eq!(
            SealingKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
            "is 16 bytes, not 32"
        );
        let settings = SecuritySettings {
            key_file: String::new(),
            key: String::new(),
        };
        assert!(settings.sealing_key().unwrap().is_none());
        let missing = SecuritySettings {
            key_file: "/nonexistent/dynzero.key".into(),
            key: String::new(),
        };
        let e = missing.sealing_key().unwrap_err().to_string();
        assert!(e.contains("security.key_file"), "{e}");
        assert!(!format!("{:?}", key()).contains('='));
    }
}

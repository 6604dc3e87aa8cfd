//! Who may read what: tokens (kept as hashes), their division scope, role
//! and PII policy, and the audit of full-PII reads.

use anyhow::Context;
use chrono::{DateTime, Utc};
pub use dynzero_contracts::pii::PiiPolicy;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::fmt;

/// A division prefix: 4 (city), 6 (district), 9 (street) or 12 (community)
/// digits. A token's scope, and the `division` parameter of a request.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Division(String);

/// The lengths of the four levels, city to community.
pub const LEVELS: [usize; 4] = [4, 6, 9, 12];

impl Division {
    pub fn parse(s: &str) -> Option<Division> {
        (LEVELS.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Division(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether `code` (any division code or prefix) lies under this one.
    pub fn covers(&self, code: &str) -> bool {
        code.starts_with(&self.0)
    }
    /// The length of the next level down (`None` for a community).
    pub fn child_len(&self) -> Option<usize> {
        LEVELS.iter().copied().find(|&l| l > self.0.len())
    }
    /// The half-open range `[self, upper)` of division codes under this
    /// prefix, for an index range scan (codes are digits; `:` follows `9`).
    pub fn upper(&self) -> String {
        format!("{}:", self.0)
    }
}

impl fmt::Display for Division {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Division {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Division({})", self.0)
    }
}

/// `worker` reads; `supervisor` also reads rejections; `admin` also replays
/// them and manages tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Worker,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "worker" => Some(Role::Worker),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The holder of a valid token, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scope: Division,
    pub role: Role,
    pub pii: PiiPolicy,
}

impl Caller {
    pub fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// A token as `dynzero tokens list` shows it (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub caller: Caller,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token: `dz_` and 256 random bits in hex.
pub fn new_token() -> String {
    format!("dz_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Store a new token for `caller` and return it; the name must be new.
pub async fn add_token(pool: &PgPool, caller: &Caller) -> anyhow::Result<String> {
    let token = new_token();
    let inserted = sqlx::query(
        "INSERT INTO api_token (name, token_hash, division, role, pii)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&caller.name)
    .bind(token_hash(&token))
    .bind(caller.scope.as_str())
    .bind(caller.role.as_str())
    .bind(caller.pii.as_str())
    .execute(pool)
    .await
    .context("storing the token")?;
    anyhow::ensure!(
        inserted.rows_affected() == 1,
        "a token named {:?} exists already",
        caller.name
    );
    Ok(token)
}

/// Revoke a token by name; false if there is no such live token.
pub async fn revoke_token(pool: &PgPool, name: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE api_token SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

type TokenRow = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn caller_of(name: String, division: &str, role: &str, pii: &str) -> anyhow::Result<Caller> {
    Ok(Caller {
        scope: Division::parse(division).context("stored division")?,
        role: Role::parse(role).context("stored role")?,
        pii: PiiPolicy::parse(pii).context("stored pii")?,
        name,
    })
}

pub async fn list_tokens(pool: &PgPool) -> anyhow::Result<Vec<TokenInfo>> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT name, division, role, pii, created_at, revoked_at FROM api_token ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(name, division, role, pii, created_at, revoked_at)| {
            Ok(TokenInfo {
                caller: caller_of(name, &division, &role, &pii)?,
                created_at,
                revoked_at,
            })
        })
        .collect()
}

/// A token revoked, changed or deleted is announced here (a trigger on `api_token`).
pub const TOKEN_CHANNEL: &str = "dynzero_token";

/// How long a valid token's caller is kept without asking the database
/// again. Revocations do not wait for it: each one is announced on channel
/// `dynzero_token` and empties every API process's cache at once; this only
/// bounds how stale an entry can be if an announcement were missed.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The callers of tokens recently found valid, by token hash: a request
/// then costs no token lookup. Emptied whenever a token changes
/// (`forget_all`, on the `dynzero_token` announcement) and whenever the
/// listener that hears those announcements reconnects.
#[derive(Default)]
pub struct TokenCache {
    entries: std::sync::RwLock<TokenEntries>,
}

#[derive(Default)]
struct TokenEntries {
    /// Bumped by every `forget_all`: a lookup that began before it must not
    /// store what it read.
    generation: u64,
    callers: std::collections::HashMap<String, (Caller, std::time::Instant)>,
}

impl TokenCache {
    /// The caller of a valid token, from the cache or the database.
    pub async fn authenticate(&self, pool: &PgPool, token: &str) -> anyhow::Result<Option<Caller>> {
        let hash = token_hash(token);
        let generation = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some((caller, at)) = entries.callers.get(&hash)
                && at.elapsed() < TOKEN_CACHE_TTL
            {
                return Ok(Some(caller.clone()));
            }
            entries.generation
        };
        let caller = authenticate_hash(pool, &hash).await?;
        if let Some(caller) = &caller {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            if entries.generation == generation {
                entries
                    .callers
                    .insert(hash, (caller.clone(), std::time::Instant::now()));
            }
        }
        Ok(caller)
    }

    /// Drop every kept caller: a token was revoked or changed.
    pub fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.generation += 1;
        entries.callers.clear();
    }
}

/// The live token with this value, if any, asked of the database (the board's
/// login; requests go through [`TokenCache`]).
pub async fn authenticate(pool: &PgPool, token: &str) -> anyhow::Result<Option<Caller>> {
    authenticate_hash(pool, &token_hash(token)).await
}

async fn authenticate_hash(pool: &PgPool, hash: &str) -> anyhow::Result<Option<Caller>> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT name, division, role, pii FROM api_token
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    row.map(|(name, division, role, pii)| caller_of(name, &division, &role, &pii))
        .transpose()
}

/// Record that `caller` read these households with full PII (nothing for a
/// masked caller).
pub async fn audit_reads(
    pool: &PgPool,
    caller: &Caller,
    households: &[String],
) -> anyhow::Result<()> {
    if caller.pii != PiiPolicy::Full || households.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO api_audit (token_name, household_id) SELECT $1, h FROM UNNEST($2::text[]) AS h",
    )
    .bind(&caller.name)
    .bind(households)
    .execute(pool)
    .await
    .context("recording the full-PII read")?;
    Ok(())
}

/// One audit row: (token name, time, household).
pub async fn audit_log(
    pool: &PgPool,
    limit: i64,
) -> anyhow::Result<Vec<(String, DateTime<Utc>, String)>> {
    Ok(sqlx::query_as(
        "SELECT token_name, read_at, household_id FROM api_audit ORDER BY seq DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisions_are_four_six_nine_or_twelve_digits() {
        for ok in ["2103", "210302", "210302001", "210302001001"] {
            assert!(Division::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "21", "21030", "2103020010011", "21a3", "２１０３"] {
            assert!(Division::parse(bad).is_none(), "{bad}");
        }
        let street = Division::parse("210302001").unwrap();
        assert_eq!(street.child_len(), Some(12));
        assert!(street.covers("210302001004"));
        assert!(!street.covers("210302002004"));
        assert_eq!(Division::parse("210302001001").unwrap().child_len(), None);
    }

    #[test]
    fn roles_are_ordered_and_tokens_hashed() {
        assert!(Role::Admin > Role::Supervisor && Role::Supervisor > Role::Worker);
        let token = new_token();
        assert_eq!(token.len(), 3 + 64);
        assert_ne!(token_hash(&token), token);
        assert_eq!(token_hash(&token), token_hash(&token));
    }
}

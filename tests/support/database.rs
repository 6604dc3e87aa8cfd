//! A fresh PostgreSQL database for each test.

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use crate::env::{parse, pg_server_url, random_hex, redact, via};

/// Every test database's name starts with this, so leftovers are easy to
/// recognise (and drop) on a CI machine.
pub const TEST_DATABASE_PREFIX: &str = "dynzero_test_";

/// A database created for one test, empty (no tables: running the
/// migrations is up to the test or the service under test).
///
/// Dropping it does not delete the database: `Drop` cannot wait for
/// PostgreSQL, and a left database helps when a test failed. Call
/// [`drop_database`](Self::drop_database) for a best-effort cleanup.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    name: String,
    url: String,
}

/// Creates `dynzero_test_<16 random hex digits>` on the server at
/// `DYNZERO_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
///
/// Panics if the server cannot be reached or refuses: the test cannot run.
pub async fn fresh_database() -> TestDatabase {
    let server_url = pg_server_url();
    let name = format!("{TEST_DATABASE_PREFIX}{}", random_hex());
    let mut admin = admin_connection(&server_url).await;
    // The name is ours (prefix plus hex digits), so quoting it is enough.
    sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
    let mut url = parse(&server_url);
    url.set_path(&format!("/{name}"));
    TestDatabase {
        name,
        url: url.into(),
    }
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://…/<name>` on the real server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same database through a [`TcpProxy`](crate::TcpProxy) listening
    /// on `127.0.0.1:<port>`.
    pub fn url_via(&self, port: u16) -> String {
        via(&self.url, port)
    }

    /// A small pool on the real server (not through any proxy), for the
    /// test's own setup and assertions.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }

    /// Best effort: drops the database, disconnecting whoever is still in it.
    /// Errors are ignored; a leftover `dynzero_test_*` database is harmless.
    pub async fn drop_database(self) {
        let Ok(mut admin) = PgConnection::connect(&pg_server_url()).await else {
            return;
        };
        let _ = sqlx::query(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
            self.name
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

async fn admin_connection(server_url: &str) -> PgConnection {
    PgConnection::connect(server_url).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL server {} (set {} to use another): {e}",
            redact(server_url),
            crate::env::PG_URL_VAR
        )
    })
}

//! PostgreSQL: pools, migrations that wait out an outage, and creating a
//! missing database when the configuration allows it.

use crate::config::ConfigError;
use crate::fault::{self, Fault};
use crate::settings::{CreateIfMissing, DatabaseSettings, redact};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;
use tracing::{info, warn};

/// How long a statement waits for a pooled connection before the attempt
/// counts as an outage.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection options of `database.url`; a URL that cannot be read is
/// a configuration error.
pub fn options(settings: &DatabaseSettings) -> Result<PgConnectOptions, ConfigError> {
    PgConnectOptions::from_str(&settings.url)
        .map_err(|e| ConfigError(format!("database.url {}: {e}", redact(&settings.url))))
}

/// A pool that connects on first use, so a process starts while the
/// database is away.
pub fn pool(settings: &DatabaseSettings, options: PgConnectOptions) -> PgPool {
    pool_options(&options)
        .max_connections(settings.max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options)
}

/// Pool options every dynzero pool starts from: each new connection gets
/// TCP_NODELAY on its socket (see [`crate::nodelay`]; nothing to do over a
/// Unix socket).
pub fn pool_options(options: &PgConnectOptions) -> PgPoolOptions {
    let port = options.get_port();
    let over_tcp = options.get_socket().is_none() && !options.get_host().starts_with('/');
    PgPoolOptions::new().after_connect(move |_, _| {
        Box::pin(async move {
            if over_tcp {
                crate::nodelay::set_on_sockets_to(port);
            }
            Ok(())
        })
    })
}

/// Run `migrator` as the owner role (`database.migration_url`, or
/// `database.url` when that is empty) over a connection of its own, waiting
/// out an outage with backoff; a TLS or certificate failure is a
/// [`ConfigError`], anything else an error. The services' own pools may be
/// a runtime role that cannot run DDL: not even the migrator's
/// `CREATE TABLE IF NOT EXISTS` of its tracking table.
pub async fn migrate(migrator: &Migrator, settings: &DatabaseSettings) -> anyhow::Result<()> {
    let url = settings.migrations_url();
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| ConfigError(format!("database.migration_url {}: {e}", redact(url))))?;
    let owner = pool_options(&options)
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options);
    let migrated = migrate_on(migrator, &owner, url).await;
    owner.close().await;
    migrated
}

async fn migrate_on(migrator: &Migrator, pool: &PgPool, url: &str) -> anyhow::Result<()> {
    let mut waits = crate::backoff::backoff();
    loop {
        let e = match migrator.run(pool).await {
            Ok(()) => break,
            Err(MigrateError::Execute(e)) => e,
            Err(e) => return Err(e.into()),
        };
        match fault::database(&e) {
            Fault::Outage => {
                let wait = waits.next().unwrap_or_default();
                warn!(error = %e, url = %redact(url), ?wait, "database unavailable; waiting");
                tokio::time::sleep(wait).await;
            }
            Fault::Configuration => return Err(configuration(url, &e).into()),
            Fault::Defect => return Err(e.into()),
        }
    }
    info!(url = %redact(url), "database ready");
    warn_if_never_vacuumed(pool).await;
    Ok(())
}

/// Without autovacuum no table is ever analyzed or vacuumed: the outbox's
/// deleted rows and the households' old versions are never reclaimed, and
/// the planner has no statistics. The hub stays correct, and its statements
/// are planned not to need them, but the database only grows.
async fn warn_if_never_vacuumed(pool: &PgPool) {
    let autovacuum: Option<String> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await
        .ok();
    if autovacuum.as_deref() == Some("off") {
        warn!(
            "PostgreSQL runs with autovacuum off: the outbox's deleted rows and old household \
             versions are never reclaimed; turn it on (docs/operations.md, \"Migrate\")"
        );
    }
}

/// The one line that stops the start for a database error waiting cannot
/// heal: a TLS or certificate failure says which settings to check.
fn configuration(url: &str, e: &sqlx::Error) -> ConfigError {
    let tls = matches!(e, sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))
        || matches!(e, sqlx::Error::Io(io) if fault::is_tls_failure(io));
    if tls {
        ConfigError(format!(
            "database {}: TLS or certificate failure: {e} (check sslmode and sslrootcert in database.url)",
            redact(url)
        ))
    } else {
        ConfigError(format!("database {}: {e}", redact(url)))
    }
}

/// Whether the URL's server is on this machine.
fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Make sure `database.url`'s database exists: create it if it is missing
/// and `database.create_if_missing` allows, else a [`ConfigError`] saying so.
/// Nothing is decided while the server is away: that is an outage, for the
/// migrations to wait out.
pub async fn ensure_exists(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let options = options(settings)?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let e = match PgConnection::connect_with(&options).await {
        Ok(connection) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Err(e) => e,
    };
    let missing = matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000"));
    if !missing {
        if fault::database(&e) == Fault::Configuration {
            return Err(configuration(&settings.url, &e).into());
        }
        return Ok(());
    }
    let allowed = match settings.create_if_missing {
        CreateIfMissing::Always => true,
        CreateIfMissing::Local => is_local(&options),
        CreateIfMissing::Never => false,
    };
    if !allowed {
        return Err(ConfigError(format!(
            "database {name:?} does not exist on {} and database.create_if_missing does not allow creating it (create it, or set it to \"always\")",
            redact(&settings.url)
        ))
        .into());
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let quoted = name.replace('"', "\"\"");
    let created = sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{quoted}""#)))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => info!(database = %name, "created the missing database"),
        // Another process created it in the meantime.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

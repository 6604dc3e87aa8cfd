//! The API as a service: built from settings and a pool, run until a
//! shutdown future resolves.

use crate::http::AppState;
use crate::settings::Settings;
use crate::{alerts, board, households, rejections, stats};
use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};

use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::service::MIGRATOR;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener};
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tracing::info;

/// The read side's migrations, tracked in a table of their own (the
/// reconciler's migrator refuses versions it does not know). Run after the
/// reconciler's: they index and trigger on its tables.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_api_migrations");
    migrator
}

/// Connect (waiting for PostgreSQL if it is down) and bring the schema up
/// to date: the hub's migrations first (the API reads its tables), then the
/// API's own.
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    // Custom plans: a division range's selectivity goes from one community
    // to the whole city, and a generic plan chosen for one is wrong for the other.
    let options = PgConnectOptions::from_str(&settings.database.url)?
        .options([("plan_cache_mode", "force_custom_plan")]);
    let pool = dynzero_runtime::database::pool_options(&options)
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    dynzero_runtime::database::migrate(&MIGRATOR, &settings.database).await?;
    // Its triggers and indexes lock the hub's tables: a hub at work may
    // deadlock with it, which is waited out and tried again like an outage.
    dynzero_runtime::database::migrate(&migrator(), &settings.database)
        .await
        .context("running the API's migrations")?;
    Ok(pool)
}

/// Alerts buffered per stream before a slow client skips some.
const STREAM_BUFFER: usize = 1024;

pub struct Api {
    state: AppState,
    listener: TcpListener,
    alert_listener: PgListener,
    /// Set at shutdown: the alert listener and every open stream end.
    stop: watch::Sender<bool>,
}

impl Api {
    /// Bind `api.listen` and start listening for alerts (the pool comes
    /// from [`connect`], which migrated).
    pub async fn build(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, pool, Arc::new(SystemClock)).await
    }

    /// As [`build`](Self::build), with the hub's notion of today injected.
    pub async fn build_with_clock(
        settings: Settings,
        pool: PgPool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.api.listen)
            .await
            .with_context(|| format!("binding api.listen {}", settings.api.listen))?;
        let alert_listener = alerts::subscribe(&pool).await?;
        let (sender, _) = broadcast::channel(STREAM_BUFFER);
        let (stop, stopped) = watch::channel(false);
        Ok(Self {
            state: AppState {
                pool,
                settings: Arc::new(settings),
                clock,
                alerts: sender,
                stopped,
                tokens: Arc::default(),
            },
            listener,
            alert_listener,
            stop,
        })
    }

    /// Where it listens (port 0 in the configuration: the port chosen).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn router(state: AppState) -> Router {
        let api = Router::new()
            .route("/households", get(households::list))
            .route("/households/{household_id}", get(households::get_one))
            .route("/alerts", get(alerts::list))
            .route("/alerts/stream", get(alerts::stream))
            .route("/stats", get(stats::get_stats))
            .route("/rejections", get(rejections::list))
            .route("/rejections/{id}/replay", post(rejections::replay));
        Router::new()
            .nest("/api/v1", api)
            .route("/api/openapi.json", get(openapi_json))
            .merge(board::routes())
            .with_state(state)
    }

    /// Serve until `shutdown` resolves; open streams end with it.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(address = %self.listener.local_addr()?, "serving the API and the board");
        let listen = tokio::spawn(alerts::listen(
            self.state.pool.clone(),
            self.alert_listener,
            self.state.alerts.clone(),
            self.state.tokens.clone(),
            self.state.stopped.clone(),
        ));
        let compact = tokio::spawn(stats::keep_counts_compact(
            self.state.pool.clone(),
            self.state.stopped.clone(),
        ));
        let app = Self::router(self.state.clone());
        let stop = self.stop;
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await;
        listen.await?;
        compact.await?;
        served?;
        Ok(())
    }
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(crate::openapi::document())
}

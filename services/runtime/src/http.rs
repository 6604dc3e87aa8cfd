//! The process's HTTP endpoint: `GET /metrics` (Prometheus text from every
//! service in the process), `/healthz` (liveness) and `/readyz` (readiness).

use crate::health::{Liveness, Readiness};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Something that renders metrics in Prometheus text.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// What the endpoint reports on.
pub struct Endpoint {
    pub sources: Vec<Source>,
    pub liveness: Vec<Liveness>,
    pub readiness: Readiness,
}

/// Serve `endpoint` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(endpoint));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(endpoint): State<Arc<Endpoint>>) -> String {
    endpoint.sources.iter().map(|render| render()).collect()
}

async fn healthz(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, String) {
    let dead: Vec<&str> = endpoint
        .liveness
        .iter()
        .flat_map(Liveness::dead_loops)
        .collect();
    if dead.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        let dead = dead.join(", ");
        (StatusCode::SERVICE_UNAVAILABLE, format!("dead: {dead}\n"))
    }
}

async fn readyz(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, String) {
    let away = endpoint.readiness.away().await;
    if away.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        let away = away.join(", ");
        (StatusCode::SERVICE_UNAVAILABLE, format!("away: {away}\n"))
    }
}

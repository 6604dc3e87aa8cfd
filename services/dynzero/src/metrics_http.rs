//! `GET /metrics` (Prometheus text) for the services running in this process.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;

/// Something that renders metrics in Prometheus text.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

pub async fn serve(
    listen: &str,
    sources: Vec<Source>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(sources));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(sources): State<Arc<Vec<Source>>>) -> String {
    sources.iter().map(|render| render()).collect()
}

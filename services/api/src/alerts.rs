//! `GET /api/v1/alerts` (newest first, by cursor) and
//! `GET /api/v1/alerts/stream` (Server-Sent Events, one per new alert in
//! scope), fed by one `LISTEN dynzero_alert` per process.

use crate::access::{Caller, PiiPolicy};
use crate::http::{ApiError, AppState, Params, decode_cursor, encode_cursor, page_limit};
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use dynzero_contracts::pii;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use utoipa::{IntoParams, ToSchema};

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    /// The alert's stable id (the CloudEvent id on `dynzero.alerts`).
    pub id: String,
    pub kind: String,
    pub division_code: String,
    pub household_id: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub summary: String,
    /// The alert's `data` as published (contract §6).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Alert {
    pub fn mask_for(&mut self, caller: &Caller) {
        if caller.pii == PiiPolicy::Masked {
            pii::mask_value(&mut self.data);
            self.summary = pii::mask_id_numbers(&self.summary);
        }
    }
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    String,
    Value,
);

fn alert((id, kind, division_code, household_id, raised_at, summary, event): Row) -> Alert {
    Alert {
        id,
        kind,
        division_code,
        household_id,
        raised_at,
        summary,
        data: event.get("data").cloned().unwrap_or(Value::Null),
    }
}

const COLUMNS: &str = "id, kind, division_code, household_id, raised_at, summary, event";

pub async fn of_household(pool: &PgPool, household_id: &str) -> anyhow::Result<Vec<Alert>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM alert WHERE household_id = $1 ORDER BY raised_at DESC, id"
    )))
    .bind(household_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(alert).collect())
}

pub async fn by_id(pool: &PgPool, id: &str) -> anyhow::Result<Option<Alert>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM alert WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(alert))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Division prefix within the token's scope; default: the whole scope.
    #[param(pattern = "^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")]
    pub division: Option<String>,
    /// One alert kind, e.g. `zero_employment_new`.
    pub kind: Option<String>,
    /// Only alerts raised at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    pub next_cursor: Option<String>,
}

fn parse_cursor(cursor: Option<String>) -> Result<Option<(DateTime<Utc>, String)>, ApiError> {
    let bad = || ApiError::BadRequest("cursor is not one this API returned".into());
    cursor
        .map(|c| {
            let (time, id) = c.split_once('|').ok_or_else(bad)?;
            let time = DateTime::parse_from_rfc3339(time).map_err(|_| bad())?;
            Ok((time.with_timezone(&Utc), id.to_string()))
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Alerts in scope, newest first", body = AlertPage),
        (status = 400, description = "Malformed parameter", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Division outside the token's scope", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<AlertQuery>,
) -> Result<Json<AlertPage>, ApiError> {
    let division = caller.division(q.division.as_deref())?;
    let limit = page_limit(q.limit)?;
    let after = parse_cursor(decode_cursor(q.cursor.as_deref())?)?;
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM alert
         WHERE division_code >= $1 AND division_code < $2
           AND ($3::text IS NULL OR kind = $3)
           AND ($4::timestamptz IS NULL OR raised_at >= $4)
           AND ($5::timestamptz IS NULL OR (raised_at, id) < ($5, $6))
         ORDER BY raised_at DESC, id DESC
         LIMIT $7"
    )))
    .bind(division.as_str())
    .bind(division.upper())
    .bind(q.kind.as_deref().filter(|k| !k.is_empty()))
    .bind(q.since)
    .bind(after.as_ref().map(|(t, _)| *t))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let mut items: Vec<Alert> = rows.into_iter().map(alert).collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|a| encode_cursor(&format!("{}|{}", a.raised_at.to_rfc3339(), a.id)))
    } else {
        None
    };
    for a in &mut items {
        a.mask_for(&caller);
    }
    Ok(Json(AlertPage { items, next_cursor }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Division prefix within the token's scope; default: the whole scope.
    #[param(pattern = "^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")]
    pub division: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alerts/stream", tag = "alerts", params(StreamQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-Sent Events: event `alert`, data an Alert as JSON, one per new alert in scope", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed parameter", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Division outside the token's scope", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let division = caller.division(q.division.as_deref())?;
    let receiver = state.alerts.subscribe();
    let stopped = state.stopped.clone();
    let events =
        futures_util::stream::unfold((receiver, stopped), move |(mut receiver, mut stopped)| {
            let (division, caller) = (division.clone(), caller.clone());
            async move {
                loop {
                    let received = tokio::select! {
                        r = receiver.recv() => r,
                        _ = stopped.wait_for(|s| *s) => return None,
                    };
                    match received {
                        Ok(alert) if division.covers(&alert.division_code) => {
                            let mut alert = (*alert).clone();
                            alert.mask_for(&caller);
                            let event = Event::default()
                                .event("alert")
                                .id(alert.id.clone())
                                .json_data(&alert)
                                .unwrap_or_else(|_| Event::default().comment("unrenderable"));
                            return Some((Ok(event), (receiver, stopped)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `LISTEN dynzero_alert`, so that a stream opened after `build` returns
/// sees every alert committed from then on.
pub async fn subscribe(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([ALERT_CHANNEL, crate::access::TOKEN_CHANNEL])
        .await?;
    Ok(listener)
}

/// Each committed alert's id is announced here (a trigger on `alert`).
pub const ALERT_CHANNEL: &str = "dynzero_alert";

/// Broadcast each new alert, and empty the token cache whenever a token
/// changes, until `stopped`. A lost connection is re-established after a
/// pause; alerts committed meanwhile are in `GET /api/v1/alerts`, not on the
/// stream, and the token cache is emptied (a revocation may have been missed).
pub async fn listen(
    pool: PgPool,
    mut listener: PgListener,
    sender: broadcast::Sender<Arc<Alert>>,
    tokens: Arc<crate::access::TokenCache>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let result = tokio::select! {
            r = forward(&pool, &mut listener, &sender, &tokens) => r,
            _ = stopped.wait_for(|s| *s) => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %format!("{e:#}"), "alert listener lost; reconnecting");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            match subscribe(&pool).await {
                Ok(fresh) => {
                    listener = fresh;
                    tokens.forget_all();
                    break;
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "alert listener still down"),
            }
        }
    }
}

async fn forward(
    pool: &PgPool,
    listener: &mut PgListener,
    sender: &broadcast::Sender<Arc<Alert>>,
    tokens: &crate::access::TokenCache,
) -> anyhow::Result<()> {
    loop {
        let notification = listener.recv().await?;
        if notification.channel() == crate::access::TOKEN_CHANNEL {
            tokens.forget_all();
            continue;
        }
        if sender.receiver_count() == 0 {
            continue;
        }
        if let Some(alert) = by_id(pool, notification.payload()).await? {
            let _ = sender.send(Arc::new(alert));
        }
    }
}

/// The newest alerts under `division`.
pub async fn recent(
    pool: &PgPool,
    division: &crate::access::Division,
    limit: i64,
) -> anyhow::Result<Vec<Alert>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM alert WHERE division_code >= $1 AND division_code < $2
         ORDER BY raised_at DESC, id DESC LIMIT $3"
    )))
    .bind(division.as_str())
    .bind(division.upper())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(alert).collect())
}

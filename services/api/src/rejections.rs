//! `GET /api/v1/rejections` (supervisor) and
//! `POST /api/v1/rejections/{id}/replay` (admin): the messages the hub
//! refused, masked, and their republication byte for byte once the cause is
//! fixed.

use crate::access::{Caller, Role};
use crate::http::{ApiError, AppState, Params, PathParam};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use dynzero_contracts::pii;
use dynzero_reconciler::replay::{ReplayError, Replayer};
use dynzero_reconciler::store::rejections;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

/// A rejected message, masked: its id numbers and names never leave whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    pub id: i64,
    /// The contract's reason code, e.g. `schema_invalid`, `poison`.
    pub reason: String,
    pub detail: String,
    /// The CloudEvents `source` and `type`, when the message was readable.
    pub source: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// When the hub rejected it.
    pub time: DateTime<Utc>,
    pub routing_key: String,
    /// The original body (lossy UTF-8) with id numbers and names masked;
    /// null when the hub did not keep it.
    pub body: Option<String>,
    /// The last replay, if any.
    pub replayed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RejectionQuery {
    /// One reason code.
    pub reason: Option<String>,
    /// Only rejections at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
}

/// At most this many rejections per answer, newest first.
const LIST_LIMIT: i64 = 500;

/// A body as a masked string: JSON has names and id numbers masked; other
/// text only its id numbers.
pub fn masked_body(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            pii::mask_value(&mut value);
            value.to_string()
        }
        Err(_) => pii::mask_id_numbers(&String::from_utf8_lossy(body)),
    }
}

impl From<rejections::Stored> for Rejection {
    fn from(r: rejections::Stored) -> Self {
        Rejection {
            id: r.id,
            detail: pii::mask_id_numbers(&r.detail),
            reason: r.reason,
            source: r.source,
            event_type: r.event_type,
            time: r.rejected_at,
            routing_key: r.routing_key,
            body: r.body.as_deref().map(masked_body),
            replayed_at: r.replayed_at,
        }
    }
}

pub async fn list_rows(
    pool: &PgPool,
    reason: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<Rejection>> {
    let filter = rejections::Filter {
        reason: reason.map(str::to_string),
        since,
        not_replayed: false,
    };
    let rows = rejections::list(pool, &filter, LIST_LIMIT).await?;
    Ok(rows.into_iter().map(Rejection::from).collect())
}

#[utoipa::path(get, path = "/api/v1/rejections", tag = "rejections", params(RejectionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected messages, newest first (at most 500)", body = Vec<Rejection>),
        (status = 400, description = "Malformed parameter", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the supervisor role", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<RejectionQuery>,
) -> Result<Json<Vec<Rejection>>, ApiError> {
    caller.require(Role::Supervisor)?;
    let reason = q.reason.as_deref().filter(|r| !r.is_empty());
    Ok(Json(list_rows(&state.pool, reason, q.since).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub id: i64,
    pub replayed_at: DateTime<Utc>,
}

/// Republish rejection `id`'s original body and content type to the inbound
/// exchange with its routing key, with publisher confirms; then note when.
pub async fn replay_one(state: &AppState, id: i64) -> Result<Replayed, ApiError> {
    let replayer = Replayer::open(&state.settings.amqp)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("connecting to the broker: {e}")))?;
    let replayed = replayer.replay(&state.pool, id).await;
    replayer.close().await;
    match replayed {
        Ok(replayed_at) => Ok(Replayed { id, replayed_at }),
        Err(e @ ReplayError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ ReplayError::NoBody(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(ReplayError::Database(e)) => Err(e.into()),
        Err(e @ ReplayError::Broker(_)) => Err(ApiError::Internal(e.into())),
    }
}

#[utoipa::path(post, path = "/api/v1/rejections/{id}/replay", tag = "rejections",
    params(("id" = i64, Path, description = "The rejection's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Republished to the inbound exchange, byte for byte", body = Replayed),
        (status = 400, description = "Malformed id", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rejection", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rejection was recorded without its body", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> Result<Json<Replayed>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(replay_one(&state, id).await?))
}

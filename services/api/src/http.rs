//! What every handler shares: the application state, RFC 9457 problems, and
//! the extractors that authenticate a caller and parse a query.

use crate::access::{self, Caller, Division, Role};
use crate::settings::Settings;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dynzero_reconciler::clock::Clock;
use dynzero_runtime::is_transient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

/// The board keeps the caller's token in this cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "dynzero_session";

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// New alerts as the database announces them (see `live`).
    pub alerts: broadcast::Sender<Arc<crate::alerts::Alert>>,
    /// True once the server is shutting down: open streams end.
    pub stopped: watch::Receiver<bool>,
    /// Callers of valid tokens, kept until a token changes.
    pub tokens: Arc<access::TokenCache>,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The ways a request fails, each with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(e) => match e.downcast_ref::<sqlx::Error>() {
                Some(db) if is_transient(db) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                "the server could not answer; try again".to_string()
            }
            other => other.to_string(),
        };
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The token a request carries: `Authorization: Bearer`, else the board's cookie.
pub fn presented_token(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == SESSION_COOKIE)
            .map(|(_, v)| v.to_string())
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(parts).ok_or(ApiError::Unauthorized)?;
        state
            .tokens
            .authenticate(&state.pool, &token)
            .await?
            .ok_or(ApiError::Unauthorized)
    }
}

impl Caller {
    /// 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.may(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }

    /// The division a request asks about: its own scope when none is given;
    /// 400 when malformed, 403 when outside the caller's scope.
    pub fn division(&self, asked: Option<&str>) -> Result<Division, ApiError> {
        let Some(asked) = asked.filter(|s| !s.is_empty()) else {
            return Ok(self.scope.clone());
        };
        let division = Division::parse(asked)
            .ok_or_else(|| ApiError::BadRequest("division must be 4, 6, 9 or 12 digits".into()))?;
        if self.scope.covers(division.as_str()) {
            Ok(division)
        } else {
            Err(ApiError::Forbidden(format!(
                "division {division} is outside this token's scope"
            )))
        }
    }
}

/// `Query` whose failures are problems (400) rather than plain text.
pub struct Params<T>(pub T);

/// PostgreSQL text cannot hold NUL: a parameter carrying one is malformed,
/// not a server error.
fn refuse_nul(text: &str) -> Result<(), ApiError> {
    if text.contains('\0') || text.to_ascii_lowercase().contains("%00") {
        Err(ApiError::BadRequest(
            "parameters may not contain NUL".into(),
        ))
    } else {
        Ok(())
    }
}

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        refuse_nul(parts.uri.query().unwrap_or_default())?;
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `Path` whose failures are problems (400) rather than plain text.
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequestParts<AppState> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        refuse_nul(parts.uri.path())?;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParam(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// A page size: 1 to 500, 50 when not given.
pub fn page_limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("limit must be 1 to 500".into())),
    }
}

/// Cursors are opaque: the hex of the last key returned.
pub fn encode_cursor(key: &str) -> String {
    hex::encode(key.as_bytes())
}

pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this API returned".into()))
        })
        .transpose()
}

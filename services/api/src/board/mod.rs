//! The board: server-rendered Chinese pages on the API's server, for
//! community workers (on a phone), street offices and districts. It reads
//! through the same functions as the API, with the same scope and masking.

mod export;
pub mod html;
mod ledger;
mod pages;
mod stats_page;

use crate::access::{self, Caller};
use crate::http::{AppState, SESSION_COOKIE, presented_token};
use axum::Router;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use html::{esc, page, with_status};
use serde::Deserialize;

const CSS: &str = include_str!("../../assets/board.css");
const LIVE_JS: &str = include_str!("../../assets/live.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ledger") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/ledger", get(ledger::ledger))
        .route("/ledger.csv", get(export::csv))
        .route("/ledger.xlsx", get(export::xlsx))
        .route("/households/{household_id}", get(pages::household))
        .route("/alerts", get(pages::live_alerts))
        .route("/stats", get(stats_page::stats))
        .route("/rejections", get(pages::rejections))
        .route("/rejections/{id}/replay", post(pages::replay))
        .route(
            "/assets/board.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A signed-in board user; anyone else is sent to 登录.
pub struct Viewer(pub Caller);

pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = presented_token(parts) else {
            return Err(ToLogin.into_response());
        };
        match state.tokens.authenticate(&state.pool, &token).await {
            Ok(Some(caller)) => Ok(Viewer(caller)),
            Ok(None) => Err(ToLogin.into_response()),
            Err(e) => Err(failure(e)),
        }
    }
}

/// A page for an error the viewer cannot fix.
pub fn failure(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "board page failed");
    with_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        page("出错了", None, "<p>服务器暂时无法回答，请稍后再试。</p>"),
    )
}

fn login_page(error: Option<&str>) -> axum::response::Html<String> {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    page(
        "登录",
        None,
        &format!(
            r#"{error}<form method="post" action="/login" class="card">
<label>访问令牌 <input type="password" name="token" id="token" autocomplete="off" required></label>
<button type="submit" id="login">登录</button></form>"#
        ),
    )
}

async fn login_form() -> axum::response::Html<String> {
    login_page(None)
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<Login>) -> Response {
    let token = form.token.trim();
    match access::authenticate(&state.pool, token).await {
        Ok(Some(_)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
            );
            let mut response = Redirect::to("/ledger").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => with_status(
            StatusCode::UNAUTHORIZED,
            login_page(Some("令牌无效或已吊销")),
        ),
        Err(e) => failure(e),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("dynzero_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

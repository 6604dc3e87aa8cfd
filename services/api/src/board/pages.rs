//! 户详情, 实时预警 and 拒收消息.

use super::html::{esc, kind_word, local, page, status_word, url, with_status};
use super::{Viewer, failure};
use crate::access::{self, Role};
use crate::alerts::Alert;
use crate::households::{self, present};
use crate::http::{ApiError, AppState};
use crate::rejections;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

fn refused(e: ApiError) -> Response {
    match e {
        ApiError::Internal(e) => failure(e),
        ApiError::NotFound(detail) => with_status(
            StatusCode::NOT_FOUND,
            page("未找到", None, &format!("<p>{}</p>", esc(&detail))),
        ),
        other => other.into_response(),
    }
}

fn alert_rows(alerts: &[Alert]) -> String {
    alerts
        .iter()
        .map(|a| {
            let household = a
                .household_id
                .as_deref()
                .map(|h| format!(r#"<a href="/households/{}">{}</a>"#, url(h), esc(h)))
                .unwrap_or_default();
            format!(
                r#"<tr class="alert-row" data-id="{id}"><td>{time}</td><td>{kind}</td><td>{division}</td><td>{household}</td><td>{summary}</td></tr>"#,
                id = esc(&a.id),
                time = local(a.raised_at, "%Y-%m-%d %H:%M:%S"),
                kind = kind_word(&a.kind),
                division = esc(&a.division_code),
                summary = esc(&a.summary),
            )
        })
        .collect()
}

fn members(state: &Value) -> String {
    let yes = |v: &Value| {
        if v.as_bool() == Some(true) {
            "是"
        } else {
            "否"
        }
    };
    let rows: String = state["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(m["name"].as_str().unwrap_or_default()),
                        esc(m["id_number"].as_str().unwrap_or_default()),
                        yes(&m["in_labour_force"]),
                        yes(&m["employed"]),
                        esc(m["employment_kind"].as_str().unwrap_or("—")),
                        yes(&m["stable"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        r#"<div class="table"><table id="members"><thead><tr><th>姓名</th><th>身份证号码</th><th>劳动力</th><th>已就业</th><th>就业形式</th><th>稳定就业</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

pub async fn household(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(household_id): Path<String>,
) -> Response {
    let found = match households::detail(&state.pool, &caller.scope, &household_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return refused(ApiError::NotFound(format!("没有户 {household_id}"))),
        Err(e) => return failure(e),
    };
    if let Err(e) =
        access::audit_reads(&state.pool, &caller, std::slice::from_ref(&household_id)).await
    {
        return failure(e);
    }
    let shown = present(&caller, found.state);
    let mut alerts = found.alerts;
    for a in &mut alerts {
        a.mask_for(&caller);
    }
    let timeline: String = found
        .versions
        .iter()
        .rev()
        .map(|v| {
            let causes: Vec<String> = v
                .caused_by
                .iter()
                .map(|c| {
                    format!(
                        "{} · {} · {}",
                        esc(&c.event_type),
                        esc(&c.source),
                        esc(&c.id)
                    )
                })
                .collect();
            format!(
                "<li><strong>v{} {}</strong> {}{} <br><small>{}</small></li>",
                v.version,
                status_word(&v.status),
                local(v.published_at, "%Y-%m-%d %H:%M"),
                v.zero_since
                    .map(|z| format!(" · 零就业起始 {z}"))
                    .unwrap_or_default(),
                causes.join("；"),
            )
        })
        .collect();
    let dibao = &shown["dibao"];
    let body = format!(
        r#"<div class="card"><p>户编号 {id} · 社区 {division} · 状态 <strong>{status}</strong> · 零就业起始 {since} · 低保 {dibao}</p></div>
<h2>家庭成员</h2>{members}
<h2>状态时间线</h2><ol class="timeline">{timeline}</ol>
<h2>预警</h2><div class="table"><table><thead><tr><th>时间</th><th>类型</th><th>区划</th><th>户</th><th>摘要</th></tr></thead><tbody>{alerts}</tbody></table></div>"#,
        id = esc(&household_id),
        division = esc(shown["division_code"].as_str().unwrap_or_default()),
        status = status_word(shown["status"].as_str().unwrap_or_default()),
        since = esc(shown["zero_since"].as_str().unwrap_or("—")),
        dibao = if dibao.is_object() {
            esc(dibao["case_id"].as_str().unwrap_or_default())
        } else {
            "无".into()
        },
        members = members(&shown),
        alerts = alert_rows(&alerts),
    );
    page("户详情", Some(&caller), &body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    pub division: Option<String>,
}

pub async fn live_alerts(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<LiveQuery>,
) -> Response {
    let division = match caller.division(q.division.as_deref()) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    let recent = match crate::alerts::recent(&state.pool, &division, 50).await {
        Ok(mut recent) => {
            for a in &mut recent {
                a.mask_for(&caller);
            }
            recent
        }
        Err(e) => return failure(e),
    };
    let body = format!(
        r#"<p>{scope} · <span id="live-status">连接中…</span></p>
<div class="table"><table id="live-alerts" data-division="{scope}"><thead><tr><th>时间</th><th>类型</th><th>区划</th><th>户</th><th>摘要</th></tr></thead><tbody>{rows}</tbody></table></div>
<script src="/assets/live.js"></script>"#,
        scope = esc(division.as_str()),
        rows = alert_rows(&recent),
    );
    page("实时预警", Some(&caller), &body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct RejectionFilter {
    pub reason: Option<String>,
}

pub async fn rejections(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<RejectionFilter>,
) -> Response {
    if let Err(e) = caller.require(Role::Supervisor) {
        return refused(e);
    }
    let reason = q.reason.as_deref().filter(|r| !r.is_empty());
    let list = match rejections::list_rows(&state.pool, reason, None).await {
        Ok(list) => list,
        Err(e) => return failure(e),
    };
    let admin = caller.may(Role::Admin);
    let rows: String = list
        .iter()
        .map(|r| {
            let replay = if admin && r.body.is_some() {
                format!(
                    r#"<form method="post" action="/rejections/{}/replay"><button type="submit">重放</button></form>"#,
                    r.id
                )
            } else {
                String::new()
            };
            format!(
                "<tr><td>{}</td><td><a href=\"/rejections?reason={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                local(r.time, "%Y-%m-%d %H:%M:%S"),
                url(&r.reason),
                esc(&r.reason),
                esc(&r.detail),
                esc(r.source.as_deref().unwrap_or("—")),
                esc(r.event_type.as_deref().unwrap_or("—")),
                esc(&r.body.as_deref().unwrap_or("—").chars().take(300).collect::<String>()),
                r.replayed_at.map(|t| local(t, "%Y-%m-%d %H:%M")).unwrap_or_default(),
                replay,
            )
        })
        .collect();
    let body = format!(
        r#"<div class="table"><table><thead><tr><th>时间</th><th>原因</th><th>详情</th><th>来源</th><th>类型</th><th>消息（已脱敏）</th><th>已重放</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"#
    );
    page("拒收消息", Some(&caller), &body).into_response()
}

pub async fn replay(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<i64>,
) -> Response {
    if let Err(e) = caller.require(Role::Admin) {
        return refused(e);
    }
    match rejections::replay_one(&state, id).await {
        Ok(_) => Redirect::to("/rejections").into_response(),
        Err(e) => refused(e),
    }
}

//! HTML by hand: escaping and the page frame. Every value that reaches a
//! page goes through [`esc`].

use crate::access::{Caller, Role};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escape text for an HTML element or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string component.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The frame around every page: the navigation the caller's role allows.
pub fn page(title: &str, caller: Option<&Caller>, body: &str) -> Html<String> {
    let nav = match caller {
        Some(c) => {
            let rejections = if c.may(Role::Supervisor) {
                r#"<a href="/rejections">拒收消息</a>"#
            } else {
                ""
            };
            format!(
                r#"<a href="/ledger">台账</a><a href="/alerts">实时预警</a><a href="/stats">统计</a>{rejections}
<span>{name} · {scope}</span><form method="post" action="/logout"><button type="submit">退出</button></form>"#,
                name = esc(&c.name),
                scope = esc(c.scope.as_str()),
            )
        }
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · 零就业家庭动态管理</title>
<link rel="stylesheet" href="/assets/board.css"></head>
<body><header><strong>零就业家庭动态管理</strong>{nav}</header>
<main><h1>{title}</h1>
{body}
</main></body></html>"#,
        title = esc(title),
    ))
}

/// A page with a status other than 200.
pub fn with_status(status: StatusCode, html: Html<String>) -> Response {
    (status, html).into_response()
}

/// A time as the board shows it: China Standard Time.
pub fn local(time: chrono::DateTime<chrono::Utc>, format: &str) -> String {
    dynzero_contracts::outbound::shanghai(time)
        .format(format)
        .to_string()
}

pub fn status_word(status: &str) -> &'static str {
    match status {
        "zero_employment" => "零就业",
        "employed" => "有就业",
        "no_labour_force" => "无劳动力",
        _ => "未知",
    }
}

pub fn kind_word(kind: &str) -> &'static str {
    match kind {
        "zero_employment_new" => "新增零就业",
        "zero_employment_resolved" => "零就业消除",
        "household_at_risk" => "返零风险",
        "placement_overdue" => "援助超期",
        "visit_overdue" => "走访超期",
        "layoff_early_warning" => "裁员预警",
        "layoff_unreported" => "裁员未报告",
        "job_match" => "岗位匹配",
        "data_conflict" => "数据冲突",
        _ => "其他",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b&c/王"), "a%20b%26c%2F%E7%8E%8B");
    }
}

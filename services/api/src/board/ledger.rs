//! 台账: the zero-employment households of the viewer's scope, with days
//! open, last visit, overdue marks, 低保 and matched postings.

use super::html::{esc, page, url};
use super::{Viewer, failure};
use crate::access::{self, Caller};
use crate::households::{self, Filter, LedgerRow, ListQuery, VISIT_GAP_DAYS};
use crate::http::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The most households one ledger page (or export) holds.
pub const LEDGER_MAX: i64 = 2000;

#[derive(Debug, Default, Deserialize)]
pub struct LedgerQuery {
    pub division: Option<String>,
    /// Default `zero_employment`; `all` for every status.
    pub status: Option<String>,
    pub dibao: Option<String>,
    pub overdue: Option<String>,
    /// `days` (default), `visit` or `household`.
    pub sort: Option<String>,
}

/// One ledger line, computed for today.
pub struct Line {
    pub row: LedgerRow,
    pub days_open: Option<i64>,
    pub placement_overdue: bool,
    pub visit_overdue: bool,
    pub matched_postings: Vec<String>,
}

impl Line {
    pub fn text(&self, key: &str) -> String {
        self.row.state[key].as_str().unwrap_or_default().to_string()
    }
    pub fn dibao(&self) -> Option<String> {
        let d = &self.row.state["dibao"];
        d.is_object().then(|| {
            format!(
                "{}（{}元/月）",
                d["case_id"].as_str().unwrap_or_default(),
                d["monthly_amount"]
            )
        })
    }
    pub fn members(&self) -> String {
        self.row.state["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| m["name"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("、")
            })
            .unwrap_or_default()
    }
}

/// The lines the viewer may see for this query, masked per the token and
/// audited for a full-PII token.
pub async fn lines(
    state: &AppState,
    caller: &Caller,
    q: &LedgerQuery,
) -> Result<(Filter, Vec<Line>), ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => Some("zero_employment".to_string()),
        Some("all") => None,
        Some(s) => Some(s.to_string()),
    };
    let list = ListQuery {
        division: q.division.clone(),
        status,
        dibao: q.dibao.as_deref().and_then(|d| d.parse().ok()),
        overdue: q.overdue.clone().filter(|o| !o.is_empty()),
        ..ListQuery::default()
    };
    let filter = Filter::parse(caller, &list, state)?;
    let rows = households::page(&state.pool, &filter, None, LEDGER_MAX).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.household_id.clone()).collect();
    access::audit_reads(&state.pool, caller, &ids).await?;
    let postings = matched_postings(state, &ids).await?;
    let today = filter.today;
    let mut lines: Vec<Line> = rows
        .into_iter()
        .map(|mut row| {
            row.state = households::present(caller, row.state);
            line(row, today, filter.placement_limit_days, &postings)
        })
        .collect();
    sort(&mut lines, q.sort.as_deref());
    Ok((filter, lines))
}

fn line(
    row: LedgerRow,
    today: NaiveDate,
    limit: i64,
    postings: &HashMap<String, Vec<String>>,
) -> Line {
    let zero_since = row.state["zero_since"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let days_open = zero_since.map(|z| (today - z).num_days());
    let gap_start = zero_since.map(|z| row.last_visit.map_or(z, |v| v.max(z)));
    Line {
        placement_overdue: days_open.is_some_and(|d| d > limit),
        visit_overdue: gap_start.is_some_and(|g| (today - g).num_days() > VISIT_GAP_DAYS as i64),
        matched_postings: postings.get(&row.household_id).cloned().unwrap_or_default(),
        days_open,
        row,
    }
}

fn sort(lines: &mut [Line], by: Option<&str>) {
    match by {
        Some("household") => lines.sort_by(|a, b| a.row.household_id.cmp(&b.row.household_id)),
        Some("visit") => lines.sort_by_key(|l| l.row.last_visit),
        _ => lines.sort_by_key(|l| std::cmp::Reverse(l.days_open)),
    }
}

/// The titles of the postings matched to each household (`job_match` alerts).
async fn matched_postings(
    state: &AppState,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT household_id, event->'data'->'posting' FROM alert
         WHERE kind = 'job_match' AND household_id = ANY($1) ORDER BY raised_at DESC",
    )
    .bind(ids)
    .fetch_all(&state.pool)
    .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (household, posting) in rows {
        let title = posting["title"]
            .as_str()
            .or(posting["posting_id"].as_str())
            .unwrap_or("岗位")
            .to_string();
        out.entry(household).or_default().push(title);
    }
    Ok(out)
}

fn filters(q: &LedgerQuery) -> String {
    let selected = |v: Option<&str>, x: &str| if v == Some(x) { " selected" } else { "" };
    let status = q.status.as_deref();
    let overdue = q.overdue.as_deref();
    let sort = q.sort.as_deref();
    format!(
        r#"<form class="filters" method="get" action="/ledger">
<label>区划 <input name="division" value="{division}" size="12" inputmode="numeric"></label>
<label>状态 <select name="status"><option value="">零就业</option><option value="all"{all}>全部</option>
<option value="employed"{emp}>有就业</option><option value="no_labour_force"{nlf}>无劳动力</option></select></label>
<label>超期 <select name="overdue"><option value="">不限</option><option value="placement"{pl}>援助超期</option><option value="visit"{vi}>走访超期</option></select></label>
<label>排序 <select name="sort"><option value="days">持续天数</option><option value="visit"{sv}>上次走访</option><option value="household"{sh}>户编号</option></select></label>
<button type="submit">筛选</button></form>"#,
        division = esc(q.division.as_deref().unwrap_or_default()),
        all = selected(status, "all"),
        emp = selected(status, "employed"),
        nlf = selected(status, "no_labour_force"),
        pl = selected(overdue, "placement"),
        vi = selected(overdue, "visit"),
        sv = selected(sort, "visit"),
        sh = selected(sort, "household"),
    )
}

pub fn query_string(q: &LedgerQuery) -> String {
    [
        ("division", &q.division),
        ("status", &q.status),
        ("dibao", &q.dibao),
        ("overdue", &q.overdue),
        ("sort", &q.sort),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", url(v))))
    .collect::<Vec<_>>()
    .join("&")
}

fn table(lines: &[Line]) -> String {
    let mut rows = String::new();
    for l in lines {
        let red = |on: bool| if on { r#" class="overdue""# } else { "" };
        rows.push_str(&format!(
            r#"<tr class="household" data-household="{id}"><td><a href="/households/{idu}">{id}</a></td><td>{division}</td><td>{members}</td><td>{since}</td><td{pc}>{days}</td><td{vc}>{visit}</td><td>{dibao}</td><td>{postings}</td></tr>"#,
            id = esc(&l.row.household_id),
            idu = url(&l.row.household_id),
            division = esc(&l.text("division_code")),
            members = esc(&l.members()),
            since = esc(&l.text("zero_since")),
            pc = red(l.placement_overdue),
            days = l.days_open.map(|d| d.to_string()).unwrap_or_default(),
            vc = red(l.visit_overdue),
            visit = l.row.last_visit.map(|v| v.to_string()).unwrap_or_else(|| "未走访".into()),
            dibao = esc(&l.dibao().unwrap_or_else(|| "—".into())),
            postings = esc(&l.matched_postings.join("、")),
        ));
    }
    format!(
        r#"<div class="table"><table id="ledger"><thead><tr><th>户编号</th><th>社区</th><th>成员</th><th>零就业起始</th><th>持续天数</th><th>上次走访</th><th>低保</th><th>匹配岗位</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

pub async fn ledger(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<LedgerQuery>,
) -> Response {
    match lines(&state, &caller, &q).await {
        Ok((filter, lines)) => {
            let qs = query_string(&q);
            let body = format!(
                r#"{filters}<p>{scope} · 共 {n} 户 · 今日 {today} · <a href="/ledger.csv?{qs}">导出 CSV</a> · <a href="/ledger.xlsx?{qs}">导出 XLSX</a></p>{table}"#,
                filters = filters(&q),
                scope = esc(filter.division.as_str()),
                n = lines.len(),
                today = filter.today,
                qs = esc(&qs),
                table = table(&lines),
            );
            page("台账", Some(&caller), &body).into_response()
        }
        Err(ApiError::Internal(e)) => failure(e),
        Err(e) => e.into_response(),
    }
}

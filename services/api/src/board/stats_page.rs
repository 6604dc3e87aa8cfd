//! 统计: drill-down city → district → street → community, the open
//! households of the last 12 months, and the stable-employment rate against
//! the 70 % line. Charts are SVG drawn here.

use super::html::{esc, page, url, with_status};
use super::{Viewer, failure};
use crate::http::{ApiError, AppState};
use crate::stats::{self, ChildFigures, Figures, MONTHS_BACK, Month, STABLE_EMPLOYMENT_TARGET};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    pub division: Option<String>,
    pub month: Option<String>,
}

fn rate_cell(rate: Option<f64>) -> String {
    match rate {
        None => "—".into(),
        Some(r) => {
            let class = if r < STABLE_EMPLOYMENT_TARGET {
                "below"
            } else {
                "ok"
            };
            format!(r#"<span class="{class}">{:.1}%</span>"#, r * 100.0)
        }
    }
}

fn row(name: &str, f: &Figures) -> String {
    format!(
        "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        f.households,
        f.zero_employment,
        f.new_this_month,
        f.resolved_this_month,
        f.median_days_to_placement
            .map(|d| format!("{d:.0}"))
            .unwrap_or_else(|| "—".into()),
        f.placement_overdue,
        f.visit_overdue,
        f.dual_employment,
        f.dibao_among_zero,
        rate_cell(f.stable_employment_rate),
    )
}

fn table(division: &str, month: &str, total: &Figures, children: &[ChildFigures]) -> String {
    let mut rows = row(&format!("<strong>{} 合计</strong>", esc(division)), total);
    for c in children {
        let link = format!(
            r#"<a href="/stats?division={}&month={}">{}</a>"#,
            url(&c.division_code),
            url(month),
            esc(&c.division_code)
        );
        rows.push_str(&row(&link, &c.figures));
    }
    format!(
        r#"<div class="table"><table id="stats"><thead><tr><th>区划</th><th>户数</th><th>零就业</th><th>本月新增</th><th>本月消除</th><th>安置天数中位数</th><th>援助超期</th><th>走访超期</th><th>双就业</th><th>零就业中低保</th><th>稳定就业率</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

/// Bars of open households per month.
pub fn open_chart(points: &[(String, i64)]) -> String {
    let max = points.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let (w, h, left, bottom) = (600.0, 220.0, 40.0, 30.0);
    let slot = (w - left) / points.len().max(1) as f64;
    let mut bars = String::new();
    for (i, (label, n)) in points.iter().enumerate() {
        let bh = (h - bottom - 20.0) * (*n as f64) / max;
        let x = left + i as f64 * slot + slot * 0.15;
        let y = h - bottom - bh;
        bars.push_str(&format!(
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="#b71c1c"><title>{label}: {n}</title></rect><text x="{tx:.1}" y="{ly:.1}" font-size="10" text-anchor="middle">{short}</text><text x="{tx:.1}" y="{ny:.1}" font-size="10" text-anchor="middle">{n}</text>"##,
            bw = slot * 0.7,
            tx = x + slot * 0.35,
            ly = h - bottom + 14.0,
            ny = y - 3.0,
            short = esc(label.get(2..).unwrap_or(label)),
            label = esc(label),
        ));
    }
    format!(
        r#"<svg id="open-chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="近12个月零就业户数">{bars}</svg>"#
    )
}

/// The stable-employment rate per division against the 70 % line.
pub fn rate_chart(children: &[(String, Option<f64>)]) -> String {
    let (w, row_h, left) = (600.0, 22.0, 120.0);
    let h = row_h * children.len().max(1) as f64 + 20.0;
    let line_x = left + (w - left - 40.0) * STABLE_EMPLOYMENT_TARGET;
    let mut bars = String::new();
    for (i, (name, rate)) in children.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let r = rate.unwrap_or(0.0);
        let color = if r < STABLE_EMPLOYMENT_TARGET {
            "#c62828"
        } else {
            "#2e7d32"
        };
        bars.push_str(&format!(
            r#"<text x="0" y="{ty:.1}" font-size="11">{name}</text><rect x="{left}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"/><text x="{lx:.1}" y="{ty:.1}" font-size="11">{label}</text>"#,
            ty = y + 13.0,
            bw = (w - left - 40.0) * r,
            bh = row_h - 6.0,
            lx = left + (w - left - 40.0) * r + 4.0,
            label = rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "—".into()),
            name = esc(name),
        ));
    }
    format!(
        r##"<svg id="rate-chart" viewBox="0 0 {w} {h:.0}" width="100%" role="img" aria-label="稳定就业率与70%目标">{bars}<line x1="{line_x:.1}" x2="{line_x:.1}" y1="0" y2="{h:.0}" stroke="#1f2933" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ty:.0}" font-size="11">目标 70%</text></svg>"##,
        tx = line_x + 3.0,
        ty = h - 4.0,
    )
}

pub async fn stats(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<StatsQuery>,
) -> Response {
    let division = match caller.division(q.division.as_deref()) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let today = state.clock.today();
    let this_month = Month::of(today);
    let month = match q.month.as_deref().filter(|m| !m.is_empty()) {
        None => this_month,
        Some(m) => match Month::parse(m)
            .filter(|m| *m <= this_month && *m >= this_month.back(MONTHS_BACK))
        {
            Some(m) => m,
            None => {
                return with_status(
                    StatusCode::BAD_REQUEST,
                    page(
                        "统计",
                        Some(&caller),
                        "<p>月份须为近12个月（YYYY-MM）。</p>",
                    ),
                );
            }
        },
    };
    let result = async {
        let s = stats::stats(&state, &division, month, today).await?;
        let flows = stats::flows(&state.pool, &division, this_month.back(MONTHS_BACK)).await?;
        Ok::<_, anyhow::Error>((s, flows))
    }
    .await;
    let (s, flows) = match result {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let open = stats::open_by_month(s.total.zero_employment, this_month, &flows);
    let mut rates: Vec<(String, Option<f64>)> = vec![(
        format!("{} 合计", s.division),
        s.total.stable_employment_rate,
    )];
    rates.extend(
        s.children
            .iter()
            .map(|c| (c.division_code.clone(), c.figures.stable_employment_rate)),
    );
    let months: String = (0..=MONTHS_BACK)
        .map(|i| this_month.back(i).label())
        .map(|m| {
            let sel = if m == s.month { " selected" } else { "" };
            format!(r#"<option value="{m}"{sel}>{m}</option>"#)
        })
        .collect();
    let body = format!(
        r#"<form class="filters" method="get" action="/stats"><input type="hidden" name="division" value="{division}">
<label>月份 <select name="month">{months}</select></label><button type="submit">查看</button></form>
{table}
<h2>近12个月零就业户数（月末）</h2><div class="card">{open}</div>
<h2>稳定就业率（近12个月消除的零就业家庭，目标 70%）</h2><div class="card">{rate}</div>"#,
        division = esc(division.as_str()),
        table = table(&s.division, &s.month, &s.total, &s.children),
        open = open_chart(&open),
        rate = rate_chart(&rates),
    );
    let _ = ApiError::Unauthorized;
    page("统计", Some(&caller), &body).into_response()
}

//! `GET /api/v1/stats`: the programme's figures for a division and each of
//! its next-level divisions, computed from `household` (today) and
//! `household_version` (spells). The definitions are in the OpenAPI
//! description of [`Figures`], and in README.md.

use crate::access::{Caller, Division};
use crate::households::VISIT_GAP_DAYS;
use crate::http::{ApiError, AppState, Params};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The stable-employment rate the programme is judged against.
pub const STABLE_EMPLOYMENT_TARGET: f64 = 0.70;
/// How far back `month` may go.
pub const MONTHS_BACK: u32 = 12;

/// One division's figures. "Today" is the hub's date in Asia/Shanghai; a
/// **spell** is a maximal run of a household's published versions whose
/// status is `zero_employment`: it *opens* at the first version of the run
/// and *closes* at the next version (any other status). A version counts in
/// `month` when it was published in that calendar month (Asia/Shanghai), in
/// the division it names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// Households with a published state today.
    pub households: i64,
    /// Households whose status today is `zero_employment` (open spells).
    pub zero_employment: i64,
    /// Spells opened in `month`.
    pub new_this_month: i64,
    /// Spells closed in `month`.
    pub resolved_this_month: i64,
    /// Median, over the spells closed in `month`, of the days from the
    /// spell's last `zero_since` to the day its closing version was
    /// published; null when none closed.
    pub median_days_to_placement: Option<f64>,
    /// Open today, and today − `zero_since` exceeds `rules.placement_limit_days`.
    pub placement_overdue: i64,
    /// Open today, and the last visit (or `zero_since`, if later) is more than 31 days ago.
    pub visit_overdue: i64,
    /// Households with two or more members employed today (双就业).
    pub dual_employment: i64,
    /// Open today with an active 低保 case.
    pub dibao_among_zero: i64,
    /// Members employed in the closing version of the spells closed in the
    /// 12 months ending with `month`.
    pub employed_after_spell: i64,
    /// Of those, in stable employment (contract §5).
    pub stable_after_spell: i64,
    /// `stable_after_spell / employed_after_spell`; null when no one. The target is 0.70.
    pub stable_employment_rate: Option<f64>,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.households += o.households;
        self.zero_employment += o.zero_employment;
        self.new_this_month += o.new_this_month;
        self.resolved_this_month += o.resolved_this_month;
        self.placement_overdue += o.placement_overdue;
        self.visit_overdue += o.visit_overdue;
        self.dual_employment += o.dual_employment;
        self.dibao_among_zero += o.dibao_among_zero;
        self.employed_after_spell += o.employed_after_spell;
        self.stable_after_spell += o.stable_after_spell;
        self.stable_employment_rate = rate(self.stable_after_spell, self.employed_after_spell);
    }
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChildFigures {
    pub division_code: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub division: String,
    /// `YYYY-MM`.
    pub month: String,
    /// 0.70.
    pub stable_employment_target: f64,
    /// The division as a whole: the sum of `children` (the median is over all
    /// the division's closed spells).
    pub total: Figures,
    /// One per next-level division that has households (city → districts →
    /// streets → communities); empty for a community.
    pub children: Vec<ChildFigures>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Division prefix within the token's scope; default: the whole scope.
    #[param(pattern = "^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")]
    pub division: Option<String>,
    /// `YYYY-MM`, this month or one of the 12 before; default: this month.
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
}

/// A calendar month in Asia/Shanghai, as the UTC instants that bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub first: NaiveDate,
}

impl Month {
    pub fn of(day: NaiveDate) -> Month {
        Month {
            first: day.with_day(1).unwrap_or(day),
        }
    }
    pub fn parse(s: &str) -> Option<Month> {
        NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
            .ok()
            .filter(|_| s.len() == 7)
            .map(Month::of)
    }
    pub fn label(self) -> String {
        self.first.format("%Y-%m").to_string()
    }
    pub fn back(self, months: u32) -> Month {
        Month::of(self.first - Months::new(months))
    }
    pub fn next(self) -> Month {
        Month::of(self.first + Months::new(1))
    }
    /// Midnight at the start of the month in Asia/Shanghai, in UTC.
    pub fn start(self) -> DateTime<Utc> {
        let midnight = self.first.and_hms_opt(0, 0, 0).unwrap_or_default();
        Utc.from_utc_datetime(&midnight) - chrono::Duration::hours(8)
    }
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

type CountRow = (String, i64, i64, i64, i64);
type OverdueRow = (String, i64, i64);
type SpellRow = (String, i64, i64, Option<f64>, i64, i64);

/// Figures per next-level division (or for the division itself, for a community).
pub async fn compute(
    pool: &PgPool,
    division: &Division,
    month: Month,
    today: NaiveDate,
    placement_limit_days: i64,
) -> anyhow::Result<(BTreeMap<String, Figures>, Option<f64>)> {
    let group = division.child_len().unwrap_or(division.as_str().len()) as i32;
    // Households, dual employment, open spells and 低保 among them from the
    // per-community counters (`api_household_count`: about one row per
    // community); the overdue ones, which depend on today, from the partial
    // index on zero-employment households alone (index-only).
    let counts: Vec<CountRow> = sqlx::query_as(
        "SELECT substr(division_code, 1, $3), sum(households)::bigint,
                sum(dual_employment)::bigint, sum(zero_employment)::bigint,
                sum(dibao_among_zero)::bigint
         FROM api_household_count
         WHERE division_code >= $1 AND division_code < $2
         GROUP BY 1 HAVING sum(households) <> 0",
    )
    .bind(division.as_str())
    .bind(division.upper())
    .bind(group)
    .fetch_all(pool)
    .await?;
    let overdue: Vec<OverdueRow> = sqlx::query_as(
        "SELECT substr(division_code, 1, $3),
                count(*) FILTER (WHERE $4::date - zero_since > $5),
                count(*) FILTER (WHERE $4::date - GREATEST(last_visit, zero_since) > $6)
         FROM household
         WHERE status = 'zero_employment' AND division_code >= $1 AND division_code < $2
         GROUP BY 1",
    )
    .bind(division.as_str())
    .bind(division.upper())
    .bind(group)
    .bind(today)
    .bind(placement_limit_days as i32)
    .bind(VISIT_GAP_DAYS)
    .fetch_all(pool)
    .await?;
    let (spells, median) = spells(pool, division, group, month).await?;
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    for (child, households, dual, zero, dibao) in counts {
        let f = out.entry(child).or_default();
        f.households = households;
        f.dual_employment = dual;
        f.zero_employment = zero;
        f.dibao_among_zero = dibao;
    }
    for (child, placement, visit) in overdue {
        let f = out.entry(child).or_default();
        f.placement_overdue = placement;
        f.visit_overdue = visit;
    }
    for (child, new, resolved, median, employed, stable) in spells {
        let f = out.entry(child).or_default();
        f.new_this_month = new;
        f.resolved_this_month = resolved;
        f.median_days_to_placement = median;
        f.employed_after_spell = employed;
        f.stable_after_spell = stable;
        f.stable_employment_rate = rate(stable, employed);
    }
    Ok((out, median))
}

/// How often the API folds the household counters' deltas.
pub const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Fold each community's counter deltas into one row
/// (`api_household_count_compact`); returns how many rows it folded.
pub async fn compact_counts(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT api_household_count_compact()")
        .fetch_one(pool)
        .await
}

/// Fold the counters every [`COMPACT_EVERY`] until `stopped`. A failure
/// (the database away) is logged and tried again at the next tick: the
/// counts stay exact either way, only reading them costs more rows.
pub async fn keep_counts_compact(pool: PgPool, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        if stop {
            return;
        }
        if let Err(e) = compact_counts(&pool).await {
            tracing::warn!(error = %e, "folding the household counters failed; trying again");
        }
    }
}

/// Opened and closed spells per child in the 12 months to the end of
/// `month` (the `api_spell_event` read model, which the trigger on
/// `household_version` keeps); and the median over the whole division.
async fn spells(
    pool: &PgPool,
    division: &Division,
    group: i32,
    month: Month,
) -> anyhow::Result<(Vec<SpellRow>, Option<f64>)> {
    let rows: Vec<SpellRow> = sqlx::query_as(
        "WITH v AS (
            SELECT substr(division_code, 1, $3) AS child, opens, NOT opens AS closes, days,
                   employed, stable, published_at >= $4 AND published_at < $5 AS in_month
            FROM api_spell_event
            WHERE division_code >= $1 AND division_code < $2
              AND published_at >= $6 AND published_at < $5)
         SELECT COALESCE(child, ''),
                count(*) FILTER (WHERE opens AND in_month),
                count(*) FILTER (WHERE closes AND in_month),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FILTER (WHERE closes AND in_month),
                COALESCE(sum(employed) FILTER (WHERE closes), 0)::bigint,
                COALESCE(sum(stable) FILTER (WHERE closes), 0)::bigint
         FROM v GROUP BY ROLLUP (child) ORDER BY GROUPING(child), 1",
    )
    .bind(division.as_str())
    .bind(division.upper())
    .bind(group)
    .bind(month.start())
    .bind(month.end())
    .bind(month.next().back(MONTHS_BACK).start())
    .fetch_all(pool)
    .await?;
    // ROLLUP's grand total (child '') comes last: it holds the division's median.
    let mut rows = rows;
    let median = match rows.last() {
        Some((child, ..)) if child.is_empty() => rows.pop().and_then(|r| r.3),
        _ => None,
    };
    Ok((rows, median))
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The division's figures and its next-level divisions'", body = Stats),
        (status = 400, description = "Malformed parameter, or a month outside the last 12", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Division outside the token's scope", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_stats(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let division = caller.division(q.division.as_deref())?;
    let today = state.clock.today();
    let this_month = Month::of(today);
    let month = match q.month.as_deref().filter(|m| !m.is_empty()) {
        None => this_month,
        Some(m) => Month::parse(m)
            .filter(|m| *m <= this_month && *m >= this_month.back(MONTHS_BACK))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "month must be YYYY-MM, this month or one of the 12 before".into(),
                )
            })?,
    };
    let stats = stats(&state, &division, month, today).await?;
    Ok(Json(stats))
}

pub async fn stats(
    state: &AppState,
    division: &Division,
    month: Month,
    today: NaiveDate,
) -> anyhow::Result<Stats> {
    let limit = state.settings.rules.placement_limit_days;
    let (by_child, median) = compute(&state.pool, division, month, today, i64::from(limit)).await?;
    let mut total = Figures::default();
    for f in by_child.values() {
        total.add(f);
    }
    total.median_days_to_placement = median;
    let children = if division.child_len().is_some() {
        by_child
            .into_iter()
            .map(|(division_code, figures)| ChildFigures {
                division_code,
                figures,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Stats {
        division: division.to_string(),
        month: month.label(),
        stable_employment_target: STABLE_EMPLOYMENT_TARGET,
        total,
        children,
    })
}

impl PartialOrd for Month {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Month {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.first.cmp(&other.first)
    }
}

/// Spells opened and closed per month (Asia/Shanghai, `YYYY-MM`) since `from`.
pub async fn flows(
    pool: &PgPool,
    division: &Division,
    from: Month,
) -> anyhow::Result<BTreeMap<String, (i64, i64)>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT to_char((published_at + interval '8 hours') AT TIME ZONE 'UTC', 'YYYY-MM'),
                count(*) FILTER (WHERE opens), count(*) FILTER (WHERE NOT opens)
         FROM api_spell_event
         WHERE division_code >= $1 AND division_code < $2 AND published_at >= $3
         GROUP BY 1",
    )
    .bind(division.as_str())
    .bind(division.upper())
    .bind(from.start())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(m, o, c)| (m, (o, c))).collect())
}

/// Open households at the end of each of the 12 months ending with this
/// one, from today's count and the spells opened and closed since: what was
/// open at a month's end is what is open now, less what opened after it,
/// plus what closed after it.
pub fn open_by_month(
    open_today: i64,
    this_month: Month,
    flows: &BTreeMap<String, (i64, i64)>,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut open = open_today;
    let mut month = this_month;
    for _ in 0..MONTHS_BACK {
        out.push((month.label(), open));
        let (opened, closed) = flows.get(&month.label()).copied().unwrap_or_default();
        open = open - opened + closed;
        month = month.back(1);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_bounded_in_shanghai_time() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.start().to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert_eq!(m.end().to_rfc3339(), "2026-11-30T16:00:00+00:00");
        assert_eq!(m.back(12).label(), "2025-11");
        assert!(Month::parse("2026-13").is_none());
        assert!(Month::parse("2026-1").is_none());
    }
}

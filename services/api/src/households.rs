//! `GET /api/v1/households` (the ledger, paged by cursor) and
//! `GET /api/v1/households/{household_id}` (state, lineage, alerts).

use crate::access::{self, Caller, Division, PiiPolicy};
use crate::alerts::{self, Alert};
use crate::http::{
    ApiError, AppState, Params, PathParam, decode_cursor, encode_cursor, page_limit,
};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use dynzero_contracts::pii;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

/// `visit_overdue`: the last visit (or `zero_since`, if later) is more than
/// this many days before today (the contract's rule, as the hub alerts on it).
pub const VISIT_GAP_DAYS: i32 = 31;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Division prefix (4, 6, 9 or 12 digits) within the token's scope; default: the whole scope.
    #[param(pattern = "^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$")]
    pub division: Option<String>,
    /// `zero_employment`, `employed` or `no_labour_force`.
    #[param(pattern = "^(zero_employment|employed|no_labour_force)$")]
    pub status: Option<String>,
    /// Only households with (true) or without (false) an active 低保 case.
    pub dibao: Option<bool>,
    /// `placement` or `visit`: only zero-employment households overdue for it today.
    #[param(pattern = "^(placement|visit)$")]
    pub overdue: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of household states.
#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdPage {
    /// Each item is the household's state `data` as last published (contract §6).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Which households a list asks for, checked.
#[derive(Debug, Clone)]
pub struct Filter {
    pub division: Division,
    pub status: Option<String>,
    pub dibao: Option<bool>,
    pub overdue: Option<String>,
    pub today: NaiveDate,
    pub placement_limit_days: i64,
}

impl Filter {
    pub fn parse(caller: &Caller, q: &ListQuery, state: &AppState) -> Result<Filter, ApiError> {
        if let Some(s) = q.status.as_deref()
            && !["zero_employment", "employed", "no_labour_force"].contains(&s)
        {
            return Err(ApiError::BadRequest(
                "status must be zero_employment, employed or no_labour_force".into(),
            ));
        }
        if let Some(o) = q.overdue.as_deref()
            && !["placement", "visit"].contains(&o)
        {
            return Err(ApiError::BadRequest(
                "overdue must be placement or visit".into(),
            ));
        }
        Ok(Filter {
            division: caller.division(q.division.as_deref())?,
            status: q.status.clone().filter(|s| !s.is_empty()),
            dibao: q.dibao,
            overdue: q.overdue.clone().filter(|s| !s.is_empty()),
            today: state.clock.today(),
            placement_limit_days: i64::from(state.settings.rules.placement_limit_days),
        })
    }
}

/// The household states matching `filter`, after `after` (a household id),
/// in household id order: a household that changes, or moves, while someone
/// pages still appears exactly once.
pub async fn page(
    pool: &PgPool,
    filter: &Filter,
    after: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<LedgerRow>> {
    let rows: Vec<(String, Value, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT h.household_id, v.content, h.last_visit
         FROM (SELECT household_id, version, last_visit FROM household h
               WHERE h.version > 0
                 AND h.division_code >= $1 AND h.division_code < $2
                 AND ($3::text IS NULL OR h.status = $3)
                 AND ($4::bool IS NULL OR (jsonb_typeof(h.content->'dibao') = 'object') = $4)
                 AND ($5::text IS NULL OR (h.status = 'zero_employment' AND CASE $5
                       WHEN 'placement' THEN $6::date - h.zero_since > $7
                       ELSE $6::date - GREATEST(h.last_visit, h.zero_since) > $8 END))
                 AND ($9::text IS NULL OR h.household_id > $9)
                 AND ($11::text IS NULL OR h.division_code = $11)
               ORDER BY h.household_id
               LIMIT $10) AS h
         JOIN household_version v ON v.household_id = h.household_id AND v.version = h.version
         ORDER BY h.household_id",
    )
    .bind(filter.division.as_str())
    .bind(filter.division.upper())
    .bind(filter.status.as_deref())
    .bind(filter.dibao)
    .bind(filter.overdue.as_deref())
    .bind(filter.today)
    .bind(filter.placement_limit_days as i32)
    .bind(VISIT_GAP_DAYS)
    .bind(after)
    .bind(limit)
    // A community is one code: equality lets the index on (division_code,
    // household_id) deliver the page in order.
    .bind(
        filter
            .division
            .child_len()
            .is_none()
            .then(|| filter.division.as_str()),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(household_id, state, last_visit)| LedgerRow {
            household_id,
            state,
            last_visit,
        })
        .collect())
}

/// A household in a list: its state as published, and its last visit (which
/// the ledger shows and the state does not carry).
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub household_id: String,
    pub state: Value,
    pub last_visit: Option<NaiveDate>,
}

/// Mask a value for a `masked` caller.
pub fn present(caller: &Caller, mut value: Value) -> Value {
    if caller.pii == PiiPolicy::Masked {
        pii::mask_value(&mut value);
    }
    value
}

#[utoipa::path(get, path = "/api/v1/households", tag = "households", params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of household states in scope", body = HouseholdPage),
        (status = 400, description = "Malformed parameter", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Division outside the token's scope", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<HouseholdPage>, ApiError> {
    let filter = Filter::parse(&caller, &q, &state)?;
    let limit = page_limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let mut rows = page(&state.pool, &filter, after.as_deref(), limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&r.household_id))
    } else {
        None
    };
    let ids: Vec<String> = rows.iter().map(|r| r.household_id.clone()).collect();
    access::audit_reads(&state.pool, &caller, &ids).await?;
    Ok(Json(HouseholdPage {
        items: rows
            .into_iter()
            .map(|r| present(&caller, r.state))
            .collect(),
        next_cursor,
    }))
}

/// One inbound event that caused a version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Cause {
    pub source: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's CloudEvents `time`; null if the hub did not record it.
    pub time: Option<String>,
}

/// One published version: the lineage.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub version: i64,
    pub status: String,
    pub zero_since: Option<NaiveDate>,
    pub published_at: DateTime<Utc>,
    pub caused_by: Vec<Cause>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdDetail {
    /// The state `data` as last published.
    #[schema(value_type = Object)]
    pub state: Value,
    /// Every published version, oldest first.
    pub versions: Vec<Version>,
    /// The household's alerts, newest first.
    pub alerts: Vec<Alert>,
}

type VersionRow = (i64, String, Option<NaiveDate>, DateTime<Utc>, Value);

/// A household's detail if it exists within `scope`.
pub async fn detail(
    pool: &PgPool,
    scope: &Division,
    household_id: &str,
) -> anyhow::Result<Option<HouseholdDetail>> {
    let state: Option<(String, Value)> = sqlx::query_as(
        "SELECT h.division_code, v.content FROM household h
         JOIN household_version v ON v.household_id = h.household_id AND v.version = h.version
         WHERE h.household_id = $1",
    )
    .bind(household_id)
    .fetch_optional(pool)
    .await?;
    let Some((division, state)) = state.filter(|(d, _)| scope.covers(d)) else {
        return Ok(None);
    };
    let _ = division;
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT v.version, v.status, v.zero_since, v.published_at,
                COALESCE((SELECT jsonb_agg(jsonb_build_object(
                              'source', i.source, 'id', i.id, 'type', i.event_type,
                              'time', i.time) ORDER BY i.arrival)
                          FROM inbox i WHERE i.arrival = ANY(v.cause_arrivals)), '[]'::jsonb)
         FROM household_version v WHERE v.household_id = $1 ORDER BY v.version",
    )
    .bind(household_id)
    .fetch_all(pool)
    .await?;
    let versions = rows
        .into_iter()
        .map(|(version, status, zero_since, published_at, causes)| {
            Ok(Version {
                version,
                status,
                zero_since,
                published_at,
                caused_by: serde_json::from_value(causes)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let alerts = alerts::of_household(pool, household_id).await?;
    Ok(Some(HouseholdDetail {
        state,
        versions,
        alerts,
    }))
}

#[utoipa::path(get, path = "/api/v1/households/{household_id}", tag = "households",
    params(("household_id" = String, Path, description = "Household registration number (户编号)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "State, lineage and alerts", body = HouseholdDetail),
        (status = 400, description = "Malformed household id", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such household in the token's scope", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(household_id): PathParam<String>,
) -> Result<Json<HouseholdDetail>, ApiError> {
    let mut found = detail(&state.pool, &caller.scope, &household_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no household {household_id}")))?;
    access::audit_reads(&state.pool, &caller, std::slice::from_ref(&household_id)).await?;
    found.state = present(&caller, found.state);
    for alert in &mut found.alerts {
        alert.mask_for(&caller);
    }
    Ok(Json(found))
}

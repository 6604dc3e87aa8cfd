//! 台账 exported as CSV (UTF-8 with a BOM, so spreadsheet programs read the
//! Chinese) and XLSX, the way street offices pass ledgers on.

use super::ledger::{LedgerQuery, Line, lines};
use super::{Viewer, failure};
use crate::http::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

const HEADINGS: [&str; 10] = [
    "户编号",
    "社区区划代码",
    "状态",
    "成员",
    "零就业起始",
    "持续天数",
    "上次走访",
    "援助超期",
    "走访超期",
    "低保",
];

fn cells(l: &Line) -> [String; 10] {
    let yes = |b: bool| if b { "是" } else { "否" }.to_string();
    [
        l.row.household_id.clone(),
        l.text("division_code"),
        super::html::status_word(&l.text("status")).to_string(),
        l.members(),
        l.text("zero_since"),
        l.days_open.map(|d| d.to_string()).unwrap_or_default(),
        l.row.last_visit.map(|v| v.to_string()).unwrap_or_default(),
        yes(l.placement_overdue),
        yes(l.visit_overdue),
        l.dibao().unwrap_or_default(),
    ]
}

/// A CSV field, quoted when it must be; a leading `=+-@` is neutralised so a
/// spreadsheet does not run it as a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub fn to_csv(lines: &[Line]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&HEADINGS.join(","));
    out.push_str("\r\n");
    for l in lines {
        let row: Vec<String> = cells(l).iter().map(|c| field(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

pub fn to_xlsx(lines: &[Line]) -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("台账")?;
    for (c, heading) in HEADINGS.iter().enumerate() {
        sheet.write_string_only(0, c as u16, heading)?;
    }
    for (r, l) in lines.iter().enumerate() {
        for (c, cell) in cells(l).iter().enumerate() {
            sheet.write_string_only(r as u32 + 1, c as u16, cell)?;
        }
    }
    Ok(workbook.save_to_buffer()?)
}

fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn csv(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<LedgerQuery>,
) -> Response {
    match lines(&state, &caller, &q).await {
        Ok((filter, lines)) => attachment(
            "text/csv; charset=utf-8",
            &format!("ledger-{}.csv", filter.division),
            to_csv(&lines).into_bytes(),
        ),
        Err(ApiError::Internal(e)) => failure(e),
        Err(e) => e.into_response(),
    }
}

pub async fn xlsx(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Query(q): Query<LedgerQuery>,
) -> Response {
    let result = match lines(&state, &caller, &q).await {
        Ok((filter, lines)) => to_xlsx(&lines).map(|bytes| (filter, bytes)),
        Err(ApiError::Internal(e)) => Err(e),
        Err(e) => return e.into_response(),
    };
    match result {
        Ok((filter, bytes)) => attachment(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &format!("ledger-{}.xlsx", filter.division),
            bytes,
        ),
        Err(e) => failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(field("王*明"), "王*明");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
    }
}

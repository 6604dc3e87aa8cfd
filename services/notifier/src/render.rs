//! Group-bot messages: concise Chinese markdown (what happened, which
//! household or enterprise, where, what to do next), always masked, in each
//! platform's documented shape.

use crate::pii::{mask_id_numbers, mask_name};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// WeCom refuses markdown content over 4096 bytes.
const MAX_CONTENT_BYTES: usize = 4000;

pub fn kind_title(kind: &str) -> &'static str {
    match kind {
        "zero_employment_new" => "新增零就业家庭",
        "zero_employment_resolved" => "零就业家庭已就业",
        "layoff_early_warning" => "裁员预警",
        "layoff_unreported" => "未提前报告的裁员",
        "household_at_risk" => "零就业风险家庭",
        "job_match" => "岗位匹配",
        "placement_overdue" => "援助超期",
        "visit_overdue" => "走访超期",
        "data_conflict" => "数据冲突",
        _ => "预警",
    }
}

fn next_step(kind: &str) -> &'static str {
    match kind {
        "zero_employment_new" => "3 日内入户核实，建立援助台账，优先推荐岗位",
        "zero_employment_resolved" => "跟踪就业稳定情况，满 6 个月后回访",
        "layoff_early_warning" | "layoff_unreported" => "对接企业，摸清受影响职工家庭",
        "household_at_risk" => "裁员生效前入户，提前推荐岗位",
        "job_match" => "联系家庭，推荐上岗",
        "placement_overdue" => "加大援助力度，优先安置公益性岗位",
        "visit_overdue" => "尽快安排入户走访",
        "data_conflict" => "核实该成员的实际就业情况",
        _ => "请及时处理",
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// One alert as a markdown message: (title, text). Masked whatever the alert holds.
pub fn alert_markdown(event: &Value) -> (String, String) {
    let data = &event["data"];
    let kind = text(data, "/kind").unwrap_or_default();
    let title = format!("【{}】", kind_title(kind));
    let mut lines = vec![format!("### {title}")];
    if let Some(summary) = text(data, "/summary") {
        lines.push(format!("> {summary}"));
    }
    lines.push(String::new());
    if let Some(division) = text(data, "/division_code") {
        lines.push(format!("- 区划：{division}"));
    }
    if let Some(household) = text(data, "/household_id") {
        lines.push(format!("- 家庭：户 {household}"));
    }
    if let Some(name) = text(data, "/enterprise/name") {
        lines.push(format!("- 企业：{name}"));
    }
    let members: Vec<String> = ["/members", "/matched_members"]
        .iter()
        .filter_map(|p| data.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .map(mask_name)
        .collect();
    if !members.is_empty() {
        lines.push(format!("- 涉及成员：{}", members.join("、")));
    }
    if let Some(raised) = text(data, "/raised_at") {
        lines.push(format!(
            "- 时间：{}",
            raised.get(..16).unwrap_or(raised).replace('T', " ")
        ));
    }
    lines.push(format!("- 下一步：**{}**", next_step(kind)));
    (title, finish(lines))
}

/// Several alerts merged into one message, when sending them one by one
/// would exceed the bot's rate limit.
pub fn digest_markdown(events: &[Value]) -> (String, String) {
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for event in events {
        let data = &event["data"];
        let kind = text(data, "/kind").unwrap_or_default();
        let what = text(data, "/household_id")
            .map(|h| format!("户 {h}"))
            .or_else(|| text(data, "/enterprise/name").map(str::to_string))
            .unwrap_or_else(|| text(data, "/division_code").unwrap_or_default().to_string());
        by_kind.entry(kind).or_default().push(what);
    }
    let title = format!("【预警汇总】{} 条新预警", events.len());
    let mut lines = vec![
        format!("### {title}"),
        "> 短时间内预警较多，合并发送。详情请登录系统查看。".to_string(),
        String::new(),
    ];
    for (kind, whats) in &by_kind {
        let mut shown: Vec<&str> = whats.iter().take(10).map(String::as_str).collect();
        if whats.len() > shown.len() {
            shown.push("……");
        }
        lines.push(format!(
            "- **{} {} 条**：{}（{}）",
            kind_title(kind),
            whats.len(),
            shown.join("、"),
            next_step(kind)
        ));
    }
    (title, finish(lines))
}

fn finish(lines: Vec<String>) -> String {
    let mut text = mask_id_numbers(&lines.join("\n"));
    if text.len() > MAX_CONTENT_BYTES {
        let mut end = MAX_CONTENT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// WeCom group robot: `{"msgtype":"markdown","markdown":{"content":…}}`.
pub fn wecom_body(_title: &str, text: &str) -> Value {
    json!({ "msgtype": "markdown", "markdown": { "content": text } })
}

/// DingTalk custom robot: `{"msgtype":"markdown","markdown":{"title":…,"text":…}}`.
pub fn dingtalk_body(title: &str, text: &str) -> Value {
    json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_what_where_and_next_step_without_whole_ids() {
        let event = json!({"data": {
            "kind": "household_at_risk", "division_code": "210302001002", "household_id": "H-1",
            "raised_at": "2026-11-28T12:00:00.000+08:00",
            "summary": "零就业风险：户 H-1 届时将成为零就业家庭。",
            "enterprise": {"name": "鞍山钢铁机械厂", "uscc": "91210300MA0QXXXX1X"},
            "members": [{"id_number": "210302198003011234", "name": "王小明"}]}});
        let (title, text) = alert_markdown(&event);
        assert_eq!(title, "【零就业风险家庭】");
        assert!(
            text.contains("户 H-1")
                && text.contains("210302001002")
                && text.contains("鞍山钢铁机械厂")
        );
        assert!(text.contains("王*明") && !text.contains("王小明"));
        assert!(!text.contains("210302198003011234"));
        let (title, text) = digest_markdown(&[event.clone(), event]);
        assert!(title.contains("2 条"));
        assert!(text.contains("零就业风险家庭 2 条"));
    }
}

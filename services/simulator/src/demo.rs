//! The demo's sample of a city, with a few deliberately bad messages.

use crate::city::City;
use crate::message::Message;
use chrono::Days;
use serde_json::json;

impl City {
    /// The demo's sample: a few communities, a planned then effective layoff,
    /// subsidies, postings and a few bad messages.
    pub fn demo(&mut self) -> Vec<Message> {
        let today = self.config.today;
        let mut out = self.backfill();
        out.extend(self.events());
        // A layoff planned for next month, reported now: early warning and households at risk.
        let e = 0;
        let mut listed = self.employees_of(e);
        listed.truncate(22);
        if !listed.is_empty() {
            out.push(self.layoff(e, "planned", "DEMO-2026-01", today + Days::new(20), &listed));
            // And one laid off last week without any advance report.
            out.push(self.layoff(
                e,
                "effective",
                "DEMO-2026-00",
                today - Days::new(7),
                &listed[..listed.len().min(3)],
            ));
        }
        for county in 0..self.config.counties.len() {
            out.push(self.posting(county, today + Days::new(14)));
        }
        out.extend(self.bad_messages(4));
        out
    }
}

impl City {
    /// `n` deliberately bad messages, each refused for its own reason:
    /// malformed JSON, a schema violation, an impossible date and identifiers
    /// that fail their check digits, in turn. Ids are `x-1`, `x-2`, … so a
    /// run's rejections can be told apart.
    pub fn bad_messages(&mut self, n: usize) -> Vec<Message> {
        let time = self.tick();
        let bad = |body: Vec<u8>, key: &str| Message {
            routing_key: key.to_string(),
            body,
            valid: false,
        };
        let end = |id: &str, end_date: &str| {
            json!({
                "specversion": "1.0", "id": id, "source": "test", "type": "employment.ended",
                "time": time.to_rfc3339(),
                "data": {"id_number": "210302199001011234",
                         "employer": {"uscc": "91210300MA0XXXXXX1"},
                         "end_date": end_date, "reason": "resigned"},
            })
            .to_string()
            .into_bytes()
        };
        (0..n)
            .map(|i| {
                let id = format!("x-{i}");
                match i % 4 {
                    0 => bad(b"{not json".to_vec(), "household.registered"),
                    1 => bad(
                        json!({"specversion": "1.0", "id": id, "source": "test",
                               "type": "household.moved", "time": time.to_rfc3339(), "data": {}})
                        .to_string()
                        .into_bytes(),
                        "household.moved",
                    ),
                    2 => bad(end(&id, "2026-02-30"), "employment.ended"),
                    _ => bad(end(&id, "2026-02-03"), "employment.ended"),
                }
            })
            .collect()
    }
}

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
        let time = self.tick();
        let bad = |body: &[u8], key: &str| Message {
            routing_key: key.to_string(),
            body: body.to_vec(),
            valid: false,
        };
        out.push(bad(b"{not json", "household.registered"));
        out.push(bad(
            json!({"specversion": "1.0", "id": "x-1", "source": "test", "type": "household.moved",
                   "time": time.to_rfc3339(), "data": {}})
            .to_string()
            .as_bytes(),
            "household.moved",
        ));
        let bad_end = |id: &str, end_date: &str| {
            let body = json!({
                "specversion": "1.0", "id": id, "source": "test", "type": "employment.ended",
                "time": time.to_rfc3339(),
                "data": {"id_number": "210302199001011234",
                         "employer": {"uscc": "91210300MA0XXXXXX1"},
                         "end_date": end_date, "reason": "resigned"},
            });
            bad(body.to_string().as_bytes(), "employment.ended")
        };
        out.push(bad_end("x-2", "2026-02-30"));
        out.push(bad_end("x-3", "2026-02-03"));
        out
    }
}

//! One message for each kind of fact a source system reports about the city.

use crate::city::City;
use crate::message::Message;
use crate::people::Person;
use chrono::NaiveDate;
use rand::Rng;
use serde_json::{Value, json};

const TITLES: &[&str] = &[
    "保洁员",
    "保安",
    "仓库管理员",
    "公益性岗位协管员",
    "餐饮服务员",
    "快递分拣员",
    "电焊工",
];

/// A member as a registration lists them.
fn registered(p: &Person) -> Value {
    json!({
        "id_number": p.id_number, "name": p.name, "relation": p.relation,
        "able_to_work": p.status != "disabled", "seeking_work": true, "status": p.status,
    })
}

impl City {
    pub(crate) fn registration(&mut self, h: usize, effective: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("reg");
        let household = &self.households[h];
        let members: Vec<Value> = household.members.iter().map(registered).collect();
        let data = json!({
            "household_id": household.id, "division_code": household.division,
            "effective_date": effective.to_string(), "members": members,
        });
        Message::event(
            "household.registered",
            "community/registry",
            &id,
            time,
            data,
        )
    }

    pub(crate) fn start(&mut self, h: usize, m: usize, e: usize, date: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("emp");
        let stable = self.rng.random_bool(0.7);
        let kind = ["formal", "formal", "formal", "public_welfare", "flexible"]
            [self.rng.random_range(0..5)];
        let wage = if stable {
            2400.0 + self.rng.random_range(0..40) as f64 * 50.0
        } else {
            1800.5
        };
        let enterprise = &self.enterprises[e];
        let person = &self.households[h].members[m];
        let data = json!({
            "id_number": person.id_number, "name": person.name,
            "employer": { "uscc": enterprise.uscc, "name": enterprise.name },
            "start_date": date.to_string(),
            "contract_months": if stable { json!(24) } else { json!(6) },
            "monthly_wage": wage, "social_insurance": stable, "kind": kind,
        });
        let uscc = enterprise.uscc.clone();
        self.households[h].members[m].employer = Some(e);
        self.enterprises[e].headcount += 1;
        Message::from_enterprise("employment.started", &uscc, &id, time, data)
    }

    pub(crate) fn end(&mut self, h: usize, m: usize, date: NaiveDate) -> Option<Message> {
        let e = self.households[h].members[m].employer.take()?;
        let time = self.tick();
        let id = self.next_id("end");
        let enterprise = &self.enterprises[e];
        let reason =
            ["resigned", "contract_expired", "dismissed", "other"][self.rng.random_range(0..4)];
        let data = json!({
            "id_number": self.households[h].members[m].id_number,
            "employer": { "uscc": enterprise.uscc },
            "end_date": date.to_string(), "reason": reason,
        });
        Some(Message::from_enterprise(
            "employment.ended",
            &enterprise.uscc,
            &id,
            time,
            data,
        ))
    }

    pub(crate) fn visit(&mut self, h: usize, date: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("visit");
        let household = &self.households[h];
        let findings: Vec<Value> = household
            .members
            .iter()
            .filter(|p| p.status == "none")
            .map(|p| {
                let employment = if p.employer.is_some() {
                    "employed"
                } else {
                    "unemployed"
                };
                json!({ "id_number": p.id_number, "employment": employment })
            })
            .collect();
        let data = json!({
            "household_id": household.id, "visit_date": date.to_string(),
            "worker": "社区网格员", "findings": findings,
        });
        Message::event("household.visited", "community/visits", &id, time, data)
    }

    pub(crate) fn subsidy(&mut self, h: usize, change: &str, date: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("dibao");
        let household = &self.households[h];
        let amount = if change == "revoked" {
            0.0
        } else {
            600.0 + household.members.len() as f64 * 150.0
        };
        let data = json!({
            "case_id": format!("DB-{}", household.id), "applicant_id_number": household.members[0].id_number,
            "division_code": household.division, "change": change,
            "monthly_amount": amount, "effective_date": date.to_string(),
        });
        Message::event("subsidy.changed", "civil-affairs/anshan", &id, time, data)
    }

    pub(crate) fn layoff(
        &mut self,
        e: usize,
        stage: &str,
        notice: &str,
        date: NaiveDate,
        people: &[(usize, usize)],
    ) -> Message {
        let time = self.tick();
        let id = self.next_id("layoff");
        let enterprise = &self.enterprises[e];
        let employees: Vec<Value> = people
            .iter()
            .map(|&(h, m)| {
                let p = &self.households[h].members[m];
                json!({ "id_number": p.id_number, "name": p.name })
            })
            .collect();
        let data = json!({
            "notice_id": notice, "stage": stage, "effective_date": date.to_string(),
            "enterprise": { "uscc": enterprise.uscc, "name": enterprise.name,
                            "headcount": enterprise.headcount.max(people.len() as u32).max(1),
                            "division_code": enterprise.division },
            "employees": employees,
        });
        Message::from_enterprise("layoff.notice", &enterprise.uscc, &id, time, data)
    }

    pub(crate) fn posting(&mut self, county: usize, valid_until: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("post");
        let divisions = self.divisions();
        let county_code = self.config.counties[county % self.config.counties.len()].clone();
        let division = divisions
            .iter()
            .find(|d| d.starts_with(&county_code))
            .cloned()
            .unwrap_or_default();
        let e = county * 3 % self.enterprises.len().max(1);
        let enterprise = &self.enterprises[e];
        let title = TITLES[self.rng.random_range(0..TITLES.len())];
        let data = json!({
            "posting_id": format!("P-{id}"),
            "employer": { "uscc": enterprise.uscc, "name": enterprise.name },
            "title": title, "openings": self.rng.random_range(1..4),
            "division_code": division, "monthly_wage": 2600, "contract_months": 12,
            "social_insurance": true, "public_welfare": title.contains("公益"),
            "age_min": 18, "age_max": 55, "valid_until": valid_until.to_string(),
        });
        Message::event("job.posting", "jobs/anshan", &id, time, data)
    }
}

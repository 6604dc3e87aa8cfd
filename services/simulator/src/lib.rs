//! Synthetic communities as inbound CloudEvents: what the demo publishes and
//! what the end-to-end tests and benchmarks feed the hub.
//!
//! Everything is seeded: the same seed gives the same messages.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use dynzero_domain::ids::{id_number_check_char, uscc_check_char};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// One inbound message as a source system would publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub routing_key: String,
    pub body: Vec<u8>,
    /// False for the deliberately bad messages of the demo.
    pub valid: bool,
}

impl Message {
    fn event(event_type: &str, source: &str, id: &str, time: DateTime<Utc>, data: Value) -> Self {
        let envelope = json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": event_type,
            "time": time.to_rfc3339(),
            "datacontenttype": "application/json",
            "data": data,
        });
        Message {
            routing_key: event_type.to_string(),
            body: serde_json::to_vec(&envelope).unwrap_or_default(),
            valid: true,
        }
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "建国",
];
const EMPLOYERS: &[&str] = &[
    "鞍山钢铁机械厂",
    "立山区商贸有限公司",
    "铁东物业服务中心",
    "千山建材有限公司",
    "鞍山热力集团",
    "铁西纺织有限公司",
];
const TITLES: &[&str] = &[
    "保洁员",
    "保安",
    "仓库管理员",
    "公益性岗位协管员",
    "餐饮服务员",
    "快递分拣员",
    "电焊工",
];

/// A valid 18-character id number for an address code, birth date and sex.
pub fn id_number(address: &str, birth: NaiveDate, male: bool, serial: u32) -> String {
    let seq = (serial % 500) * 2 + if male { 1 } else { 0 };
    let first17 = format!("{address}{}{seq:03}", birth.format("%Y%m%d"));
    let check = id_number_check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// A valid unified social credit code for a serial number.
pub fn uscc(division6: &str, serial: u32) -> String {
    let first17 = format!("9121{}{:08}{}", &division6[2..6], serial, "M");
    let first17: String = first17.chars().take(17).collect();
    let check = uscc_check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// The shape of the synthetic city.
#[derive(Debug, Clone)]
pub struct CityConfig {
    pub seed: u64,
    pub households: usize,
    /// County-level prefixes (6 digits) to spread households over.
    pub counties: Vec<String>,
    pub streets_per_county: u32,
    pub communities_per_street: u32,
    /// Messages after the registrations and initial employments.
    pub events: usize,
    pub today: NaiveDate,
    /// Goes into every household id and message id, so two runs never collide.
    pub tag: String,
    /// How likely someone whose employment ends finds work again within
    /// weeks (a later `employment.started` in the stream).
    pub reemployment: f64,
    /// Percent of the later events that are job postings.
    pub posting_percent: u32,
    /// The oldest age at which the generator gives people jobs.
    pub oldest_worker: i32,
}

impl CityConfig {
    pub fn small(seed: u64, households: usize, events: usize, today: NaiveDate) -> Self {
        Self {
            seed,
            households,
            counties: vec!["210302".into(), "210303".into()],
            streets_per_county: 2,
            communities_per_street: 2,
            events,
            today,
            tag: String::new(),
            reemployment: 0.0,
            posting_percent: 14,
            oldest_worker: 58,
        }
    }

    /// A city in the source programme's proportions: nearly everyone of
    /// working age has a job, most people who lose one find another within
    /// weeks, so about 5 in 1,000 households are
    /// zero-employment at any time; four counties of ten streets of ten
    /// communities; postings are 3 % of the later events.
    pub fn city(seed: u64, households: usize, events: usize, today: NaiveDate) -> Self {
        Self {
            counties: vec![
                "210302".into(),
                "210303".into(),
                "210304".into(),
                "210311".into(),
            ],
            streets_per_county: 10,
            communities_per_street: 10,
            reemployment: 0.97,
            posting_percent: 3,
            // Anyone the retirement rules may still count in the labour force.
            oldest_worker: 63,
            ..Self::small(seed, households, events, today)
        }
    }
}

#[derive(Debug, Clone)]
struct Person {
    id_number: String,
    name: String,
    birth: NaiveDate,
    relation: &'static str,
    status: &'static str,
    employer: Option<usize>,
}

#[derive(Debug, Clone)]
struct Household {
    id: String,
    division: String,
    members: Vec<Person>,
}

#[derive(Debug, Clone)]
struct Enterprise {
    uscc: String,
    name: String,
    division: String,
    headcount: u32,
}

/// Generates a city and the stream of facts about it.
pub struct City {
    config: CityConfig,
    rng: StdRng,
    households: Vec<Household>,
    enterprises: Vec<Enterprise>,
    next_id: u64,
    clock: DateTime<Utc>,
    serial: u32,
}

impl City {
    pub fn new(config: CityConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        let start = config.today - Days::new(400);
        let clock = Utc.from_utc_datetime(&start.and_hms_opt(1, 0, 0).unwrap_or_default());
        let mut city = City {
            config,
            rng,
            households: Vec::new(),
            enterprises: Vec::new(),
            next_id: 0,
            clock,
            serial: 0,
        };
        city.build();
        city
    }

    fn divisions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for county in &self.config.counties {
            for street in 1..=self.config.streets_per_county {
                for community in 1..=self.config.communities_per_street {
                    out.push(format!("{county}{street:03}{community:03}"));
                }
            }
        }
        out
    }

    fn name(&mut self) -> String {
        let s = SURNAMES[self.rng.random_range(0..SURNAMES.len())];
        let g = GIVEN[self.rng.random_range(0..GIVEN.len())];
        format!("{s}{g}")
    }

    fn person(
        &mut self,
        division: &str,
        age_from: u32,
        age_to: u32,
        relation: &'static str,
    ) -> Person {
        let today = self.config.today;
        let age = self.rng.random_range(age_from..=age_to);
        let day_of_year = self.rng.random_range(0..365);
        let birth = NaiveDate::from_ymd_opt(today.year() - age as i32, 1, 1)
            .unwrap_or(today)
            .checked_add_days(Days::new(day_of_year))
            .unwrap_or(today);
        let birth = birth.min(today - Days::new(1));
        let male = self.rng.random_bool(0.5);
        self.serial += 1;
        let status = if age < 16 {
            "none"
        } else if age <= 22 && self.rng.random_bool(0.6) {
            "student"
        } else if age >= 62 {
            "retired"
        } else if self.rng.random_bool(0.03) {
            "disabled"
        } else {
            "none"
        };
        Person {
            id_number: id_number(&division[..6], birth, male, self.serial),
            name: self.name(),
            birth,
            relation,
            status,
            employer: None,
        }
    }

    fn build(&mut self) {
        let divisions = self.divisions();
        for (i, county) in self.config.counties.clone().iter().enumerate() {
            for j in 0..3 {
                let serial = (i * 10 + j) as u32 + 1;
                self.enterprises.push(Enterprise {
                    uscc: uscc(county, serial),
                    name: EMPLOYERS[(i * 3 + j) % EMPLOYERS.len()].to_string(),
                    division: format!("{county}001000"),
                    headcount: 0,
                });
            }
        }
        for n in 0..self.config.households {
            let division = divisions[n % divisions.len()].clone();
            let mut members = vec![self.person(&division, 25, 63, "head")];
            if self.rng.random_bool(0.7) {
                members.push(self.person(&division, 25, 63, "spouse"));
            }
            for _ in 0..self.rng.random_range(0..3) {
                members.push(self.person(&division, 0, 26, "child"));
            }
            if self.rng.random_bool(0.2) {
                members.push(self.person(&division, 64, 85, "parent"));
            }
            members.truncate(6);
            self.households.push(Household {
                id: format!("HH{}-{}-{n:06}", self.config.tag, &division[6..12]),
                division,
                members,
            });
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += chrono::Duration::seconds(self.rng.random_range(1..60));
        self.clock
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}-{:08}", self.config.tag, self.next_id)
    }

    fn working_age(&self, p: &Person, on: NaiveDate) -> bool {
        let age = on.year() - p.birth.year();
        (18..=self.config.oldest_worker).contains(&age)
            && (p.status == "none" || p.status == "disabled")
    }

    fn registration(&mut self, h: usize, effective: NaiveDate) -> Message {
        let time = self.tick();
        let id = self.next_id("reg");
        let household = &self.households[h];
        let members: Vec<Value> = household
            .members
            .iter()
            .map(|p| {
                json!({
                    "id_number": p.id_number, "name": p.name, "relation": p.relation,
                    "able_to_work": p.status != "disabled", "seeking_work": true, "status": p.status,
                })
            })
            .collect();
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

    fn start(&mut self, h: usize, m: usize, e: usize, date: NaiveDate) -> Message {
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
        let source = format!("urn:uscc:{}", enterprise.uscc);
        self.households[h].members[m].employer = Some(e);
        self.enterprises[e].headcount += 1;
        Message::event("employment.started", &source, &id, time, data)
    }

    fn end(&mut self, h: usize, m: usize, date: NaiveDate) -> Option<Message> {
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
        Some(Message::event(
            "employment.ended",
            &format!("urn:uscc:{}", enterprise.uscc),
            &id,
            time,
            data,
        ))
    }

    fn visit(&mut self, h: usize, date: NaiveDate) -> Message {
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

    fn subsidy(&mut self, h: usize, change: &str, date: NaiveDate) -> Message {
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

    fn layoff(
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
        Message::event(
            "layoff.notice",
            &format!("urn:uscc:{}", enterprise.uscc),
            &id,
            time,
            data,
        )
    }

    fn posting(&mut self, county: usize, valid_until: NaiveDate) -> Message {
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

    /// Registrations and initial employments: about 1 in 50 households
    /// starts with nobody employed (besides those with no labour force).
    pub fn backfill(&mut self) -> Vec<Message> {
        let today = self.config.today;
        let registered = today - Days::new(365);
        let mut out = Vec::new();
        for h in 0..self.households.len() {
            // Employment registrations first, as a city backfill would send
            // them: the household's first version is then already right.
            let zero = self.rng.random_bool(0.005);
            for m in 0..self.households[h].members.len() {
                let p = self.households[h].members[m].clone();
                if !zero && self.working_age(&p, today) && self.rng.random_bool(0.99) {
                    let e = self.rng.random_range(0..self.enterprises.len());
                    let date = registered + Days::new(self.rng.random_range(0..60));
                    out.push(self.start(h, m, e, date));
                }
            }
            out.push(self.registration(h, registered));
        }
        out
    }

    /// Someone who lost a job on `lost` finds another within `days` days,
    /// as likely as `reemployment` says (and not after today).
    fn reemployment(&mut self, h: usize, m: usize, lost: NaiveDate, days: u64) -> Option<Message> {
        // No draw when there is no chance: the small city's stream stays as it was.
        if self.config.reemployment <= 0.0
            || !self.rng.random_bool(self.config.reemployment.min(1.0))
        {
            return None;
        }
        let e = self.rng.random_range(0..self.enterprises.len());
        let later = (lost + Days::new(self.rng.random_range(1..days))).min(self.config.today);
        Some(self.start(h, m, e, later))
    }

    /// From now on, `events()` makes this many.
    pub fn set_events(&mut self, events: usize) {
        self.config.events = events;
    }

    /// A stream of later facts: ends, starts, visits, subsidy changes,
    /// postings, and now and then a layoff reported in advance.
    pub fn events(&mut self) -> Vec<Message> {
        let today = self.config.today;
        let mut out = Vec::new();
        let n = self.households.len().max(1);
        while out.len() < self.config.events {
            let h = self.rng.random_range(0..n);
            let date = today - Days::new(self.rng.random_range(1..200));
            let roll = self.rng.random_range(0..100);
            let members = self.households[h].members.len();
            let m = self.rng.random_range(0..members);
            let postings = 99 - self.config.posting_percent.min(99);
            match roll {
                0..=9 => {
                    if let Some(msg) = self.end(h, m, date) {
                        out.push(msg);
                        out.extend(self.reemployment(h, m, date, 30));
                    }
                }
                10..=49 => {
                    let p = self.households[h].members[m].clone();
                    if p.employer.is_none() && self.working_age(&p, today) {
                        let e = self.rng.random_range(0..self.enterprises.len());
                        out.push(self.start(h, m, e, date));
                    }
                }
                50..=69 => out.push(self.visit(h, date)),
                70..=84 => {
                    let change = ["granted", "adjusted", "revoked"][self.rng.random_range(0..3)];
                    out.push(self.subsidy(h, change, date));
                }
                r if (postings..=98).contains(&r) => {
                    let county = self.rng.random_range(0..self.config.counties.len());
                    out.push(self.posting(county, today + Days::new(30)));
                }
                99 => {
                    let e = self.rng.random_range(0..self.enterprises.len());
                    let mut listed: Vec<(usize, usize)> = (0..self.households.len())
                        .flat_map(|h| (0..self.households[h].members.len()).map(move |m| (h, m)))
                        .filter(|&(h, m)| self.households[h].members[m].employer == Some(e))
                        .collect();
                    listed.shuffle(&mut self.rng);
                    listed.truncate(self.rng.random_range(1..=25).min(listed.len()));
                    if listed.is_empty() {
                        continue;
                    }
                    let notice = self.next_id("N");
                    let effective = date;
                    let planned = effective - Days::new(45);
                    let saved = self.clock;
                    // Reported in advance: the planned notice's time is its own date.
                    self.clock = Utc
                        .from_utc_datetime(&planned.and_hms_opt(2, 0, 0).unwrap_or_default())
                        .max(saved);
                    out.push(self.layoff(e, "planned", &notice, effective, &listed));
                    out.push(self.layoff(e, "effective", &notice, effective, &listed));
                    for (h, m) in listed {
                        self.households[h].members[m].employer = None;
                        out.extend(self.reemployment(h, m, effective, 60));
                    }
                }
                // Monthly visits fill what postings leave.
                _ => out.push(self.visit(h, date)),
            }
        }
        out
    }

    /// The demo's sample: a few communities, a planned then effective layoff,
    /// subsidies, postings and a few bad messages.
    pub fn demo(&mut self) -> Vec<Message> {
        let today = self.config.today;
        let mut out = self.backfill();
        out.extend(self.events());
        // A layoff planned for next month, reported now: early warning and households at risk.
        let e = 0;
        let listed: Vec<(usize, usize)> = (0..self.households.len())
            .flat_map(|h| (0..self.households[h].members.len()).map(move |m| (h, m)))
            .filter(|&(h, m)| self.households[h].members[m].employer == Some(e))
            .take(22)
            .collect();
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
        out.push(bad(
            json!({"specversion": "1.0", "id": "x-2", "source": "test", "type": "employment.ended",
                   "time": time.to_rfc3339(),
                   "data": {"id_number": "210302199001011234", "employer": {"uscc": "91210300MA0XXXXXX1"},
                            "end_date": "2026-02-30", "reason": "resigned"}}).to_string().as_bytes(),
            "employment.ended",
        ));
        out.push(bad(
            json!({"specversion": "1.0", "id": "x-3", "source": "test", "type": "employment.ended",
                   "time": time.to_rfc3339(),
                   "data": {"id_number": "210302199001011234", "employer": {"uscc": "91210300MA0XXXXXX1"},
                            "end_date": "2026-02-03", "reason": "resigned"}}).to_string().as_bytes(),
            "employment.ended",
        ));
        out
    }
}

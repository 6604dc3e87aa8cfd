//! The city as it changes: its clock, message ids, and the stream of facts
//! a backfill and later events report about it.

use crate::config::CityConfig;
use crate::message::Message;
use crate::people::{Enterprise, Household, Person};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Generates a city and the stream of facts about it.
pub struct City {
    pub(crate) config: CityConfig,
    pub(crate) rng: StdRng,
    pub(crate) households: Vec<Household>,
    pub(crate) enterprises: Vec<Enterprise>,
    next_id: u64,
    pub(crate) clock: DateTime<Utc>,
    pub(crate) serial: u32,
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

    pub(crate) fn divisions(&self) -> Vec<String> {
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

    pub(crate) fn tick(&mut self) -> DateTime<Utc> {
        self.clock += chrono::Duration::seconds(self.rng.random_range(1..60));
        self.clock
    }

    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}-{:08}", self.config.tag, self.next_id)
    }

    fn working_age(&self, p: &Person, on: NaiveDate) -> bool {
        let age = on.year() - p.birth.year();
        (18..=self.config.oldest_worker).contains(&age)
            && (p.status == "none" || p.status == "disabled")
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

    /// Everyone enterprise `e` employs now, as (household, member) indexes.
    pub(crate) fn employees_of(&self, e: usize) -> Vec<(usize, usize)> {
        (0..self.households.len())
            .flat_map(|h| (0..self.households[h].members.len()).map(move |m| (h, m)))
            .filter(|&(h, m)| self.households[h].members[m].employer == Some(e))
            .collect()
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
                    let mut listed = self.employees_of(e);
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
}

//! The shape of the synthetic city: how many households, where, and how
//! their members' working lives go.

use chrono::NaiveDate;

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

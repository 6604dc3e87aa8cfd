//! The population: people with valid id numbers and names, their
//! households, and the enterprises that employ them.

use crate::city::City;
use chrono::{Datelike, Days, NaiveDate};
use dynzero_domain::ids::{id_number_check_char, uscc_check_char};
use rand::Rng;

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

#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) id_number: String,
    pub(crate) name: String,
    pub(crate) birth: NaiveDate,
    pub(crate) relation: &'static str,
    pub(crate) status: &'static str,
    pub(crate) employer: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Household {
    pub(crate) id: String,
    pub(crate) division: String,
    pub(crate) members: Vec<Person>,
}

#[derive(Debug, Clone)]
pub(crate) struct Enterprise {
    pub(crate) uscc: String,
    pub(crate) name: String,
    pub(crate) division: String,
    pub(crate) headcount: u32,
}

impl City {
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

    pub(crate) fn build(&mut self) {
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
}

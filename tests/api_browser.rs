//! The board in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs): a community worker logs in,
//! sees exactly the community's ledger, and watches a layoff's alert appear
//! on the open 实时预警 page without a reload. A screenshot is kept as
//! `target/api-browser.png`. The WebDriver protocol is spoken directly over
//! HTTP: five calls do not need a client crate.

use base64::Engine;
use dynzero_api::access::{PiiPolicy, Role};
use dynzero_simulator::{City, CityConfig, id_number, uscc};
use dynzero_tests::api::TestApi;
use dynzero_tests::eventually;
use dynzero_tests::hub::Fixture;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const COMMUNITY: &str = "210302001001";

struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (.ci/run installs chromium-driver)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(20), "chromedriver ready", || {
            let http = http.clone();
            let url = format!("{base}/status");
            async move {
                http.get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=412,915"]}}}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .expect("JSON");
        let id = created["value"]["sessionId"]
            .as_str()
            .expect("a session id");
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver answers")
            .json()
            .await
            .expect("JSON");
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css} on the page: {found}"))
            .to_string()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn screenshot(&self) -> Vec<u8> {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG")
    }

    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
    }
}

fn event(id: &str, event_type: &str, time: &str, data: Value) -> (String, Vec<u8>) {
    let body = json!({"specversion": "1.0", "id": id, "source": "test/browser", "type": event_type,
                      "time": time, "data": data});
    (event_type.to_string(), body.to_string().into_bytes())
}

/// A seeded city, plus a worker employed by an enterprise of `COMMUNITY`
/// (whose layoff the test announces later): the messages, and (worker, employer).
fn city_with_an_employer() -> (Vec<(String, Vec<u8>)>, String, String) {
    let mut city = City::new(CityConfig::small(
        21,
        64,
        300,
        dynzero_tests::hub::scenario_today(),
    ));
    let mut batch: Vec<(String, Vec<u8>)> = city
        .backfill()
        .into_iter()
        .map(|m| (m.routing_key, m.body))
        .collect();
    batch.extend(city.events().into_iter().map(|m| (m.routing_key, m.body)));
    let worker = id_number(
        "210302",
        chrono::NaiveDate::from_ymd_opt(1980, 3, 1).unwrap(),
        true,
        901,
    );
    let employer = uscc("210302", 901);
    batch.push(event("b-1", "household.registered", "2026-01-01T09:00:00+08:00",
        json!({"household_id": "H-BROWSER", "division_code": COMMUNITY, "effective_date": "2026-01-01",
               "members": [{"id_number": worker, "name": "王强", "relation": "head"}]})));
    batch.push(event("b-2", "employment.started", "2026-02-01T09:00:00+08:00",
        json!({"id_number": worker, "name": "王强", "employer": {"uscc": employer, "name": "鞍山钢铁机械厂"},
               "start_date": "2026-02-01", "contract_months": null, "monthly_wage": 4200,
               "social_insurance": true, "kind": "formal"})));
    (batch, worker, employer)
}

/// Log in on the board's form; returns the households the ledger shows.
async fn log_in(browser: &Browser, base: &str, token: &str) -> BTreeSet<String> {
    browser.go(&format!("{base}/login")).await;
    let field = browser.element("#token").await;
    browser
        .call(
            reqwest::Method::POST,
            &format!("/element/{field}/value"),
            json!({"text": token}),
        )
        .await;
    let login = browser.element("#login").await;
    browser
        .call(
            reqwest::Method::POST,
            &format!("/element/{login}/click"),
            json!({}),
        )
        .await;
    eventually(Duration::from_secs(20), "the ledger after login", || async {
        let rows = browser
            .script("var t = document.getElementById('ledger'); return t ? Array.from(t.querySelectorAll('tr.household')).map(r => r.dataset.household) : null;")
            .await;
        rows.as_array().map(|rows| rows.iter().map(|r| r.as_str().unwrap_or_default().to_string()).collect::<BTreeSet<_>>())
    })
    .await
}

/// Open 实时预警, announce the layoff, and wait for its alert on the page.
async fn watch_the_layoff_arrive(
    browser: &Browser,
    fixture: &Fixture,
    base: &str,
    worker: &str,
    employer: &str,
) {
    browser.go(&format!("{base}/alerts")).await;
    eventually(Duration::from_secs(20), "the stream connected", || async {
        (browser
            .script("return document.getElementById('live-status').textContent")
            .await
            == "已连接")
            .then_some(())
    })
    .await;
    let before = browser
        .script("return document.querySelectorAll('#live-alerts tr.alert-row').length")
        .await;
    // 1 of 5 staff, planned: an early warning in the enterprise's community.
    fixture.publish(&[event("b-3", "layoff.notice", "2026-11-20T09:00:00+08:00",
        json!({"notice_id": "N-B", "stage": "planned", "effective_date": "2026-12-20",
               "enterprise": {"uscc": employer, "name": "鞍山钢铁机械厂", "headcount": 5, "division_code": COMMUNITY},
               "employees": [{"id_number": worker, "name": "王强"}]}))]).await;
    eventually(Duration::from_secs(20), "the layoff's alert on the open page", || async {
        let kinds = browser
            .script("return Array.from(document.querySelectorAll('#live-alerts tr.new')).map(r => r.dataset.kind)")
            .await;
        kinds.as_array()?.iter().any(|k| k.as_str().is_some_and(|k| k.starts_with("layoff"))).then_some(())
    })
    .await;
    let after = browser
        .script("return document.querySelectorAll('#live-alerts tr.alert-row').length")
        .await;
    assert!(
        after.as_u64() > before.as_u64(),
        "rows were added without a reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_worker_sees_the_ledger_and_live_alerts_in_chromium() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    let (batch, worker, employer) = city_with_an_employer();
    let published = batch.len() as u64;
    fixture.publish(&batch).await;
    eventually(Duration::from_secs(60), "the city ingested", || async {
        (hub.settled() >= published).then_some(())
    })
    .await;
    let api = TestApi::start(
        &fixture.settings,
        std::sync::Arc::new(fixture.clock.clone()),
    )
    .await;
    let token = api
        .token("worker", COMMUNITY, Role::Worker, PiiPolicy::Masked)
        .await;
    let expected: BTreeSet<String> = api
        .all_households(&token, "status=zero_employment", 100)
        .await
        .iter()
        .map(|s| s["household_id"].as_str().unwrap().to_string())
        .collect();
    let everywhere = api
        .token("city", "2103", Role::Worker, PiiPolicy::Masked)
        .await;
    let all_zero = api
        .all_households(&everywhere, "status=zero_employment", 100)
        .await;
    assert!(
        all_zero.len() > expected.len(),
        "other communities have zero-employment households too"
    );

    let browser = Browser::start().await;
    let shown = log_in(&browser, &api.base, &token).await;
    assert_eq!(
        shown, expected,
        "exactly the community's zero-employment ledger"
    );
    watch_the_layoff_arrive(&browser, &fixture, &api.base, &worker, &employer).await;
    let png = browser.screenshot().await;
    let exe = std::env::current_exe().expect("the test's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>");
    std::fs::write(target.join("api-browser.png"), png).expect("keeping the screenshot");
    browser.quit().await;
    api.stop().await;
    hub.stop().await;
}

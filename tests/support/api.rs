//! The read API under test: `dynzero-api` in this process on port 0, beside
//! a hub on the same database, with the hub's injected clock.

use dynzero_api::access::{self, Caller, Division, PiiPolicy, Role};
use dynzero_api::service::{Api, connect};
use dynzero_reconciler::clock::Clock;
use dynzero_reconciler::settings::Settings;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The API's settings for a hub's: same database and broker, any free port.
pub fn api_settings(hub: &Settings) -> dynzero_api::settings::Settings {
    dynzero_api::settings::Settings {
        api: dynzero_api::settings::ApiSettings {
            listen: "127.0.0.1:0".into(),
            database_url: String::new(),
        },
        amqp: hub.amqp.clone(),
        database: hub.database.clone(),
        rules: hub.rules.clone(),
    }
}

impl TestApi {
    pub async fn start(hub: &Settings, clock: Arc<dyn Clock>) -> TestApi {
        let settings = api_settings(hub);
        let pool = connect(&settings).await.expect("connecting the API");
        let api = Api::build_with_clock(settings, pool.clone(), clock)
            .await
            .expect("building the API");
        let base = format!("http://{}", api.local_addr().expect("a bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(api.run_until(async {
            let _ = stopped.await;
        }));
        TestApi {
            base,
            pool,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            stop: Some(stop),
            task,
        }
    }

    /// A new token, as `dynzero tokens add` makes it.
    pub async fn token(&self, name: &str, division: &str, role: Role, pii: PiiPolicy) -> String {
        let caller = Caller {
            name: name.into(),
            scope: Division::parse(division).expect("a valid division"),
            role,
            pii,
        };
        access::add_token(&self.pool, &caller)
            .await
            .expect("adding a token")
    }

    /// GET with a bearer token (or none): status and JSON body.
    pub async fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the API answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every household state in scope, following `next_cursor`.
    pub async fn all_households(&self, token: &str, query: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/api/v1/households?limit={limit}&{query}{cursor}");
            let (status, page) = self.get(Some(token), &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return items,
            }
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the API stops within 30 s")
            .expect("the API task did not panic")
            .expect("the API stopped cleanly");
    }
}

//! `dynzero demo`: the hub against the local broker and database, fed a
//! generated sample of a few communities, and a board of what came out.

use crate::bench::common::{Running, all_settled, props, settled};
use anyhow::Context;
use chrono::Utc;
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_reconciler::service::{Parts, Reconciler};
use dynzero_reconciler::settings::Settings;
use dynzero_runtime::settings::{CreateIfMissing, DatabaseSettings};
use dynzero_simulator::{City, CityConfig};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(settings: Settings, households: usize, seed: u64) -> anyhow::Result<()> {
    // The demo's database is a throwaway: created wherever the URL points.
    let database = DatabaseSettings {
        create_if_missing: CreateIfMissing::Always,
        ..settings.database.clone()
    };
    dynzero_runtime::database::ensure_exists(&database).await?;
    let started = Utc::now();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let today = clock.today();
    let reconciler = Reconciler::build(settings.clone(), clock).await?;
    let metrics = reconciler.hub().metrics.clone();
    let running = Running::spawn(|shutdown| reconciler.run_until(Parts::ALL, shutdown));

    let tag = format!("{:04X}", rand::random::<u16>());
    let mut config = CityConfig::small(seed, households, households * 2, today);
    config.tag = tag.clone();
    let messages = City::new(config).demo();
    let connection = amqp::connect(&settings.amqp)
        .await
        .with_context(|| format!("connecting to {:?}", settings.amqp))?;
    let channel = amqp::confirm_channel(&connection).await?;
    amqp::declare_topology(&channel, &settings.amqp).await?;
    amqp::declare_rejected_queue(&connection, &settings.amqp).await?;
    for m in &messages {
        amqp::publish_confirmed(
            &channel,
            &settings.amqp.inbound_exchange,
            &m.routing_key,
            &m.body,
            props(),
        )
        .await?;
    }
    let _ = connection.close(200, "OK".into()).await;
    eprintln!(
        "published {} messages ({} deliberately bad); waiting for the hub…",
        messages.len(),
        messages.iter().filter(|m| !m.valid).count()
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let total = messages.len() as u64;
    let mut db = PgConnection::connect(&settings.database.url).await?;
    while !all_settled(&metrics, total, &mut db).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the hub settled {} of {total} messages in 120 s",
            settled(&metrics)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    print_board(&mut db, &tag, started).await?;
    running.stop().await
}

/// Zero-employment households, as lines, by district, street and community.
type Tree = BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>>;

/// Alerts counted by division, then by kind.
type AlertCounts = BTreeMap<String, BTreeMap<String, usize>>;

/// What the run produced, district by district, then its alerts and rejections.
async fn print_board(
    db: &mut PgConnection,
    tag: &str,
    since: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let pattern = format!("HH{tag}-%");
    let households = sqlx::query(
        "SELECT household_id, division_code, status, zero_since, content->'dibao' AS dibao
         FROM household WHERE household_id LIKE $1 AND version > 0 ORDER BY division_code, household_id",
    )
    .bind(&pattern)
    .fetch_all(&mut *db)
    .await?;
    let alerts = sqlx::query(
        "SELECT kind, division_code, summary FROM alert WHERE raised_at >= $1 ORDER BY division_code, kind, id",
    )
    .bind(since)
    .fetch_all(&mut *db)
    .await?;
    let rejections =
        sqlx::query("SELECT reason, detail FROM rejection WHERE rejected_at >= $1 ORDER BY seq")
            .bind(since)
            .fetch_all(&mut *db)
            .await?;

    println!("\n零就业家庭动态监测看板 — dynzero demo (run {tag})");
    println!("{} households reconciled\n", households.len());
    print_divisions(&tree(&households), &alert_counts(&alerts));
    print_alerts(&alerts);
    print_rejections(&rejections);
    Ok(())
}

fn tree(households: &[PgRow]) -> Tree {
    let mut tree = Tree::new();
    for row in households {
        let division: String = row.get("division_code");
        let community = tree
            .entry(division[..6].to_string())
            .or_default()
            .entry(division[..9].to_string())
            .or_default()
            .entry(division.clone())
            .or_default();
        if row.get::<String, _>("status") == "zero_employment" {
            let since: Option<chrono::NaiveDate> = row.get("zero_since");
            let dibao: Option<serde_json::Value> = row.get("dibao");
            community.push(format!(
                "{} 自 {}{}",
                row.get::<String, _>("household_id"),
                since.map(|d| d.to_string()).unwrap_or_default(),
                if dibao.is_some_and(|d| !d.is_null()) {
                    "（低保）"
                } else {
                    ""
                }
            ));
        }
    }
    tree
}

fn alert_counts(alerts: &[PgRow]) -> AlertCounts {
    let mut counts = AlertCounts::new();
    for row in alerts {
        *counts
            .entry(row.get("division_code"))
            .or_default()
            .entry(row.get("kind"))
            .or_default() += 1;
    }
    counts
}

/// `kind n, kind n` for the alerts of every division under `prefix`.
fn count_under(counts: &AlertCounts, prefix: &str) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (division, by_kind) in counts {
        if division.starts_with(prefix) {
            for (kind, n) in by_kind {
                *kinds.entry(kind.as_str()).or_default() += n;
            }
        }
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_divisions(tree: &Tree, counts: &AlertCounts) {
    for (district, streets) in tree {
        let zero: usize = streets
            .values()
            .flat_map(|s| s.values())
            .map(Vec::len)
            .sum();
        println!(
            "区县 {district}: {zero} 户零就业 | 告警: {}",
            count_under(counts, district)
        );
        for (street, communities) in streets {
            let zero: usize = communities.values().map(Vec::len).sum();
            println!(
                "  街道 {street}: {zero} 户零就业 | 告警: {}",
                count_under(counts, street)
            );
            for (community, zero) in communities {
                println!(
                    "    社区 {community}: {} 户零就业 | 告警: {}",
                    zero.len(),
                    count_under(counts, community)
                );
                for household in zero {
                    println!("      - {household}");
                }
            }
        }
    }
}

/// The first 15 alerts, and how many more there are.
fn print_alerts(alerts: &[PgRow]) {
    println!("\n告警 ({}):", alerts.len());
    for row in alerts.iter().take(15) {
        println!(
            "  [{}] {}",
            row.get::<String, _>("kind"),
            row.get::<String, _>("summary")
        );
    }
    if alerts.len() > 15 {
        println!("  … and {} more", alerts.len() - 15);
    }
}

fn print_rejections(rejections: &[PgRow]) {
    println!("\n被拒绝的消息 ({}):", rejections.len());
    for row in rejections {
        println!(
            "  {}: {}",
            row.get::<String, _>("reason"),
            row.get::<String, _>("detail")
        );
    }
}

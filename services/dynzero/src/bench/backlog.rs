//! Scale and memory: `n` messages (a city's backfill, then its events) wait
//! in the queue; then a separate `dynzero run` process drains them. Prints
//! its peak RSS, the drain rate per tenth of the backlog (the first tenth
//! into an almost empty database, the last after everything before it is
//! stored), and PostgreSQL bytes per household at the end.

use super::broker::{publish_all, routed};
use anyhow::Context;
use dynzero_reconciler::settings::Settings;
use dynzero_simulator::{City, CityConfig, Message};
use lapin::Channel;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

pub async fn run(
    settings: &Settings,
    channel: &Channel,
    n: usize,
    today: chrono::NaiveDate,
) -> anyhow::Result<()> {
    let (messages, backfill, households) = city(n, today);
    let mut db = PgConnection::connect(&settings.database.url).await?;
    let before = stored(&mut db).await?;
    let started = Instant::now();
    publish_all(channel, &settings.amqp.inbound_exchange, routed(&messages)).await?;
    println!(
        "backlog: {n} messages ({backfill} of them the backfill of {households} households) queued in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(messages);

    let drained = drain(settings, &mut db, n, before, backfill).await?;
    let (first, last) = (
        drained.rates.first().copied().unwrap_or_default(),
        drained.rates.last().copied().unwrap_or_default(),
    );
    println!(
        "backlog drained by a separate dynzero process: {n} messages in {:.1} s = {:.0} msg/s; backfill: first tenth {first:.0} msg/s, last full tenth {last:.0} msg/s ({:+.0} %)",
        drained.elapsed.as_secs_f64(),
        n as f64 / drained.elapsed.as_secs_f64(),
        (last / first.max(1.0) - 1.0) * 100.0
    );
    println!(
        "dynzero peak RSS with a backlog of {n} messages: {:.0} MiB",
        drained.peak_kib as f64 / 1024.0
    );
    database_size(&mut db).await
}

/// `n` messages of a city: as much of its backfill as fits, then events.
/// Also how many are backfill, and of how many households.
fn city(n: usize, today: chrono::NaiveDate) -> (Vec<Message>, usize, usize) {
    // About 2.3 messages per household in the backfill; events for the rest.
    let households = (n / 3).max(1);
    let mut config = CityConfig::city(45, households, 0, today);
    config.tag = "B".into();
    let mut city = City::new(config);
    let mut messages = city.backfill();
    messages.truncate(n);
    let backfill = messages.len();
    city.set_events(n - backfill);
    messages.extend(city.events());
    messages.truncate(n);
    (messages, backfill, households)
}

/// The last arrival number stored. Progress is read from it: counting the
/// inbox itself costs PostgreSQL more and more as it grows, and would slow
/// what it measures.
async fn stored(db: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(arrival), 0) FROM inbox")
            .fetch_one(db)
            .await?,
    )
}

struct Drained {
    elapsed: Duration,
    /// Drain rates of the tenths of the backlog that were backfill.
    rates: Vec<f64>,
    peak_kib: u64,
}

/// Starts `dynzero run` in its own process and watches it store the `n`
/// messages after arrival `before`, then stops it gracefully.
async fn drain(
    settings: &Settings,
    db: &mut PgConnection,
    n: usize,
    before: i64,
    backfill: usize,
) -> anyhow::Result<Drained> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["run", "--only", "consumer,relay,sweeper"])
        .envs(settings.environment())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("dynzero run has no pid")?;
    let started = Instant::now();
    let target = before + n as i64;
    let tenth = (n as i64 / 10).max(1);
    let mut mark = (started, before);
    let mut rates = Vec::new();
    let mut peak_kib = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(hwm) = peak_rss_kib(pid) {
            peak_kib = peak_kib.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("dynzero run exited early: {status}");
        }
        let stored = stored(db).await?;
        if stored - mark.1 >= tenth || stored >= target {
            let rate = (stored - mark.1) as f64 / mark.0.elapsed().as_secs_f64();
            // Only windows of backfill messages are compared with each other:
            // the events after it are another mix.
            if stored <= before + backfill as i64 {
                rates.push(rate);
            }
            println!(
                "  {:>3} % of the backlog stored ({stored} facts in all): {rate:.0} msg/s, dynzero RSS peak so far {:.0} MiB",
                (stored - before) * 100 / n as i64,
                peak_kib as f64 / 1024.0
            );
            mark = (Instant::now(), stored);
        }
        if stored >= target {
            break;
        }
    }
    let elapsed = started.elapsed();
    // SIGTERM: a graceful stop.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    Ok(Drained {
        elapsed,
        rates,
        peak_kib,
    })
}

/// A process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn database_size(db: &mut PgConnection) -> anyhow::Result<()> {
    let (bytes, households): (i64, i64) = sqlx::query_as(
        "SELECT pg_database_size(current_database()), (SELECT count(*) FROM household)",
    )
    .fetch_one(db)
    .await?;
    println!(
        "PostgreSQL: {:.0} MiB for {households} households = {:.0} bytes per household (all facts, indexes and outputs included)",
        bytes as f64 / 1048576.0,
        bytes as f64 / households.max(1) as f64
    );
    Ok(())
}

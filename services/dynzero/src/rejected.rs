//! `dynzero rejected list|show ID|replay ID|replay --reason R --since T`:
//! the messages the hub refused, from the command line, like the API's
//! `/api/v1/rejections` (the same store and the same replay,
//! `dynzero_reconciler::store::rejections` and `replay`). Whoever runs this
//! has the database, so bodies are shown whole, unmasked.
//!
//! Exit status: 0 done; 1 no such rejection, nothing matched a replay, or a
//! failure (database, broker); 2 bad arguments.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use clap::{ArgGroup, Args, Subcommand};
use dynzero_contracts::rejection::Reason;
use dynzero_reconciler::replay::Replayer;
use dynzero_reconciler::service::MIGRATOR;
use dynzero_reconciler::settings::Settings;
use dynzero_reconciler::store::rejections::{self, Filter, Stored};
use dynzero_runtime::database;
use serde_json::json;
use sqlx::PgPool;

#[derive(Subcommand)]
pub enum RejectedCommand {
    /// Rejections, newest first: id, time, reason, source, type.
    List(ListArgs),
    /// One rejection: its detail and its original body.
    Show { id: i64 },
    /// Republish to the inbound exchange, byte for byte: one rejection by id,
    /// or every one not yet replayed that matches --reason and --since.
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// One reason code, e.g. schema_invalid, poison.
    #[arg(long, value_parser = reason)]
    reason: Option<Reason>,
    /// Only rejections at or after this instant: RFC 3339, or a date (its
    /// start in Asia/Shanghai).
    #[arg(long, value_parser = instant)]
    since: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// One JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["id", "reason", "since"])))]
pub struct ReplayArgs {
    /// The rejection's id (as `list` shows it).
    #[arg(conflicts_with_all = ["reason", "since", "again"])]
    id: Option<i64>,
    /// Replay every rejection with this reason code.
    #[arg(long, value_parser = reason)]
    reason: Option<Reason>,
    /// Replay every rejection at or after this instant (RFC 3339 or a date).
    #[arg(long, value_parser = instant)]
    since: Option<DateTime<Utc>>,
    /// With --reason/--since: also those already replayed once.
    #[arg(long)]
    again: bool,
}

fn reason(s: &str) -> Result<Reason, String> {
    Reason::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        format!("not a reason code; one of {}", known.join(", "))
    })
}

/// RFC 3339, or a date: its midnight in Asia/Shanghai (UTC+08:00, as the hub reads "today").
fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| "expected RFC 3339 (2026-12-01T08:00:00+08:00) or a date (2026-12-01)")?;
    let shanghai = FixedOffset::east_opt(8 * 3600).expect("+08:00 is an offset");
    let midnight = day
        .and_time(chrono::NaiveTime::MIN)
        .and_local_timezone(shanghai)
        .single()
        .ok_or("not an instant")?;
    Ok(midnight.with_timezone(&Utc))
}

pub async fn run(settings: Settings, command: RejectedCommand) -> anyhow::Result<()> {
    let pool = database::pool(&settings.database, database::options(&settings.database)?);
    database::migrate(&MIGRATOR, &settings.database).await?;
    let done = match command {
        RejectedCommand::List(args) => list(&pool, args).await,
        RejectedCommand::Show { id } => show(&pool, id).await,
        RejectedCommand::Replay(args) => replay(&pool, &settings, args).await,
    };
    pool.close().await;
    done
}

async fn list(pool: &PgPool, args: ListArgs) -> anyhow::Result<()> {
    let filter = Filter {
        reason: args.reason.map(|r| r.as_str().to_string()),
        since: args.since,
        not_replayed: false,
    };
    let rows = rejections::list(pool, &filter, args.limit.max(0)).await?;
    if args.json {
        let rows: Vec<_> = rows.iter().map(summary).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:>8}  {:<25}  {:<21}  {:<24}  {:<28}  replayed",
        "id", "time", "reason", "source", "type"
    );
    for r in &rows {
        println!(
            "{:>8}  {:<25}  {:<21}  {:<24}  {:<28}  {}",
            r.id,
            r.rejected_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.reason,
            r.source.as_deref().unwrap_or("-"),
            r.event_type.as_deref().unwrap_or("-"),
            r.replayed_at.map_or("-".into(), |t| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        );
    }
    Ok(())
}

fn summary(r: &Stored) -> serde_json::Value {
    json!({
        "id": r.id,
        "time": r.rejected_at,
        "reason": r.reason,
        "detail": r.detail,
        "source": r.source,
        "type": r.event_type,
        "routing_key": r.routing_key,
        "replayed_at": r.replayed_at,
    })
}

async fn show(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let r = rejections::find(pool, id)
        .await?
        .with_context(|| format!("no rejection {id}"))?;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("id:           {}", r.id);
    println!("time:         {}", r.rejected_at.to_rfc3339());
    println!("reason:       {}", r.reason);
    println!("detail:       {}", r.detail);
    println!("source:       {}", or_dash(&r.source));
    println!("type:         {}", or_dash(&r.event_type));
    println!("routing key:  {}", r.routing_key);
    println!("content type: {}", or_dash(&r.content_type));
    println!(
        "replayed at:  {}",
        r.replayed_at.map_or("never".into(), |t| t.to_rfc3339())
    );
    match &r.body {
        Some(body) => {
            println!("body ({} bytes):", body.len());
            println!("{}", String::from_utf8_lossy(body));
        }
        None => println!("body:         not kept"),
    }
    Ok(())
}

async fn replay(pool: &PgPool, settings: &Settings, args: ReplayArgs) -> anyhow::Result<()> {
    let ids = match args.id {
        Some(id) => vec![id],
        None => {
            let filter = Filter {
                reason: args.reason.map(|r| r.as_str().to_string()),
                since: args.since,
                not_replayed: !args.again,
            };
            let ids = rejections::ids(pool, &filter).await?;
            anyhow::ensure!(!ids.is_empty(), "no rejection matched; nothing replayed");
            ids
        }
    };
    let replayer = Replayer::open(&settings.amqp)
        .await
        .context("connecting to the broker")?;
    let mut replayed = 0;
    let mut outcome = Ok(());
    for id in &ids {
        match replayer.replay(pool, *id).await {
            Ok(at) => {
                replayed += 1;
                if args.id.is_some() {
                    println!("replayed {id} at {}", at.to_rfc3339());
                }
            }
            Err(e) => {
                outcome = Err(anyhow::Error::new(e));
                break;
            }
        }
    }
    replayer.close().await;
    if args.id.is_none() {
        println!("replayed {replayed} of {}", ids.len());
    }
    outcome
}

//! The one dynzero binary.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use dynzero_reconciler::clock::SystemClock;
use dynzero_reconciler::service::{Parts, Reconciler};
use std::path::PathBuf;
use std::sync::Arc;

mod bench;
mod bench_notifier;
mod config;
mod demo;
mod metrics_http;
mod simulate;
mod subscriptions;
mod tokens;

#[derive(Parser)]
#[command(name = "dynzero", about = "零就业家庭动态为零 — the integration hub")]
struct Cli {
    /// A configuration file layered over config/default.toml (environment variables DYNZERO__SECTION__KEY win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Part {
    Consumer,
    Relay,
    Sweeper,
    Notifier,
    /// The read API and the board, on `api.listen`.
    Api,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub until SIGTERM or SIGINT.
    Run {
        /// Run only these parts (default: all), to scale them separately.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Part>,
    },
    /// Create the database if missing, run the hub, publish a sample city, print a board.
    Demo {
        #[arg(long, default_value_t = 40)]
        households: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Publish a seeded synthetic city to the inbound exchange, with confirms.
    Simulate {
        #[arg(long, default_value_t = 1000)]
        households: usize,
        /// Events after the registrations and initial employments.
        #[arg(long, default_value_t = 3000)]
        events: usize,
        /// Messages per second; 0 publishes as fast as the broker accepts.
        #[arg(long, default_value_t = 0)]
        rate: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure throughput and latency on this machine against a fresh database.
    Bench {
        #[arg(long, default_value_t = 1000)]
        households: usize,
        #[arg(long, default_value_t = 3000)]
        events: usize,
        /// Paced rate for the latency run, messages per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 1000)]
        latency_messages: usize,
        /// Then a backlog of this many messages (a city's backfill, then its
        /// events) waiting in the queue before a `dynzero run` process starts:
        /// its peak RSS, the drain rate as stored facts grow, and PostgreSQL
        /// bytes per household. 0: skip.
        #[arg(long, default_value_t = 0)]
        backlog: usize,
    },
    /// Measure the notifier: alerts delivered per second to a local webhook,
    /// and the delay from an inbound registration to its community's webhook.
    BenchNotifier {
        #[arg(long, default_value_t = 2000)]
        alerts: usize,
        #[arg(long, default_value_t = 300)]
        households: usize,
        /// Paced rate of the registrations, per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
    },
    /// The read side's bearer tokens.
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// The full-PII reads of households: time, token, household; newest first.
    Audit {
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// The notifier's run-time subscriptions.
    Subscriptions {
        #[command(subcommand)]
        command: subscriptions::SubscriptionsCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,lapin=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let settings = config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Run { only } => {
            let parts = if only.is_empty() {
                Parts::ALL
            } else {
                Parts {
                    consumer: only.iter().any(|p| matches!(p, Part::Consumer)),
                    relay: only.iter().any(|p| matches!(p, Part::Relay)),
                    sweeper: only.iter().any(|p| matches!(p, Part::Sweeper)),
                }
            };
            let notifier = only.is_empty() || only.iter().any(|p| matches!(p, Part::Notifier));
            let api = only.is_empty() || only.iter().any(|p| matches!(p, Part::Api));
            run(settings, parts, notifier, api, cli.config.as_deref()).await
        }
        Command::BenchNotifier {
            alerts,
            households,
            rate,
        } => {
            let args = bench_notifier::NotifierBenchArgs {
                alerts,
                households,
                rate,
            };
            bench_notifier::run(settings, args).await
        }
        Command::Tokens { command } => {
            let settings =
                config::load_api(cli.config.as_deref()).context("loading configuration")?;
            tokens::run(settings, command).await
        }
        Command::Audit { limit } => {
            let settings =
                config::load_api(cli.config.as_deref()).context("loading configuration")?;
            tokens::audit(settings, limit).await
        }
        Command::Subscriptions { command } => {
            let settings =
                config::load_notifier(cli.config.as_deref()).context("loading configuration")?;
            subscriptions::run(settings, command).await
        }
        Command::Demo { households, seed } => demo::run(settings, households, seed).await,
        Command::Simulate {
            households,
            events,
            rate,
            seed,
        } => {
            let args = simulate::SimulateArgs {
                households,
                events,
                rate,
                seed,
            };
            simulate::run(settings, args).await
        }
        Command::Bench {
            households,
            events,
            rate,
            latency_messages,
            backlog,
        } => {
            let args = bench::BenchArgs {
                households,
                events,
                rate,
                latency_messages,
                backlog,
            };
            bench::run(settings, args).await
        }
    }
}

/// The reconciler's parts, the notifier and the API, side by side, until SIGTERM or SIGINT.
async fn run(
    settings: dynzero_reconciler::settings::Settings,
    parts: Parts,
    notifier: bool,
    api: bool,
    config_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut services = tokio::task::JoinSet::new();
    let mut sources: Vec<metrics_http::Source> = Vec::new();
    let listen = settings.metrics.listen.clone();
    if parts.consumer || parts.relay || parts.sweeper {
        let reconciler = Reconciler::build(settings, Arc::new(SystemClock)).await?;
        let metrics = reconciler.hub().metrics.clone();
        sources.push(Arc::new(move || metrics.render()));
        services.spawn(reconciler.run_until(parts, until_stopped()));
    }
    if notifier {
        let settings = config::load_notifier(config_file).context("loading configuration")?;
        let notifier = dynzero_notifier::service::Notifier::build(settings).await?;
        let metrics = notifier.metrics().clone();
        sources.push(Arc::new(move || metrics.render()));
        services.spawn(notifier.run_until(until_stopped()));
    }
    if api {
        let settings = config::load_api(config_file).context("loading configuration")?;
        let pool = dynzero_api::service::connect(&settings).await?;
        let api = dynzero_api::service::Api::build(settings, pool).await?;
        services.spawn(api.run_until(until_stopped()));
    }
    if !listen.is_empty() {
        let shutdown = until_stopped();
        services.spawn(async move { metrics_http::serve(&listen, sources, shutdown).await });
    }
    tokio::select! {
        _ = shutdown_signal() => {}
        Some(ended) = services.join_next() => {
            // A service ending by itself is an error worth stopping for.
            let _ = stop.send(true);
            ended??;
            anyhow::bail!("a service stopped by itself");
        }
    }
    let _ = stop.send(true);
    while let Some(ended) = services.join_next().await {
        ended??;
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

//! The one dynzero binary.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use dynzero_reconciler::clock::SystemClock;
use dynzero_reconciler::service::{Parts, Reconciler};
use std::path::PathBuf;
use std::sync::Arc;

mod bench;
mod config;
mod demo;

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
    /// Measure throughput and latency on this machine against a fresh database.
    Bench {
        #[arg(long, default_value_t = 1000)]
        households: usize,
        #[arg(long, default_value_t = 3000)]
        events: usize,
        /// Paced rate for the latency run, messages per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 1000)]
        latency_messages: usize,
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
            let reconciler = Reconciler::build(settings, Arc::new(SystemClock)).await?;
            reconciler.run_until(parts, shutdown_signal()).await
        }
        Command::Demo { households, seed } => demo::run(settings, households, seed).await,
        Command::Bench {
            households,
            events,
            rate,
            latency_messages,
        } => {
            let args = bench::BenchArgs {
                households,
                events,
                rate,
                latency_messages,
            };
            bench::run(settings, args).await
        }
    }
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

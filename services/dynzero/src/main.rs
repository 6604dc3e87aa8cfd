//! The one dynzero binary.

use clap::{Parser, Subcommand, ValueEnum};
use dynzero_reconciler::service::Parts;
use dynzero_runtime::config::ConfigError;
use dynzero_runtime::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod bench_notifier;
mod config;
mod demo;
mod keys;
mod rejected;
mod retention;
mod run;
mod simulate;
mod subscriptions;
mod tokens;

use config::Config;

/// The hub allocates and frees many small values for each message (parsed
/// events, rows, rendered outputs) on two threads; glibc's malloc and free
/// took about a sixth of its CPU in a backfill, and jemalloc raised the
/// sustained rate by about 7 % (BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "dynzero", about = "零就业家庭动态为零 — the integration hub")]
struct Cli {
    /// A configuration file layered over config/default.toml (environment variables DYNZERO__SECTION__KEY win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Consumer,
    Relay,
    Sweeper,
    Notifier,
    Api,
    Retention,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub until SIGTERM or SIGINT (creating a missing database when
    /// `database.create_if_missing` allows).
    Run {
        /// Run only these parts (default: all), to scale them separately.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Part>,
    },
    /// Create the database if allowed and missing, run every migration, exit.
    Migrate,
    /// Check the configuration and print it, secrets redacted.
    CheckConfig,
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
        /// Deliberately bad messages spread through the stream.
        #[arg(long, default_value_t = 0)]
        invalid: usize,
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
    /// The key sealing subscription secrets at rest: generate one, or rotate to a new one.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The messages the hub rejected: list, show, replay (exit 1: no such
    /// rejection or nothing matched).
    Rejected {
        #[command(subcommand)]
        command: rejected::RejectedCommand,
    },
    /// The notifier's run-time subscriptions.
    Subscriptions {
        #[command(subcommand)]
        command: subscriptions::SubscriptionsCommand,
    },
}

/// Exit status for a configuration that cannot run: a bad value, an unknown
/// key, a TLS or certificate failure. Never retried.
const CONFIGURATION_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dynzero: {e}");
            return ExitCode::from(CONFIGURATION_ERROR);
        }
    };
    let telemetry = match telemetry::init(&config.log, &config.telemetry) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("dynzero: telemetry: {e:#}");
            return ExitCode::from(CONFIGURATION_ERROR);
        }
    };
    let outcome = dispatch(cli, config).await;
    // The spans of the last batches go out before the process does.
    telemetry.shutdown().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<ConfigError>()) {
            Some(config_error) => {
                eprintln!("dynzero: {config_error}");
                ExitCode::from(CONFIGURATION_ERROR)
            }
            None => {
                eprintln!("dynzero: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn dispatch(cli: Cli, config: Config) -> anyhow::Result<()> {
    let settings = config.reconciler();
    match cli.command {
        Command::Run { only } => {
            let has = |part| only.is_empty() || only.contains(&part);
            let parts = Parts {
                consumer: has(Part::Consumer),
                relay: has(Part::Relay),
                sweeper: has(Part::Sweeper),
            };
            let others = run::Others {
                notifier: has(Part::Notifier),
                api: has(Part::Api),
                retention: has(Part::Retention),
            };
            run::run(config, parts, others).await
        }
        Command::Migrate => run::migrate(config).await,
        Command::CheckConfig => {
            print!("{}", config::effective_redacted(cli.config.as_deref())?);
            Ok(())
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
            bench_notifier::run(settings, config.notifier, args).await
        }
        Command::Subscriptions { command } => subscriptions::run(config.notifier(), command).await,
        Command::Keys { command } => keys::run(config.notifier(), command).await,
        Command::Rejected { command } => rejected::run(settings, command).await,
        Command::Tokens { command } => tokens::run(config.api(), command).await,
        Command::Audit { limit } => tokens::audit(config.api(), limit).await,
        Command::Demo { households, seed } => demo::run(settings, households, seed).await,
        Command::Simulate {
            households,
            events,
            rate,
            seed,
            invalid,
        } => {
            let args = simulate::SimulateArgs {
                households,
                events,
                rate,
                seed,
                invalid,
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

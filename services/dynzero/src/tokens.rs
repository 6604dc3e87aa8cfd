//! `dynzero tokens add|list|revoke` and `dynzero audit`: the read side's
//! access, managed from the command line (an admin token cannot mint tokens
//! over HTTP; whoever runs this has the database).

use anyhow::Context;
use clap::{Args, Subcommand};
use dynzero_api::access::{self, Caller, Division, PiiPolicy, Role};
use dynzero_api::settings::Settings;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once, as the last line of stdout.
    Add(AddArgs),
    /// Every token: name, division, role, PII, created, revoked.
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    /// Division prefix: 4, 6, 9 or 12 digits (city, district, street, community).
    #[arg(long)]
    division: String,
    /// worker, supervisor or admin.
    #[arg(long)]
    role: String,
    /// masked (default) or full.
    #[arg(long, default_value = "masked")]
    pii: String,
}

impl AddArgs {
    fn caller(self) -> anyhow::Result<Caller> {
        Ok(Caller {
            scope: Division::parse(&self.division)
                .context("--division must be 4, 6, 9 or 12 digits")?,
            role: Role::parse(&self.role).context("--role must be worker, supervisor or admin")?,
            pii: PiiPolicy::parse(&self.pii).context("--pii must be masked or full")?,
            name: self.name,
        })
    }
}

pub async fn run(settings: Settings, command: TokensCommand) -> anyhow::Result<()> {
    let pool = dynzero_api::service::connect(&settings).await?;
    match command {
        TokensCommand::Add(args) => {
            let caller = args.caller()?;
            let token = access::add_token(&pool, &caller).await?;
            println!(
                "token {} for {} ({}, pii {}); it is shown only now:",
                caller.name,
                caller.scope,
                caller.role.as_str(),
                caller.pii.as_str()
            );
            println!("{token}");
        }
        TokensCommand::List => {
            for t in access::list_tokens(&pool).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.caller.name,
                    t.caller.scope,
                    t.caller.role.as_str(),
                    t.caller.pii.as_str(),
                    t.created_at.to_rfc3339(),
                    t.revoked_at
                        .map(|r| format!("revoked {}", r.to_rfc3339()))
                        .unwrap_or_else(|| "active".into()),
                );
            }
        }
        TokensCommand::Revoke { name } => {
            anyhow::ensure!(
                access::revoke_token(&pool, &name).await?,
                "no active token named {name:?}"
            );
            println!("revoked {name}");
        }
    }
    pool.close().await;
    Ok(())
}

/// `dynzero audit`: the full-PII reads, newest first.
pub async fn audit(settings: Settings, limit: i64) -> anyhow::Result<()> {
    let pool = dynzero_api::service::connect(&settings).await?;
    for (token, at, household) in access::audit_log(&pool, limit).await? {
        println!("{}\t{token}\t{household}", at.to_rfc3339());
    }
    pool.close().await;
    Ok(())
}

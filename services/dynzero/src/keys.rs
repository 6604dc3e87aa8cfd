//! `dynzero keys generate|rotate`: the key that seals subscription secrets at
//! rest (`[security]`).

use anyhow::Context;
use clap::Subcommand;
use dynzero_notifier::seal::SealingKey;
use dynzero_notifier::settings::Settings;
use dynzero_notifier::store;
use dynzero_runtime::config::ConfigError;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a fresh key (the base64 of 32 random bytes) for a key file.
    Generate,
    /// Re-seal every stored subscription secret under the key in FILE, in
    /// one transaction; then point `security.key_file` at FILE and restart.
    Rotate {
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

pub async fn run(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => {
            println!("{}", SealingKey::generate());
            Ok(())
        }
        KeysCommand::Rotate { new_key_file } => {
            let old = settings.security.sealing_key()?.ok_or_else(|| {
                ConfigError::new(
                    "security.key_file",
                    "(or DYNZERO__SECURITY__KEY) must give the current key to rotate from",
                )
            })?;
            let new = SealingKey::read(&new_key_file)
                .map_err(|e| ConfigError::new("--new-key-file", &e))?;
            let pool = dynzero_notifier::service::connect(&settings.database).await?;
            let resealed = store::rotate(&pool, &old, &new)
                .await
                .context("rotating the sealing key (nothing was changed)")?;
            pool.close().await;
            println!(
                "re-sealed {resealed} subscription targets under {}; set security.key_file to it \
                 (or DYNZERO__SECURITY__KEY to its content) and restart every dynzero process",
                new_key_file.display()
            );
            Ok(())
        }
    }
}

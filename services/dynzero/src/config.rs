//! Layered configuration: config/default.toml (built in), an optional file,
//! then environment variables `DYNZERO__SECTION__KEY`.

use dynzero_reconciler::settings::Settings;
use std::path::Path;

const DEFAULT: &str = include_str!("../../../config/default.toml");

fn layered(file: Option<&Path>) -> anyhow::Result<config::Config> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(DEFAULT, config::FileFormat::Toml));
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("DYNZERO")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    Ok(builder.build()?)
}

pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    Ok(layered(file)?.try_deserialize()?)
}

/// The notifier's view of the same layers: `[amqp]`, `[database]`, `[notifier]`.
pub fn load_notifier(file: Option<&Path>) -> anyhow::Result<dynzero_notifier::settings::Settings> {
    Ok(layered(file)?.try_deserialize()?)
}

/// The read side's view of the same layers: `[api]`, `[amqp]`, `[database]`, `[rules]`.
pub fn load_api(file: Option<&Path>) -> anyhow::Result<dynzero_api::settings::Settings> {
    Ok(layered(file)?.try_deserialize()?)
}

//! Retention, a part of `dynzero run` (`--only retention`): on an interval,
//! purge what the hub no longer needs — inbox rows past the deduplication
//! window, delivered notifier rows, old rejections — in small batches with
//! a pause between them, so the purge never competes with the consumers for
//! long. What each purge keeps is said where its statement is
//! (`dynzero_reconciler::retention`, `dynzero_notifier::store::purge_delivered`).

use dynzero_runtime::config::{ConfigError, ensure};
use dynzero_runtime::database;
use dynzero_runtime::settings::DatabaseSettings;
use serde::Deserialize;
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;
use tracing::{info, warn};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Inbox rows (the idempotency records) are kept this many days: the
    /// deduplication window. 0: kept for ever.
    pub inbox_days: u32,
    /// Delivered notifier rows are kept this many days; 0: for ever.
    pub deliveries_days: u32,
    /// Rejections (with their bodies, for replay) are kept this many days; 0: for ever.
    pub rejections_days: u32,
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// The pause between two batches.
    pub pause_ms: u64,
    /// Seconds between two purges (the first runs at start).
    pub interval_secs: u64,
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.batch_size >= 1,
            "retention.batch_size",
            "must be at least 1",
        )?;
        ensure(
            self.interval_secs >= 1,
            "retention.interval_secs",
            "must be at least 1",
        )?;
        for (key, days) in [
            ("retention.inbox_days", self.inbox_days),
            ("retention.deliveries_days", self.deliveries_days),
            ("retention.rejections_days", self.rejections_days),
        ] {
            ensure(
                i32::try_from(days).is_ok(),
                key,
                "is more days than can be counted",
            )?;
        }
        Ok(())
    }
}

/// One table's purge: a batch at a time.
#[derive(Clone, Copy, Debug)]
enum Purge {
    Inbox,
    Deliveries,
    Rejections,
}

impl Purge {
    const ALL: [Purge; 3] = [Purge::Inbox, Purge::Deliveries, Purge::Rejections];

    fn name(self) -> &'static str {
        match self {
            Purge::Inbox => "inbox",
            Purge::Deliveries => "deliveries",
            Purge::Rejections => "rejections",
        }
    }

    fn days(self, settings: &RetentionSettings) -> u32 {
        match self {
            Purge::Inbox => settings.inbox_days,
            Purge::Deliveries => settings.deliveries_days,
            Purge::Rejections => settings.rejections_days,
        }
    }

    async fn batch(self, pool: &PgPool, days: i32, batch: i64) -> sqlx::Result<u64> {
        match self {
            Purge::Inbox => dynzero_reconciler::retention::purge_inbox(pool, days, batch).await,
            Purge::Deliveries => dynzero_notifier::store::purge_delivered(pool, days, batch).await,
            Purge::Rejections => {
                dynzero_reconciler::retention::purge_rejections(pool, days, batch).await
            }
        }
    }
}

pub struct Retention {
    pool: PgPool,
    settings: RetentionSettings,
}

impl Retention {
    /// Connect and run the migrations of the tables it purges (it may run
    /// alone, `--only retention`, on a database nothing else migrated yet).
    pub async fn build(
        database: &DatabaseSettings,
        settings: RetentionSettings,
    ) -> anyhow::Result<Self> {
        let small = DatabaseSettings {
            max_connections: 1,
            ..database.clone()
        };
        let pool = database::pool(&small, database::options(&small)?);
        database::migrate(&dynzero_reconciler::service::MIGRATOR, database).await?;
        database::migrate(&dynzero_notifier::store::migrator(), database).await?;
        Ok(Self { pool, settings })
    }

    /// Purge at start, then every `interval_secs`, until `shutdown`
    /// resolves (a batch in progress is abandoned: its transaction rolls back).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut ticks = tokio::time::interval(Duration::from_secs(self.settings.interval_secs));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.purge() => {}
            }
        }
        self.pool.close().await;
        Ok(())
    }

    /// One pass over every table. A failure (the database away, say) is
    /// logged and the pass tried again at the next interval: nothing is lost
    /// by purging later.
    async fn purge(&self) {
        let batch = i64::from(self.settings.batch_size);
        let pause = Duration::from_millis(self.settings.pause_ms);
        for purge in Purge::ALL {
            let days = purge.days(&self.settings);
            if days == 0 {
                continue;
            }
            let days = i32::try_from(days).unwrap_or(i32::MAX);
            let mut purged = 0;
            loop {
                match purge.batch(&self.pool, days, batch).await {
                    Ok(n) => {
                        purged += n;
                        if n < batch as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(table = purge.name(), error = %e, purged, "retention purge failed; trying again at the next interval");
                        break;
                    }
                }
                tokio::time::sleep(pause).await;
            }
            if purged > 0 {
                info!(table = purge.name(), purged, days, "retention purged");
            }
        }
    }
}

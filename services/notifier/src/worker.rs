//! The delivery worker: takes due deliveries from PostgreSQL
//! (`FOR UPDATE SKIP LOCKED`), sends them with bounded concurrency per
//! target, and writes back the outcome and the next attempt's time. Nothing
//! is scheduled in memory: a delivery's next attempt is its row's
//! `next_attempt_at`, so a restart resumes where the last process was.

use crate::metrics::Metrics;
use crate::pii::{PiiPolicy, mask_value};
use crate::render;
use crate::seal::SealingKey;
use crate::send::{Attempt, Message, Sender};
use crate::settings::NotifierSettings;
use crate::store::{self, Due};
use crate::subscription::TargetKind;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use dynzero_runtime::telemetry;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, info, warn};

/// A bot's rate window.
const MINUTE: Duration = Duration::from_secs(60);
/// Added to a lease beyond the requests' own timeouts.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// What one task sends: one webhook delivery, or a bot's messages in order
/// (each a single alert or a digest of several).
enum Unit {
    Webhook(Box<Due>),
    Bot {
        target_key: String,
        messages: Vec<Vec<Due>>,
    },
}

impl Unit {
    fn target_key(&self) -> &str {
        match self {
            Unit::Webhook(d) => &d.target_key,
            Unit::Bot { target_key, .. } => target_key,
        }
    }
    fn ids(&self) -> Vec<i64> {
        match self {
            Unit::Webhook(d) => vec![d.id],
            Unit::Bot { messages, .. } => messages.iter().flatten().map(|d| d.id).collect(),
        }
    }
    fn messages(&self) -> usize {
        match self {
            Unit::Webhook(_) => 1,
            Unit::Bot { messages, .. } => messages.len(),
        }
    }
}

/// Attempts in flight per target: (count, is a bot).
#[derive(Clone, Default)]
struct Inflight(Arc<Mutex<HashMap<String, (usize, bool)>>>);

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (usize, bool)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count an attempt in flight for `key` until the slot is dropped.
    fn claim(&self, key: &str, bot: bool) -> TargetSlot {
        self.lock().entry(key.to_string()).or_insert((0, bot)).0 += 1;
        TargetSlot {
            inflight: self.clone(),
            key: key.to_string(),
        }
    }
}

/// One attempt's place in its target's concurrency; given back when dropped,
/// so a send that panics cannot hold its target busy for good.
struct TargetSlot {
    inflight: Inflight,
    key: String,
}

impl Drop for TargetSlot {
    fn drop(&mut self) {
        let mut inflight = self.inflight.lock();
        if let Some(entry) = inflight.get_mut(&self.key) {
            entry.0 -= 1;
            if entry.0 == 0 {
                inflight.remove(&self.key);
            }
        }
    }
}

pub struct Worker {
    pool: PgPool,
    settings: NotifierSettings,
    sender: Sender,
    metrics: Arc<Metrics>,
    /// Opens the subscriptions' sealed targets.
    key: Option<SealingKey>,
    /// Attempts in flight per target (its keyed hash), and whether it is a
    /// bot (bots get one at a time, which keeps their messages in order and
    /// their rate honest). Counted by [`TargetSlot`]s.
    inflight: Inflight,
    /// When each bot was last sent to, within the last minute. Per process:
    /// several notifier processes each keep their own window.
    bot_sends: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Attempts in flight altogether.
    permits: Arc<Semaphore>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        settings: NotifierSettings,
        metrics: Arc<Metrics>,
        key: Option<SealingKey>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            sender: Sender::new(&settings)?,
            key,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            pool,
            settings,
            metrics,
            inflight: Inflight::default(),
            bot_sends: Mutex::new(HashMap::new()),
        })
    }

    /// Work until `shutdown` turns true, then let the attempts in flight finish.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let mut backoff = dynzero_runtime::backoff::backoff();
        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            match self.start_due(&mut tasks).await {
                Ok(started) if started > 0 => {
                    backoff = dynzero_runtime::backoff::backoff();
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let wait = backoff.next().unwrap_or_default();
                    warn!(error = %e, ?wait, "database unavailable; deliveries wait");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll()) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        info!("delivery worker stopped");
    }

    /// Start and finish every delivery due now (a step, for tests and tools).
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, sqlx::Error> {
        let mut tasks = JoinSet::new();
        let started = self.start_due(&mut tasks).await?;
        while tasks.join_next().await.is_some() {}
        Ok(started)
    }

    /// Take what is due and start it on `tasks`; returns how many units started.
    pub async fn start_due(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
    ) -> Result<usize, sqlx::Error> {
        let free = self.permits.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let per_target = self.settings.per_target_concurrency.max(1);
        let (busy, mut slots) = self.targets_in_use(per_target);
        let mut tx = self.pool.begin().await?;
        let rows = store::due(
            &mut tx,
            self.key.as_ref(),
            &busy,
            (free * 8).clamp(16, 1_000) as i64,
        )
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut orphans = Vec::new();
        let mut units = Vec::new();
        let mut bots: BTreeMap<String, Vec<Due>> = BTreeMap::new();
        for row in rows {
            let Some(subscription) = &row.subscription else {
                orphans.push(row.id);
                continue;
            };
            if subscription.target().kind().is_bot() {
                bots.entry(row.target_key.clone()).or_default().push(row);
            } else {
                let slot = slots.entry(row.target_key.clone()).or_insert(per_target);
                if *slot > 0 && units.len() < free {
                    *slot -= 1;
                    units.push(Unit::Webhook(Box::new(row)));
                }
            }
        }
        let mut postponed = Vec::new();
        for (target_key, rows) in bots {
            if units.len() >= free {
                break;
            }
            match self.plan_bot(&target_key, rows) {
                Ok(messages) => units.push(Unit::Bot {
                    target_key,
                    messages,
                }),
                Err((ids, wait)) => postponed.push((ids, wait)),
            }
        }
        for (ids, wait) in &postponed {
            store::postpone(&mut tx, ids, *wait).await?;
        }
        for unit in &units {
            let lease = self.settings.request_timeout() * unit.messages() as u32 + LEASE_MARGIN;
            store::lease(&mut tx, &unit.ids(), lease).await?;
        }
        tx.commit().await?;
        if !orphans.is_empty() {
            store::mark_failed(&self.pool, &orphans, None, "subscription removed").await?;
            self.metrics
                .failed(TargetKind::Webhook, orphans.len() as u64);
        }
        let started = units.len();
        self.spawn(units, tasks);
        Ok(started)
    }

    /// Targets that may take nothing more now (a bot with an attempt in
    /// flight, a webhook at its concurrency), and each target's free slots.
    fn targets_in_use(&self, per_target: usize) -> (Vec<String>, HashMap<String, usize>) {
        let inflight = self.inflight.lock();
        let busy = inflight
            .iter()
            .filter(|(_, (n, bot))| *bot && *n > 0 || *n >= per_target)
            .map(|(k, _)| k.clone())
            .collect();
        let slots = inflight
            .iter()
            .map(|(k, (n, _))| (k.clone(), per_target.saturating_sub(*n)))
            .collect();
        (busy, slots)
    }

    /// Start each leased unit on `tasks`, counted in flight for its target
    /// until its attempt ends.
    fn spawn(self: &Arc<Self>, units: Vec<Unit>, tasks: &mut JoinSet<()>) {
        for unit in units {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                // Leased but not started: they come due again when the lease ends.
                break;
            };
            let slot = self
                .inflight
                .claim(unit.target_key(), matches!(unit, Unit::Bot { .. }));
            let worker = self.clone();
            tasks.spawn(async move {
                // Released however the attempt ends, a panic included.
                let _slot = slot;
                worker.attempt(unit, permit).await;
            });
        }
    }

    /// A bot's due alerts as messages that keep it within its rate: as many
    /// single messages as the minute allows, the rest merged into one digest.
    /// `Err` with how long to wait when the minute is used up.
    fn plan_bot(
        &self,
        target_key: &str,
        rows: Vec<Due>,
    ) -> Result<Vec<Vec<Due>>, (Vec<i64>, Duration)> {
        let limit = self.settings.bot_messages_per_minute.max(1);
        let now = Instant::now();
        let mut sends = self.bot_sends.lock().unwrap_or_else(|e| e.into_inner());
        let window = sends.entry(target_key.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            window.pop_front();
        }
        let budget = limit.saturating_sub(window.len());
        if budget == 0 {
            let wait = window.front().map_or(MINUTE, |oldest| {
                MINUTE.saturating_sub(now.duration_since(*oldest))
            });
            return Err((
                rows.iter().map(|d| d.id).collect(),
                wait.max(Duration::from_millis(100)),
            ));
        }
        let mut messages: Vec<Vec<Due>> = Vec::new();
        let singles = if rows.len() <= budget {
            rows.len()
        } else {
            budget - 1
        };
        let mut rows = rows.into_iter();
        for row in rows.by_ref().take(singles) {
            messages.push(vec![row]);
        }
        let rest: Vec<Due> = rows.collect();
        if !rest.is_empty() {
            messages.push(rest);
        }
        for _ in &messages {
            window.push_back(now);
        }
        Ok(messages)
    }

    async fn attempt(&self, unit: Unit, _permit: OwnedSemaphorePermit) {
        match unit {
            Unit::Webhook(due) => {
                let Some(subscription) = &due.subscription else {
                    return;
                };
                let body = match subscription.pii() {
                    PiiPolicy::Full => due.body.clone(),
                    PiiPolicy::Masked => match serde_json::from_slice::<Value>(&due.body) {
                        Ok(mut event) => {
                            mask_value(&mut event);
                            serde_json::to_vec(&event).unwrap_or_default()
                        }
                        Err(_) => due.body.clone(),
                    },
                };
                // The delivery continues the alert's trace; the webhook
                // receives this span as its parent.
                let span =
                    tracing::info_span!(parent: None, "deliver alert", alert_id = %due.alert_id);
                let traceparent =
                    telemetry::continue_trace(&span, due.traceparent.as_deref(), None);
                let outcome = self
                    .sender
                    .send(
                        subscription.target(),
                        Message::Event {
                            id: &due.alert_id,
                            body: &body,
                            traceparent: traceparent.as_deref(),
                        },
                    )
                    .instrument(span)
                    .await;
                self.settle(TargetKind::Webhook, std::slice::from_ref(&due), &outcome)
                    .await;
            }
            Unit::Bot { messages, .. } => {
                let mut messages = messages.into_iter();
                while let Some(rows) = messages.next() {
                    let Some(subscription) = rows[0].subscription.clone() else {
                        return;
                    };
                    let events: Vec<Value> = rows
                        .iter()
                        .map(|d| serde_json::from_slice(&d.body).unwrap_or_default())
                        .collect();
                    let (title, text) = if events.len() == 1 {
                        render::alert_markdown(&events[0])
                    } else {
                        render::digest_markdown(&events)
                    };
                    let kind = subscription.target().kind();
                    let outcome = self
                        .sender
                        .send(
                            subscription.target(),
                            Message::Markdown {
                                title: &title,
                                text: &text,
                            },
                        )
                        .await;
                    if events.len() > 1 && matches!(outcome, Attempt::Delivered { .. }) {
                        self.metrics.digest(kind);
                    }
                    if matches!(outcome, Attempt::Retry { .. }) {
                        // The bot is throttling or away: the rest waits with this one.
                        let mut rest: Vec<Due> = rows;
                        rest.extend(messages.flatten());
                        self.settle(kind, &rest, &outcome).await;
                        return;
                    }
                    self.settle(kind, &rows, &outcome).await;
                }
            }
        }
    }

    fn retry_delay(&self, attempts: i32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_min_delay())
            .with_max_delay(self.settings.retry_max_delay())
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.clamp(0, 40) as usize)
            .unwrap_or_else(|| self.settings.retry_max_delay())
    }

    /// Write back what an attempt came to. If this fails the lease runs out
    /// and the delivery is attempted again: at least once, deduplicated by
    /// the receiver on `webhook-id`.
    #[tracing::instrument(skip_all, fields(target_kind = kind.as_str(), deliveries = rows.len()))]
    async fn settle(&self, kind: TargetKind, rows: &[Due], outcome: &Attempt) {
        let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
        let target = rows[0]
            .subscription
            .as_ref()
            .map_or("(removed)", |s| s.name());
        let result = match outcome {
            Attempt::Delivered { status } => {
                let done = store::mark_delivered(&self.pool, &ids, *status).await;
                if done.is_ok() {
                    let now = Utc::now();
                    for row in rows {
                        let latency = (now - row.received_at).to_std().unwrap_or_default();
                        self.metrics.delivered(kind, latency);
                    }
                }
                done
            }
            Attempt::Retry {
                status,
                after,
                error,
            } => {
                let attempts = rows.iter().map(|d| d.attempts).max().unwrap_or_default();
                let delay = self
                    .retry_delay(attempts)
                    .max(after.unwrap_or_default())
                    .min(self.settings.give_up_after());
                match store::retry_later(
                    &self.pool,
                    &ids,
                    delay,
                    self.settings.give_up_after(),
                    *status,
                    error,
                )
                .await
                {
                    Ok(given_up) => {
                        self.metrics.failed(kind, given_up);
                        self.metrics.retried(kind, ids.len() as u64 - given_up);
                        if given_up > 0 {
                            warn!(target = %target, error = %error, given_up, "delivery given up");
                        } else {
                            info!(target = %target, error = %error, ?delay, "delivery will be retried");
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Attempt::Permanent { status, error } => {
                warn!(target = %target, error = %error, "delivery failed permanently");
                let done = store::mark_failed(&self.pool, &ids, *status, error).await;
                if done.is_ok() {
                    self.metrics.failed(kind, ids.len() as u64);
                }
                done
            }
        };
        if let Err(e) = result {
            warn!(error = %e, target = %target, "could not record a delivery outcome; it will be attempted again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_send_releases_its_targets_slot() {
        let inflight = Inflight::default();
        let held = inflight.claim("t1:a", false);
        let panicking = inflight.claim("t1:a", false);
        let bot = inflight.claim("t1:bot", true);
        assert_eq!(inflight.lock()["t1:a"], (2, false));
        let attempt = tokio::spawn(async move {
            let _slot = panicking;
            panic!("a send that panics");
        });
        assert!(attempt.await.unwrap_err().is_panic());
        assert_eq!(
            inflight.lock()["t1:a"],
            (1, false),
            "the panicked attempt's slot is free"
        );
        drop(held);
        drop(bot);
        assert!(inflight.lock().is_empty());
    }
}

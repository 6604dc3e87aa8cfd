//! Every metric name the reconciler records, in one place
//! (`<namespace>_<name>_<unit>_total`, low-cardinality labels).

use dynzero_contracts::rejection::Reason;
use dynzero_runtime::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

pub const MESSAGES_PROCESSED: &str = "dynzero_reconciler_messages_processed_total";
pub const MESSAGES_DUPLICATE: &str = "dynzero_reconciler_messages_duplicate_total";
pub const MESSAGES_REJECTED: &str = "dynzero_reconciler_messages_rejected_total";
pub const OUTPUTS_PUBLISHED: &str = "dynzero_relay_outputs_published_total";
pub const TRANSIENT_ERRORS: &str = "dynzero_reconciler_transient_errors_total";
pub const BATCHES_ONE_BY_ONE: &str = "dynzero_reconciler_batches_one_by_one_total";
/// Messages per batch the consumer took from the queue.
pub const BATCH_SIZE: &str = "dynzero_reconciler_batch_messages";
/// From the event's `time` (`from="event_time"`) or from the delivery's
/// arrival at the consumer (`from="arrival"`) to the commit that applied it.
pub const PROCESSING_LATENCY: &str = "dynzero_reconciler_processing_latency_seconds";
/// Deliveries the broker marked redelivered or that carry `x-delivery-count > 0`.
pub const REDELIVERIES: &str = "dynzero_reconciler_redeliveries_total";
/// Messages a batch left waiting because a batch in flight names the same
/// people or households (each counted once, however long it waited).
pub const HELD_BACK: &str = "dynzero_reconciler_messages_held_back_total";
/// Rows waiting in the outbox, sampled by the processes that run the relay.
pub const OUTBOX_ROWS: &str = "dynzero_outbox_rows";
/// Age of the oldest outbox row (0 when empty), sampled with [`OUTBOX_ROWS`].
pub const OUTBOX_OLDEST_AGE: &str = "dynzero_outbox_oldest_age_seconds";
/// 1 while this process's relay holds the relay lock and publishes, 0 while
/// it waits for another to let go; absent where no relay runs.
pub const RELAY_LEADING: &str = "dynzero_relay_leading";

const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Seconds: from a commit's few milliseconds to a backfill's day-old events.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0,
];

pub struct Metrics {
    processed: AtomicU64,
    duplicate: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    published: AtomicU64,
    transient: AtomicU64,
    one_by_one: AtomicU64,
    batch_size: Histogram,
    from_event_time: Histogram,
    from_arrival: Histogram,
    redeliveries: AtomicU64,
    held_back: AtomicU64,
    /// False until a relay sampled the outbox: a process without one does
    /// not report an outbox it never looked at.
    outbox_sampled: AtomicBool,
    outbox_rows: AtomicU64,
    outbox_oldest_age_ms: AtomicU64,
    /// The relay of this process: 0 none ran, 1 waiting, 2 publishing.
    relay: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            processed: Default::default(),
            duplicate: Default::default(),
            rejected: Default::default(),
            published: Default::default(),
            transient: Default::default(),
            one_by_one: Default::default(),
            batch_size: Histogram::new(BATCH_BUCKETS),
            from_event_time: Histogram::new(LATENCY_BUCKETS),
            from_arrival: Histogram::new(LATENCY_BUCKETS),
            redeliveries: Default::default(),
            held_back: Default::default(),
            outbox_sampled: Default::default(),
            outbox_rows: Default::default(),
            outbox_oldest_age_ms: Default::default(),
            relay: Default::default(),
        }
    }
}

impl Metrics {
    pub fn processed(&self) {
        self.processed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn duplicate(&self) {
        self.duplicate.fetch_add(1, Ordering::Relaxed);
    }
    pub fn rejected(&self, reason: Reason) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn published(&self, n: u64) {
        self.published.fetch_add(n, Ordering::Relaxed);
    }
    pub fn transient(&self) {
        self.transient.fetch_add(1, Ordering::Relaxed);
    }
    /// A batch failed as a whole and was applied again one message at a time.
    pub fn one_by_one(&self) {
        self.one_by_one.fetch_add(1, Ordering::Relaxed);
    }
    pub fn batch(&self, messages: usize) {
        self.batch_size.observe(messages as f64);
    }
    /// A message applied and committed: how long since its event `time`
    /// (when it has a readable one) and since it arrived.
    pub fn applied_after(&self, since_event_time: Option<Duration>, since_arrival: Duration) {
        if let Some(latency) = since_event_time {
            self.from_event_time.observe(latency.as_secs_f64());
        }
        self.from_arrival.observe(since_arrival.as_secs_f64());
    }
    pub fn redelivered(&self) {
        self.redeliveries.fetch_add(1, Ordering::Relaxed);
    }
    pub fn held_back(&self, messages: u64) {
        self.held_back.fetch_add(messages, Ordering::Relaxed);
    }
    pub fn held_back_count(&self) -> u64 {
        self.held_back.load(Ordering::Relaxed)
    }
    pub fn redeliveries_count(&self) -> u64 {
        self.redeliveries.load(Ordering::Relaxed)
    }
    /// What the relay's sampler saw in the outbox.
    pub fn outbox(&self, rows: u64, oldest_age: Duration) {
        self.outbox_rows.store(rows, Ordering::Relaxed);
        self.outbox_oldest_age_ms
            .store(oldest_age.as_millis() as u64, Ordering::Relaxed);
        self.outbox_sampled.store(true, Ordering::Relaxed);
    }
    /// Whether this process's relay holds the relay lock (publishes).
    pub fn relay_leading(&self, leading: bool) {
        self.relay
            .store(if leading { 2 } else { 1 }, Ordering::Relaxed);
    }
    /// `None` when no relay ran in this process.
    pub fn relay_leading_now(&self) -> Option<bool> {
        match self.relay.load(Ordering::Relaxed) {
            0 => None,
            state => Some(state == 2),
        }
    }
    pub fn one_by_one_count(&self) -> u64 {
        self.one_by_one.load(Ordering::Relaxed)
    }
    pub fn processed_count(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
    pub fn duplicate_count(&self) -> u64 {
        self.duplicate.load(Ordering::Relaxed)
    }
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }
    pub fn rejected_count(&self, reason: Reason) -> u64 {
        self.rejected[reason as usize].load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, labels: &str, v: u64| {
            out.push_str(&format!("{name}{labels} {v}\n"));
        };
        line(
            MESSAGES_PROCESSED,
            "",
            self.processed.load(Ordering::Relaxed),
        );
        line(
            MESSAGES_DUPLICATE,
            "",
            self.duplicate.load(Ordering::Relaxed),
        );
        for reason in Reason::ALL {
            line(
                MESSAGES_REJECTED,
                &format!("{{reason=\"{}\"}}", reason.as_str()),
                self.rejected_count(reason),
            );
        }
        line(
            OUTPUTS_PUBLISHED,
            "",
            self.published.load(Ordering::Relaxed),
        );
        line(TRANSIENT_ERRORS, "", self.transient.load(Ordering::Relaxed));
        line(BATCHES_ONE_BY_ONE, "", self.one_by_one_count());
        line(REDELIVERIES, "", self.redeliveries_count());
        line(HELD_BACK, "", self.held_back_count());
        if self.outbox_sampled.load(Ordering::Relaxed) {
            line(OUTBOX_ROWS, "", self.outbox_rows.load(Ordering::Relaxed));
            let age = self.outbox_oldest_age_ms.load(Ordering::Relaxed) as f64 / 1000.0;
            out.push_str(&format!("{OUTBOX_OLDEST_AGE} {age}\n"));
        }
        if let Some(leading) = self.relay_leading_now() {
            out.push_str(&format!("{RELAY_LEADING} {}\n", u8::from(leading)));
        }
        self.batch_size.render(&mut out, BATCH_SIZE, "");
        self.from_event_time
            .render(&mut out, PROCESSING_LATENCY, "from=\"event_time\"");
        self.from_arrival
            .render(&mut out, PROCESSING_LATENCY, "from=\"arrival\"");
        out
    }
}

//! Every metric name the reconciler records, in one place
//! (`<namespace>_<name>_<unit>_total`, low-cardinality labels).

use dynzero_contracts::rejection::Reason;
use std::sync::atomic::{AtomicU64, Ordering};

pub const MESSAGES_PROCESSED: &str = "dynzero_reconciler_messages_processed_total";
pub const MESSAGES_DUPLICATE: &str = "dynzero_reconciler_messages_duplicate_total";
pub const MESSAGES_REJECTED: &str = "dynzero_reconciler_messages_rejected_total";
pub const OUTPUTS_PUBLISHED: &str = "dynzero_relay_outputs_published_total";
pub const TRANSIENT_ERRORS: &str = "dynzero_reconciler_transient_errors_total";
pub const BATCHES_ONE_BY_ONE: &str = "dynzero_reconciler_batches_one_by_one_total";

#[derive(Default)]
pub struct Metrics {
    processed: AtomicU64,
    duplicate: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    published: AtomicU64,
    transient: AtomicU64,
    one_by_one: AtomicU64,
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
        out
    }
}

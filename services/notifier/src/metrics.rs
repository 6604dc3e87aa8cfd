//! Every metric name the notifier records, in one place
//! (`<namespace>_<name>_<unit>_total`, low-cardinality labels: the target kind).

use crate::subscription::TargetKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub const ALERTS_CONSUMED: &str = "dynzero_notifier_alerts_consumed_total";
pub const ALERTS_MALFORMED: &str = "dynzero_notifier_alerts_malformed_total";
pub const DELIVERIES_CREATED: &str = "dynzero_notifier_deliveries_created_total";
pub const DELIVERIES_DELIVERED: &str = "dynzero_notifier_deliveries_delivered_total";
pub const ATTEMPTS_RETRIED: &str = "dynzero_notifier_attempts_retried_total";
pub const DELIVERIES_FAILED: &str = "dynzero_notifier_deliveries_failed_total";
pub const DIGESTS_SENT: &str = "dynzero_notifier_digests_sent_total";
/// Alerts whose recording kept failing on their data, parked in `notifier_parked`.
pub const ALERTS_PARKED: &str = "dynzero_notifier_parked_total";
/// Rows in `notifier_parked` now (read at start, grown by this process).
pub const PARKED_ROWS: &str = "dynzero_notifier_parked";
/// From the alert's arrival at the notifier to its delivery.
pub const DELIVERY_LATENCY: &str = "dynzero_notifier_delivery_latency_seconds";
/// Deliveries in the table now, by `state` and `target_kind` (a gauge,
/// sampled; the `_total` counters above count events instead).
pub const DELIVERIES: &str = "dynzero_notifier_deliveries";

/// The delivery states [`DELIVERIES`] reports, each a `state` label value.
/// A new state (e.g. `parked`) is one more variant here and in `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 2] = [DeliveryState::Pending, DeliveryState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state of a `notifier_delivery.status`, if it is one reported.
    pub fn parse(status: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == status)
    }
}

const BUCKETS_MS: [u64; 8] = [100, 250, 500, 1_000, 5_000, 30_000, 300_000, 3_600_000];

#[derive(Default)]
struct PerKind {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    digests: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_sum_ms: AtomicU64,
    /// Deliveries in each [`DeliveryState`], as last sampled.
    in_state: [AtomicU64; DeliveryState::ALL.len()],
}

#[derive(Default)]
pub struct Metrics {
    consumed: AtomicU64,
    malformed: AtomicU64,
    created: AtomicU64,
    parked: AtomicU64,
    parked_rows: AtomicU64,
    kinds: [PerKind; 3],
    /// False until the sampler ran once.
    states_sampled: AtomicBool,
}

fn index(kind: TargetKind) -> usize {
    match kind {
        TargetKind::Webhook | TargetKind::Amqp => 0,
        TargetKind::Wecom => 1,
        TargetKind::Dingtalk => 2,
    }
}

impl Metrics {
    pub fn consumed(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn created(&self, n: u64) {
        self.created.fetch_add(n, Ordering::Relaxed);
    }
    pub fn parked(&self, n: u64) {
        self.parked.fetch_add(n, Ordering::Relaxed);
        self.parked_rows.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set_parked_rows(&self, n: u64) {
        self.parked_rows.store(n, Ordering::Relaxed);
    }
    pub fn parked_count(&self) -> u64 {
        self.parked.load(Ordering::Relaxed)
    }
    pub fn delivered(&self, kind: TargetKind, latency: Duration) {
        let k = &self.kinds[index(kind)];
        k.delivered.fetch_add(1, Ordering::Relaxed);
        let ms = latency.as_millis() as u64;
        k.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        for (bucket, le) in k.latency_buckets.iter().zip(BUCKETS_MS) {
            if ms <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    pub fn retried(&self, kind: TargetKind, n: u64) {
        self.kinds[index(kind)]
            .retried
            .fetch_add(n, Ordering::Relaxed);
    }
    pub fn failed(&self, kind: TargetKind, n: u64) {
        self.kinds[index(kind)]
            .failed
            .fetch_add(n, Ordering::Relaxed);
    }
    pub fn digest(&self, kind: TargetKind) {
        self.kinds[index(kind)]
            .digests
            .fetch_add(1, Ordering::Relaxed);
    }
    /// A sample of the delivery table: (target kind, status, rows); kinds
    /// and states not in it have none.
    pub fn deliveries(&self, counts: &[(TargetKind, DeliveryState, u64)]) {
        let mut fresh = [[0u64; DeliveryState::ALL.len()]; 3];
        for (kind, state, n) in counts {
            fresh[index(*kind)][*state as usize] += n;
        }
        for (k, per_state) in self.kinds.iter().zip(fresh) {
            for (gauge, n) in k.in_state.iter().zip(per_state) {
                gauge.store(n, Ordering::Relaxed);
            }
        }
        self.states_sampled.store(true, Ordering::Relaxed);
    }
    pub fn deliveries_count(&self, kind: TargetKind, state: DeliveryState) -> u64 {
        self.kinds[index(kind)].in_state[state as usize].load(Ordering::Relaxed)
    }
    pub fn consumed_count(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }
    pub fn delivered_count(&self, kind: TargetKind) -> u64 {
        self.kinds[index(kind)].delivered.load(Ordering::Relaxed)
    }
    pub fn failed_count(&self, kind: TargetKind) -> u64 {
        self.kinds[index(kind)].failed.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, labels: &str, v: String| {
            out.push_str(&format!("{name}{labels} {v}\n"));
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        line(ALERTS_CONSUMED, "", load(&self.consumed));
        line(ALERTS_MALFORMED, "", load(&self.malformed));
        line(DELIVERIES_CREATED, "", load(&self.created));
        line(ALERTS_PARKED, "", load(&self.parked));
        line(PARKED_ROWS, "", load(&self.parked_rows));
        for kind in TargetKind::DELIVERED {
            let k = &self.kinds[index(kind)];
            let target = kind.as_str();
            let label = format!("{{target=\"{target}\"}}");
            line(DELIVERIES_DELIVERED, &label, load(&k.delivered));
            line(ATTEMPTS_RETRIED, &label, load(&k.retried));
            line(DELIVERIES_FAILED, &label, load(&k.failed));
            line(DIGESTS_SENT, &label, load(&k.digests));
            if self.states_sampled.load(Ordering::Relaxed) {
                for state in DeliveryState::ALL {
                    let labels =
                        format!("{{state=\"{}\",target_kind=\"{target}\"}}", state.as_str());
                    line(DELIVERIES, &labels, load(&k.in_state[state as usize]));
                }
            }
            let bucket = format!("{DELIVERY_LATENCY}_bucket");
            for (count, le) in k.latency_buckets.iter().zip(BUCKETS_MS) {
                let le = le as f64 / 1000.0;
                line(
                    &bucket,
                    &format!("{{target=\"{target}\",le=\"{le}\"}}"),
                    load(count),
                );
            }
            line(
                &bucket,
                &format!("{{target=\"{target}\",le=\"+Inf\"}}"),
                load(&k.delivered),
            );
            let sum = k.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0;
            line(&format!("{DELIVERY_LATENCY}_sum"), &label, sum.to_string());
            line(
                &format!("{DELIVERY_LATENCY}_count"),
                &label,
                load(&k.delivered),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states_are_a_gauge_per_state_and_target_kind() {
        let m = Metrics::default();
        let gauge = format!("{DELIVERIES}{{");
        assert!(!m.render().contains(&gauge), "nothing before a sample");
        m.deliveries(&[
            (TargetKind::Wecom, DeliveryState::Pending, 3),
            (TargetKind::Webhook, DeliveryState::Failed, 2),
        ]);
        let text = m.render();
        for (state, kind, n) in [
            ("pending", "wecom", 3),
            ("failed", "webhook", 2),
            ("pending", "dingtalk", 0),
        ] {
            let line = format!("{DELIVERIES}{{state=\"{state}\",target_kind=\"{kind}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        m.deliveries(&[]);
        assert_eq!(
            m.deliveries_count(TargetKind::Wecom, DeliveryState::Pending),
            0
        );
    }

    #[test]
    fn latencies_are_a_histogram_per_target_kind() {
        let m = Metrics::default();
        m.delivered(TargetKind::Wecom, Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("dynzero_notifier_deliveries_delivered_total{target=\"wecom\"} 1"));
        assert!(text.contains(
            "dynzero_notifier_delivery_latency_seconds_bucket{target=\"wecom\",le=\"0.25\"} 0"
        ));
        assert!(text.contains(
            "dynzero_notifier_delivery_latency_seconds_bucket{target=\"wecom\",le=\"0.5\"} 1"
        ));
        assert!(
            text.contains("dynzero_notifier_delivery_latency_seconds_sum{target=\"wecom\"} 0.3")
        );
        m.set_parked_rows(2);
        m.parked(1);
        let text = m.render();
        assert!(text.contains("dynzero_notifier_parked_total 1\n"), "{text}");
        assert!(text.contains("dynzero_notifier_parked 3\n"), "{text}");
    }
}

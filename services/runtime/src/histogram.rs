//! A Prometheus histogram that any service's metrics module can own: fixed
//! bucket bounds, lock-free observations, rendered as `_bucket`, `_sum` and
//! `_count` lines. The names and labels belong to the service.

use std::sync::atomic::{AtomicU64, Ordering};

/// Observations are summed in millionths, so the sum stays an integer.
const SUM_SCALE: f64 = 1_000_000.0;

pub struct Histogram {
    /// Upper bounds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative; rendering accumulates).
    counts: Vec<AtomicU64>,
    /// Above the last bound.
    over: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Record one value (negative values count as 0).
    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        match self.bounds.iter().position(|le| value <= *le) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum
            .fetch_add((value * SUM_SCALE) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    /// The exposition lines of `name` with `labels` (`key="value",…`, or
    /// empty), appended to `out`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let with = |extra: &str| match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        };
        let mut cumulative = 0;
        for (le, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let bucket = with(&format!("le=\"{le}\""));
            out.push_str(&format!("{name}_bucket{bucket} {cumulative}\n"));
        }
        let total = cumulative + self.over.load(Ordering::Relaxed);
        let inf = with("le=\"+Inf\"");
        out.push_str(&format!("{name}_bucket{inf} {total}\n"));
        let sum = self.sum.load(Ordering::Relaxed) as f64 / SUM_SCALE;
        let plain = with("");
        out.push_str(&format!("{name}_sum{plain} {sum}\n"));
        out.push_str(&format!("{name}_count{plain} {total}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_units() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "from=\"arrival\"");
        assert!(
            out.contains("x_seconds_bucket{from=\"arrival\",le=\"1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{from=\"arrival\",le=\"10\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{from=\"arrival\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_sum{from=\"arrival\"} 55.5\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_count{from=\"arrival\"} 3\n"),
            "{out}"
        );
        let mut plain = String::new();
        h.render(&mut plain, "y", "");
        assert!(plain.contains("y_bucket{le=\"1\"} 1\n"), "{plain}");
        assert!(plain.contains("y_count 3\n"), "{plain}");
        assert_eq!(h.count(), 3);
    }
}

//! What a stored layoff notice raises: `layoff_early_warning` for a planned
//! one, `layoff_unreported` for an effective one reported too late or not at all.

use chrono::{DateTime, Utc};
use dynzero_domain::alerts::{self, LayoffSize};
use dynzero_domain::facts::{LayoffNotice, LayoffStage};
use dynzero_domain::ids::{NoticeId, Uscc};

/// A stage of a notice the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownStage {
    pub uscc: Uscc,
    pub notice_id: NoticeId,
    pub stage: LayoffStage,
    pub time: DateTime<Utc>,
    pub arrival: i64,
    /// Stored by the batch being planned (so it counts only if it arrived
    /// before the notice), rather than before it.
    pub in_batch: bool,
}

impl KnownStage {
    /// Known when `notice` is processed: "only what arrived before a notice
    /// counts", as if each message of a batch came alone.
    fn known_before(&self, notice: &LayoffNotice) -> bool {
        self.uscc == notice.enterprise.uscc
            && self.notice_id == notice.notice_id
            && (!self.in_batch || self.arrival < notice.order.arrival)
    }
}

/// What one notice raises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayoffAlert {
    EarlyWarning(LayoffSize),
    Unreported(LayoffSize),
}

/// Decide for one stored notice, given every known stage with its key.
///
/// - `layoff_early_warning`: "a `planned` notice lists ≥ 20 people, or ≥ 10 %
///   of `headcount`", unless withdrawn before it (§6a 4: "a `planned` notice
///   processed after its withdrawal raises nothing").
/// - `layoff_unreported`: "an `effective` notice meets that threshold and,
///   when it is processed, the hub knows no `planned` notice with the same
///   (`uscc`, `notice_id`) whose `time` is at least 30 days before the
///   `effective_date`". A withdrawn planned notice was still reported.
pub fn layoff_alert(notice: &LayoffNotice, known: &[KnownStage]) -> Option<LayoffAlert> {
    let before = |stage: LayoffStage| {
        known
            .iter()
            .filter(move |k| k.stage == stage && k.known_before(notice))
    };
    match notice.stage {
        LayoffStage::Planned => {
            if before(LayoffStage::Withdrawn).next().is_some() {
                return None;
            }
            alerts::layoff_early_warning(notice).map(LayoffAlert::EarlyWarning)
        }
        LayoffStage::Effective => {
            let planned = before(LayoffStage::Planned).map(|k| k.time);
            alerts::layoff_unreported(notice, planned).map(LayoffAlert::Unreported)
        }
        LayoffStage::Withdrawn => None,
    }
}

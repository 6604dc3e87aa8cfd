//! How many batches one consumer applies at once (`amqp.pipeline`), and when
//! the next goes beside those in flight (`amqp.pipeline_from`).

/// How many batches one consumer applies at once.
#[derive(Clone, Copy, Debug)]
pub struct Depth {
    /// The most in flight (`amqp.pipeline`).
    pub most: usize,
    /// Messages waiting that start a batch beside one in flight
    /// (`amqp.pipeline_from`, at most a batch).
    pub from: usize,
}

impl Depth {
    /// From `amqp.pipeline` and `amqp.pipeline_from`, for batches of at most
    /// `batch` messages: at least one in flight, and never more waiting asked
    /// for than a batch holds (or a second batch would never go).
    pub fn new(pipeline: u16, pipeline_from: u16, batch: usize) -> Self {
        Self {
            most: usize::from(pipeline.max(1)),
            from: usize::from(pipeline_from.max(1)).min(batch.max(1)),
        }
    }

    /// Whether a batch may start, with `in_flight` batches in flight and
    /// `waiting` messages waiting: at once when none is in flight, beside
    /// others only once enough wait that a batch more is worth its
    /// transaction. At a steady rate the one batch in flight takes what
    /// arrived meanwhile when it lands; a backlog, or a rate it cannot keep
    /// up with, fills `from` and starts the next.
    pub fn may_start(self, in_flight: usize, waiting: usize) -> bool {
        waiting > 0 && (in_flight == 0 || (in_flight < self.most && waiting >= self.from))
    }
}

#[cfg(test)]
mod tests {
    use super::Depth;

    const DEPTH: Depth = Depth { most: 2, from: 128 };

    #[test]
    fn with_nothing_in_flight_one_message_starts_a_batch() {
        assert!(DEPTH.may_start(0, 1));
        assert!(!DEPTH.may_start(0, 0));
    }

    #[test]
    fn beside_a_batch_in_flight_a_batch_starts_only_once_enough_wait() {
        assert!(!DEPTH.may_start(1, 1));
        assert!(!DEPTH.may_start(1, 127));
        assert!(DEPTH.may_start(1, 128));
        assert!(DEPTH.may_start(1, 512));
    }

    #[test]
    fn a_threshold_above_the_batch_size_is_the_batch_size() {
        let depth = Depth::new(2, 128, 1);
        assert!(depth.may_start(1, 1));
        assert_eq!(Depth::new(0, 0, 512).most, 1);
    }

    #[test]
    fn never_more_in_flight_than_the_pipeline_allows() {
        assert!(!DEPTH.may_start(2, 512));
        let one_at_a_time = Depth { most: 1, from: 1 };
        assert!(!one_at_a_time.may_start(1, 512));
        assert!(one_at_a_time.may_start(0, 1));
    }
}

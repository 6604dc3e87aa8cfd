//! The batch engine: several messages in one transaction, applied together
//! (one statement per table) or, when that fails, one by one under
//! savepoints so a message that fails is rolled back alone.

use crate::apply::{Applied, Naming, lock_upfront};
use crate::hub::{Fate, Hub, ProcessError};
use crate::store::Tx;
use crate::store::bulk::Chain;
use crate::store::households::Causes;
use crate::store::outbox::Outputs;
use dynzero_contracts::inbound::{self, Inbound, InboundFact};
use dynzero_contracts::rejection::{Reason, Rejection};
use dynzero_contracts::trace::{TraceContext, TraceParent};
use dynzero_runtime::telemetry;
use std::collections::BTreeSet;
use std::ops::Range;
use tracing::{Instrument, Span, warn};

/// How a batch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// All messages together: one statement per table for the batch.
    Together,
    /// Each message under its own savepoint, so one that fails rolls back alone.
    OneByOne,
}

/// What a transaction gathers while its messages are applied.
struct Work {
    naming: Naming,
    /// The households the messages bear on, written with the fold.
    causes: Causes,
    outputs: Outputs,
    /// Households whose facts changed, folded at the end (or before the first posting).
    pending: BTreeSet<String>,
}

fn is_posting(m: &Inbound) -> bool {
    matches!(m.fact, InboundFact::Posting(_))
}

impl Hub {
    /// Check, store and apply several message bodies in one transaction, in
    /// order; one fate per body. The batch is first applied as a whole; if
    /// that fails, it is applied again with each message under its own
    /// savepoint. Households are folded once per batch; job postings, which
    /// read the households' states, are applied after that fold, wherever
    /// they are in the batch.
    pub async fn process_batch(&self, bodies: &[&[u8]]) -> Result<Vec<Fate>, ProcessError> {
        let today = self.clock.today();
        let mut parsed: Vec<Result<Inbound, Rejection>> = bodies
            .iter()
            .map(|body| inbound::parse(body, self.settings.rules.max_body_bytes, today))
            .collect();
        let messages = self.continue_traces(&mut parsed);
        let batch = tracing::info_span!("process batch", messages = bodies.len());
        for message in &messages {
            batch.follows_from(message);
        }
        self.process_parsed(&parsed).instrument(batch).await
    }

    async fn process_parsed(
        &self,
        parsed: &[Result<Inbound, Rejection>],
    ) -> Result<Vec<Fate>, ProcessError> {
        let valid = parsed.iter().filter(|p| p.is_ok()).count();
        if valid == 0 {
            return Ok(parsed
                .iter()
                .filter_map(|p| p.as_ref().err())
                .map(|r| Fate::Rejected(r.clone()))
                .collect());
        }
        match self.apply_batch(parsed, Mode::Together).await {
            Err(ProcessError::Failed(e)) if valid > 1 => {
                warn!(error = %e, "a batch failed as a whole; applying its messages one by one");
                self.metrics.one_by_one();
                self.apply_batch(parsed, Mode::OneByOne).await
            }
            other => other,
        }
    }

    /// One span per valid message, continuing the trace its `traceparent`
    /// names (docs/operations.md, "Tracing"); the message's `onward_trace`,
    /// what the outputs it causes carry, is that span in that trace. The
    /// spans end with the batch.
    fn continue_traces(&self, parsed: &mut [Result<Inbound, Rejection>]) -> Vec<Span> {
        parsed
            .iter_mut()
            .filter_map(|p| p.as_mut().ok())
            .map(|inbound| {
                let span = tracing::info_span!(
                    parent: None,
                    "process message",
                    messaging.system = "rabbitmq",
                    messaging.operation.type = "process",
                    messaging.destination.name = %self.settings.amqp.queue,
                    messaging.message.id = %inbound.id,
                    cloudevents.event_source = %inbound.source,
                    cloudevents.event_type = inbound.event_type.as_str(),
                );
                let received = inbound.trace.as_ref();
                let tracestate = received.and_then(|t| t.tracestate.clone());
                let onward = telemetry::continue_trace(
                    &span,
                    received.map(|t| t.traceparent.as_str()),
                    tracestate.as_deref(),
                );
                inbound.onward_trace =
                    onward
                        .as_deref()
                        .and_then(TraceParent::parse)
                        .map(|traceparent| TraceContext {
                            traceparent,
                            tracestate,
                        });
                span
            })
            .collect()
    }

    async fn apply_batch(
        &self,
        parsed: &[Result<Inbound, Rejection>],
        mode: Mode,
    ) -> Result<Vec<Fate>, ProcessError> {
        let now = self.clock.now();
        // Postings last: they read the households' states, folded first.
        let valid: Vec<&Inbound> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let order: Vec<usize> = (0..valid.len())
            .filter(|&i| !is_posting(valid[i]))
            .chain((0..valid.len()).filter(|&i| is_posting(valid[i])))
            .collect();
        let mut messages: Vec<Inbound> = order.iter().map(|&i| valid[i].clone()).collect();
        let mut tx = self.pool.begin().await?;
        let mut work = Work {
            naming: lock_upfront(&mut tx, &messages).await?,
            causes: Causes::default(),
            outputs: Outputs::default(),
            pending: BTreeSet::new(),
        };
        let mut fates: Vec<Fate> = Vec::with_capacity(messages.len());
        let mut folded = false;
        for range in runs(&messages, mode) {
            if is_posting(&messages[range.start]) && !folded {
                // A posting reads the households' states: bring them up to date first.
                folded = true;
                let households = std::mem::take(&mut work.pending);
                let causes = std::mem::take(&mut work.causes);
                let mut chain = Chain::default();
                self.reconcile_households(
                    &mut tx,
                    &households,
                    causes,
                    now,
                    &mut work.outputs,
                    &mut chain,
                )
                .await?;
                chain.execute(&mut tx).await?;
            }
            let run = &mut messages[range];
            fates.extend(self.apply_run(&mut tx, run, mode, &mut work).await?);
        }
        // The households' rows, history and causes, the alerts and the
        // outbox: one statement.
        let mut chain = Chain::default();
        self.reconcile_households(
            &mut tx,
            &work.pending,
            work.causes,
            now,
            &mut work.outputs,
            &mut chain,
        )
        .await?;
        work.outputs.write(&mut chain, now);
        chain.execute(&mut tx).await?;
        tx.commit().await?;
        Ok(in_body_order(parsed, fates, &order))
    }

    /// Apply one run of messages: all together, or one under a savepoint.
    async fn apply_run(
        &self,
        tx: Tx<'_>,
        run: &mut [Inbound],
        mode: Mode,
        work: &mut Work,
    ) -> Result<Vec<Fate>, ProcessError> {
        let applied: Vec<Result<Applied, anyhow::Error>> = match mode {
            Mode::Together => self
                .apply(
                    tx,
                    run,
                    &mut work.naming,
                    &mut work.causes,
                    &mut work.outputs,
                )
                .await?
                .into_iter()
                .map(Ok)
                .collect(),
            Mode::OneByOne => {
                let before = (work.naming.clone(), work.causes.mark(), work.outputs.mark());
                let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
                match self
                    .apply(
                        &mut savepoint,
                        run,
                        &mut work.naming,
                        &mut work.causes,
                        &mut work.outputs,
                    )
                    .await
                {
                    Ok(applied) => {
                        savepoint.commit().await?;
                        applied.into_iter().map(Ok).collect()
                    }
                    Err(ProcessError::Transient(e)) => return Err(ProcessError::Transient(e)),
                    Err(ProcessError::Failed(e)) => {
                        savepoint.rollback().await?;
                        work.naming = before.0;
                        work.causes.roll_back_to(before.1);
                        work.outputs.roll_back_to(before.2);
                        vec![Err(e)]
                    }
                }
            }
        };
        Ok(run
            .iter()
            .zip(applied)
            .map(|(inbound, applied)| match applied {
                Ok(Applied::New(affected)) => {
                    work.pending.extend(affected);
                    Fate::Applied
                }
                Ok(Applied::Duplicate) => Fate::Duplicate,
                Ok(Applied::Conflict) => Fate::Rejected(Rejection::new(
                    Reason::DuplicateIdConflict,
                    format!(
                        "/id: ({}, {}) was processed before with different data",
                        inbound.source, inbound.id
                    ),
                )),
                Err(e) => Fate::Failed(e),
            })
            .collect())
    }
}

/// The runs a batch is applied in: together, everything before the first
/// posting and then the postings; one by one, each message.
fn runs(messages: &[Inbound], mode: Mode) -> Vec<Range<usize>> {
    if mode == Mode::OneByOne {
        return (0..messages.len()).map(|i| i..i + 1).collect();
    }
    let first_posting = messages
        .iter()
        .position(is_posting)
        .unwrap_or(messages.len());
    [0..first_posting, first_posting..messages.len()]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect()
}

/// Rejected at parsing, or applied: back in the bodies' order. `order[i]`
/// is the index among the valid bodies of the i-th message applied.
fn in_body_order(
    parsed: &[Result<Inbound, Rejection>],
    fates: Vec<Fate>,
    order: &[usize],
) -> Vec<Fate> {
    let mut in_order: Vec<Option<Fate>> = (0..fates.len()).map(|_| None).collect();
    for (fate, &i) in fates.into_iter().zip(order) {
        in_order[i] = Some(fate);
    }
    let mut applied = in_order.into_iter().flatten();
    parsed
        .iter()
        .map(|p| match p {
            Err(rejection) => Fate::Rejected(rejection.clone()),
            Ok(_) => applied
                .next()
                .unwrap_or_else(|| Fate::Failed(anyhow::anyhow!("no outcome"))),
        })
        .collect()
}

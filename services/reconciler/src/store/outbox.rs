//! Alerts and the outbox: what a transaction raises and publishes, written
//! with the state it comes from and published by the relay after commit.

use super::bulk::Chain;
use chrono::{DateTime, Utc};
use dynzero_contracts::outbound::{Alert, Output};
use dynzero_contracts::trace::TraceContext;
use std::collections::HashSet;

/// What a transaction will put in the outbox, in order: state versions, and
/// alerts (each only if its id was never raised). Written by
/// [`Outputs::write`] with two statements, however many there are.
#[derive(Default)]
pub struct Outputs {
    entries: Vec<Pending>,
}

enum Pending {
    State(Output),
    /// An alert, and the trace context of what caused it.
    Alert(Box<Alert>, Option<TraceContext>),
}

impl Outputs {
    /// A state version, carrying the trace context of what caused it.
    pub fn state(&mut self, output: Output, trace: Option<&TraceContext>) {
        self.entries.push(Pending::State(output.traced(trace)));
    }

    /// An alert, carrying the trace context of what caused it.
    pub fn alert(&mut self, alert: Alert, trace: Option<&TraceContext>) {
        self.entries
            .push(Pending::Alert(Box::new(alert), trace.cloned()));
    }

    /// Where to come back to if the work after this is rolled back.
    pub fn mark(&self) -> usize {
        self.entries.len()
    }

    pub fn roll_back_to(&mut self, mark: usize) {
        self.entries.truncate(mark);
    }

    /// Raise the alerts — once per occurrence: the alert table holds every id
    /// raised — and enqueue the states and the newly raised alerts: two
    /// statements in `chain`, the outbox's reading what the alerts' raised.
    pub fn write(&mut self, chain: &mut Chain, now: DateTime<Utc>) {
        let outputs: Vec<(Output, Option<Box<Alert>>)> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| match e {
                Pending::State(o) => (o, None),
                Pending::Alert(a, trace) => (a.output(now).traced(trace.as_ref()), Some(a)),
            })
            .collect();
        // An alert raised twice in this transaction is enqueued once; one
        // raised before, never again (the statement's filter, below).
        let mut first: HashSet<&str> = HashSet::new();
        let enqueued: Vec<(&Output, Option<&Alert>)> = outputs
            .iter()
            .filter(|(o, alert)| alert.is_none() || first.insert(o.message_id.as_str()))
            .map(|(o, alert)| (o, alert.as_deref()))
            .collect();
        raise(chain, &enqueued, now);
        let enqueued: Vec<&Output> = enqueued.into_iter().map(|(o, _)| o).collect();
        let bodies: Vec<Vec<u8>> = enqueued
            .iter()
            .map(|o| serde_json::to_vec(&o.event).unwrap_or_default())
            .collect();
        let chain_raises = chain.has(RAISED);
        chain
            .insert("outbox", enqueued.len())
            .column(
                "stream",
                "text",
                enqueued
                    .iter()
                    .map(|o| o.stream.as_str())
                    .collect::<Vec<_>>(),
            )
            .column(
                "routing_key",
                "text",
                enqueued
                    .iter()
                    .map(|o| o.routing_key.as_str())
                    .collect::<Vec<_>>(),
            )
            .column(
                "message_id",
                "text",
                enqueued
                    .iter()
                    .map(|o| o.message_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .column("body", "bytea", &bodies)
            .column(
                "traceparent",
                "text",
                enqueued.iter().map(|o| o.traceparent()).collect::<Vec<_>>(),
            )
            .named(
                None,
                if chain_raises {
                    "WHERE stream <> 'alerts' OR message_id IN (SELECT id FROM raised)"
                } else {
                    ""
                },
                "",
            );
    }
}

/// What the outbox's statement reads the ids of the alerts never raised
/// before as.
const RAISED: &str = "raised";

/// Insert the alerts; the ids of those never raised before are [`RAISED`].
fn raise(chain: &mut Chain, outputs: &[(&Output, Option<&Alert>)], now: DateTime<Utc>) {
    let alerts: Vec<(&Output, &Alert)> = outputs
        .iter()
        .filter_map(|(o, a)| a.map(|a| (*o, a)))
        .collect();
    chain
        .insert("alert", alerts.len())
        .column(
            "id",
            "text",
            alerts
                .iter()
                .map(|(o, _)| o.message_id.as_str())
                .collect::<Vec<_>>(),
        )
        .column(
            "kind",
            "text",
            alerts
                .iter()
                .map(|(_, a)| a.kind.as_str())
                .collect::<Vec<_>>(),
        )
        .column(
            "division_code",
            "text",
            alerts
                .iter()
                .map(|(_, a)| a.division_code.as_str())
                .collect::<Vec<_>>(),
        )
        .column(
            "household_id",
            "text",
            alerts
                .iter()
                .map(|(_, a)| a.household_id.as_ref().map(|h| h.as_str()))
                .collect::<Vec<_>>(),
        )
        .column("raised_at", "timestamptz", vec![now; alerts.len()])
        .column(
            "summary",
            "text",
            alerts
                .iter()
                .map(|(_, a)| a.summary.as_str())
                .collect::<Vec<_>>(),
        )
        .column(
            "event",
            "jsonb",
            alerts.iter().map(|(o, _)| &o.event).collect::<Vec<_>>(),
        )
        .named(Some(RAISED), "", "ON CONFLICT (id) DO NOTHING RETURNING id");
}

/// How many rows wait in the outbox and how long the oldest has waited
/// (zero when empty), for the metrics. Both read the primary key's index:
/// the count stays cheap while the relay keeps the outbox short.
pub async fn sample(pool: &sqlx::PgPool) -> Result<(i64, std::time::Duration), sqlx::Error> {
    let (rows, oldest_age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox),
                (SELECT extract(epoch FROM now() - written_at)::float8
                 FROM outbox ORDER BY seq LIMIT 1)",
    )
    .fetch_one(pool)
    .await?;
    let age = std::time::Duration::from_secs_f64(oldest_age.unwrap_or(0.0).max(0.0));
    Ok((rows, age))
}

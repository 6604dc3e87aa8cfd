//! Alerts and the outbox: what a transaction raises and publishes, written
//! with the state it comes from and published by the relay after commit.

use super::Tx;
use super::bulk::Bulk;
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
    /// raised — and enqueue the states and the newly raised alerts.
    pub async fn write(&mut self, tx: Tx<'_>, now: DateTime<Utc>) -> sqlx::Result<()> {
        let outputs: Vec<(Output, Option<Box<Alert>>)> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| match e {
                Pending::State(o) => (o, None),
                Pending::Alert(a, trace) => (a.output(now).traced(trace.as_ref()), Some(a)),
            })
            .collect();
        let mut raised: HashSet<String> = raise(tx, &outputs, now).await?.into_iter().collect();
        // An alert raised before, or twice in this transaction, is enqueued at most once.
        let enqueued: Vec<&Output> = outputs
            .iter()
            .filter(|(o, alert)| alert.is_none() || raised.remove(&o.message_id))
            .map(|(o, _)| o)
            .collect();
        let bodies: Vec<Vec<u8>> = enqueued
            .iter()
            .map(|o| serde_json::to_vec(&o.event).unwrap_or_default())
            .collect();
        Bulk::insert("outbox", enqueued.len())
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
            .execute(tx, "")
            .await
    }
}

/// Insert the alerts; the ids of those never raised before.
async fn raise(
    tx: Tx<'_>,
    outputs: &[(Output, Option<Box<Alert>>)],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<String>> {
    let alerts: Vec<(&Output, &Alert)> = outputs
        .iter()
        .filter_map(|(o, a)| a.as_deref().map(|a| (o, a)))
        .collect();
    let ids: Vec<(String,)> = Bulk::insert("alert", alerts.len())
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
        .returning(tx, "ON CONFLICT (id) DO NOTHING RETURNING id")
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
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

//! The inbox: every processed message by its idempotency key (`source`, `id`),
//! with a digest of its `data`, inserted in the transaction that applies it.

use super::Tx;
use super::bulk::Chain;
use chrono::{DateTime, Utc};
use dynzero_contracts::inbound::Inbound;
use dynzero_contracts::trace::{TraceContext, TraceParent};
use std::collections::HashMap;

/// What the inbox says of a message's (source, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxOutcome {
    /// First time: its arrival number.
    New(i64),
    /// "The same (`source`, `id`) with the same `data` … has no further effect."
    Duplicate,
    /// "The same (`source`, `id`) with different `data` is rejected (`duplicate_id_conflict`)."
    Conflict,
}

/// Record several messages with one statement, in order: each new (source,
/// id) gets the next arrival number; one outcome per message.
pub async fn record(tx: Tx<'_>, messages: &[Inbound]) -> sqlx::Result<Vec<InboxOutcome>> {
    let sources: Vec<&str> = messages.iter().map(|m| m.source.as_str()).collect();
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let digests: Vec<&str> = messages.iter().map(|m| m.data_digest.as_str()).collect();
    let types: Vec<&str> = messages.iter().map(|m| m.event_type.as_str()).collect();
    let times: Vec<DateTime<Utc>> = messages.iter().map(|m| m.time).collect();
    let received: Vec<Option<&TraceContext>> = messages.iter().map(|m| m.trace.as_ref()).collect();
    let traceparents: Vec<Option<&str>> = received
        .iter()
        .map(|t| t.map(|t| t.traceparent.as_str()))
        .collect();
    let tracestates: Vec<Option<&str>> = received
        .iter()
        .map(|t| t.and_then(|t| t.tracestate.as_deref()))
        .collect();
    let onward: Vec<Option<&str>> = messages
        .iter()
        .map(|m| m.onward_trace.as_ref().map(|t| t.traceparent.as_str()))
        .collect();
    let mut chain = Chain::default();
    chain
        .insert("inbox", messages.len())
        .column("source", "text", &sources)
        .column("id", "text", &ids)
        .column("digest", "text", &digests)
        .column("event_type", "text", &types)
        .column("time", "timestamptz", &times)
        .column("traceparent", "text", &traceparents)
        .column("tracestate", "text", &tracestates)
        .column("onward_traceparent", "text", &onward)
        .tail("ON CONFLICT (source, id) DO NOTHING RETURNING source, id, arrival");
    let inserted: Vec<(String, String, i64)> = chain.returning(tx).await?;
    let mut arrivals: HashMap<(&str, &str), i64> = inserted
        .iter()
        .map(|(s, i, a)| ((s.as_str(), i.as_str()), *a))
        .collect();
    // The first message with a key inserted it; any other was here before.
    let mut first: HashMap<(&str, &str), &str> = HashMap::new();
    let mut outcomes = vec![InboxOutcome::Duplicate; messages.len()];
    let mut known: Vec<usize> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let key = (m.source.as_str(), m.id.as_str());
        if let Some(arrival) = arrivals.remove(&key) {
            first.insert(key, m.data_digest.as_str());
            outcomes[i] = InboxOutcome::New(arrival);
        } else if let Some(digest) = first.get(&key) {
            outcomes[i] = same_or_conflict(digest, m);
        } else {
            known.push(i);
        }
    }
    if known.is_empty() {
        return Ok(outcomes);
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT source, id, digest FROM inbox
         WHERE (source, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(known.iter().map(|&i| sources[i]).collect::<Vec<_>>())
    .bind(known.iter().map(|&i| ids[i]).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let digests: HashMap<(&str, &str), &str> = rows
        .iter()
        .map(|(s, i, d)| ((s.as_str(), i.as_str()), d.as_str()))
        .collect();
    for i in known {
        let m = &messages[i];
        // Not inserted, yet not there: cannot happen (an insert waits for a
        // concurrent one with the same key); an error, never a guess.
        let Some(digest) = digests.get(&(m.source.as_str(), m.id.as_str())) else {
            return Err(sqlx::Error::RowNotFound);
        };
        outcomes[i] = same_or_conflict(digest, m);
    }
    Ok(outcomes)
}

/// The trace context the outputs caused by these inbox arrivals carry (the
/// hub's span in each one's trace, and its `tracestate`), for those that
/// have one.
pub async fn onward_traces(
    tx: Tx<'_>,
    arrivals: &[i64],
) -> sqlx::Result<HashMap<i64, TraceContext>> {
    if arrivals.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT arrival, onward_traceparent, tracestate FROM inbox
         WHERE arrival = ANY($1) AND onward_traceparent IS NOT NULL",
    )
    .bind(arrivals)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(arrival, traceparent, tracestate)| {
            let traceparent = TraceParent::parse(&traceparent)?;
            Some((
                arrival,
                TraceContext {
                    traceparent,
                    tracestate,
                },
            ))
        })
        .collect())
}

fn same_or_conflict(digest: &str, m: &Inbound) -> InboxOutcome {
    if digest == m.data_digest {
        InboxOutcome::Duplicate
    } else {
        InboxOutcome::Conflict
    }
}

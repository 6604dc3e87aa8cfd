//! RabbitMQ: the hub's topology and publishing with confirms (connections
//! are the runtime's).

use crate::settings::AmqpSettings;
pub use dynzero_runtime::amqp::{
    CLOSE_TIMEOUT, close, close_connection, confirm_channel, connect, declare_quorum_queue,
};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use tracing::warn;

/// Declare every exchange of the contract's section 1 and the hub's queue,
/// idempotently (the rejected queue: [`declare_rejected_queue`]).
pub async fn declare_topology(channel: &Channel, s: &AmqpSettings) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for name in [
        &s.inbound_exchange,
        &s.households_exchange,
        &s.alerts_exchange,
    ] {
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .exchange_declare(
            s.rejected_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut quorum = FieldTable::default();
    // The broker's last resort, should the hub itself fail to reject a poison message.
    quorum.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(s.broker_delivery_limit as i32),
    );
    quorum.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(s.rejected_exchange.as_str().into()),
    );
    quorum.insert(
        "x-dead-letter-strategy".into(),
        AMQPValue::LongString("at-least-once".into()),
    );
    quorum.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    declare_quorum_queue(channel, &s.queue, quorum).await?;
    channel
        .queue_bind(
            s.queue.as_str().into(),
            s.inbound_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declare the durable queue `rejected_queue` on the rejected exchange, as a
/// quorum queue: a classic queue lives on one node, and while that node is
/// down declaring it fails, which stopped the hub on a cluster that had lost
/// a node (tests/failover.rs found it). A queue an earlier version declared
/// classic is kept as it is, with a warning (docs/operations.md, Upgrading).
/// Its own channels, so the broker closing one on a mismatch costs nothing.
pub async fn declare_rejected_queue(
    connection: &Connection,
    s: &AmqpSettings,
) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let channel = match declare_quorum_queue(&channel, &s.rejected_queue, FieldTable::default())
        .await
    {
        Ok(()) => channel,
        Err(e) if is_precondition_failed(&e) => {
            warn!(
                queue = %s.rejected_queue,
                "the rejected queue exists as a classic queue: it takes nothing while its node is down; \
                 move it to a quorum queue (docs/operations.md, Upgrading)"
            );
            connection.create_channel().await?
        }
        Err(e) => return Err(e),
    };
    channel
        .queue_bind(
            s.rejected_queue.as_str().into(),
            s.rejected_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

fn is_precondition_failed(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        lapin::ErrorKind::ProtocolError(amqp) if matches!(
            amqp.kind(),
            lapin::protocol::AMQPErrorKind::Soft(lapin::protocol::AMQPSoftError::PRECONDITIONFAILED)
        )
    )
}

/// Why a publish did not make it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
}

/// Publish and wait for the broker's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            Default::default(),
            body,
            properties,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
    }
}

/// Properties of everything the hub publishes; the output's `traceparent`
/// attribute is also the header `traceparent` (for consumers that read
/// headers only, as the CloudEvents AMQP binding maps extensions).
pub fn output_properties(
    message_id: &str,
    event_type: Option<&str>,
    traceparent: Option<&str>,
) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_content_type(ShortString::from(dynzero_contracts::outbound::CONTENT_TYPE))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message_id))
        .with_app_id(ShortString::from("dynzero"));
    if let Some(t) = event_type {
        props = props.with_type(ShortString::from(t));
    }
    if let Some(traceparent) = traceparent {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from(TRACEPARENT),
            AMQPValue::LongString(LongString::from(traceparent)),
        );
        props = props.with_headers(headers);
    }
    props
}

/// The AMQP header that carries an output's trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A header as text, for tests and logs.
pub fn header_text(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        other => Some(format!("{other:?}")),
    }
}

/// `x-delivery-count`: how many times the broker delivered the message before.
pub fn delivery_count(props: &BasicProperties) -> u32 {
    let Some(headers) = props.headers().as_ref() else {
        return 0;
    };
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => (*n).max(0) as u32,
        Some(AMQPValue::LongInt(n)) => (*n).max(0) as u32,
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => (*n).max(0) as u32,
        Some(AMQPValue::ShortUInt(n)) => u32::from(*n),
        _ => 0,
    }
}

/// The most `x-dynzero-detail` carries, in bytes. A header frame larger than
/// the broker's frame limit (128 KiB by default) makes the broker close the
/// connection, so a detail echoing a huge field would turn one bad message
/// into a reconnect loop.
pub const MAX_DETAIL_BYTES: usize = 1024;

/// `detail` cut to at most [`MAX_DETAIL_BYTES`] on a character boundary, with
/// an ellipsis when cut.
pub fn bounded_detail(detail: &str) -> std::borrow::Cow<'_, str> {
    if detail.len() <= MAX_DETAIL_BYTES {
        return detail.into();
    }
    const ELLIPSIS: &str = "…";
    let mut end = MAX_DETAIL_BYTES - ELLIPSIS.len();
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &detail[..end]).into()
}

/// The original properties plus the rejection headers (the detail bounded by
/// [`MAX_DETAIL_BYTES`]).
pub fn rejected_properties(
    original: &BasicProperties,
    reason: &str,
    detail: &str,
) -> BasicProperties {
    let detail = bounded_detail(detail);
    let mut headers = original.headers().clone().unwrap_or_default();
    headers.insert(
        "x-dynzero-reason".into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    headers.insert(
        "x-dynzero-detail".into(),
        AMQPValue::LongString(LongString::from(detail.as_ref())),
    );
    original.clone().with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_detail_is_kept_whole() {
        assert_eq!(bounded_detail("/type: missing"), "/type: missing");
        let exact = "x".repeat(MAX_DETAIL_BYTES);
        assert_eq!(bounded_detail(&exact), exact.as_str());
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        // Three-byte characters: the cut must not land inside one.
        for prefix in ["", "a", "ab"] {
            let detail = format!("{prefix}{}", "王".repeat(200_000));
            let bounded = bounded_detail(&detail);
            assert!(bounded.len() <= MAX_DETAIL_BYTES, "{}", bounded.len());
            assert!(bounded.len() > MAX_DETAIL_BYTES - 8);
            assert!(bounded.ends_with('…'));
            assert!(detail.starts_with(bounded.trim_end_matches('…')));
        }
    }

    #[test]
    fn the_rejection_headers_carry_the_bounded_detail() {
        let props = rejected_properties(
            &BasicProperties::default(),
            "malformed",
            &"d".repeat(1 << 20),
        );
        assert_eq!(
            header_text(&props, "x-dynzero-reason").as_deref(),
            Some("malformed")
        );
        let detail = header_text(&props, "x-dynzero-detail").expect("a detail");
        assert!(detail.len() <= MAX_DETAIL_BYTES);
    }
}

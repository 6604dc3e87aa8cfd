//! RabbitMQ: the hub's topology and publishing with confirms (connections
//! are the runtime's).

use crate::settings::AmqpSettings;
pub use dynzero_runtime::amqp::{
    CLOSE_TIMEOUT, close, close_connection, confirm_channel, connect, declare_quorum_queue,
};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

/// Declare every exchange and queue of the contract's section 1, idempotently.
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
    channel
        .queue_declare(
            s.rejected_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            s.rejected_queue.as_str().into(),
            s.rejected_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
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

/// Properties of everything the hub publishes.
pub fn output_properties(message_id: &str, event_type: Option<&str>) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_content_type(ShortString::from(dynzero_contracts::outbound::CONTENT_TYPE))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message_id))
        .with_app_id(ShortString::from("dynzero"));
    if let Some(t) = event_type {
        props = props.with_type(ShortString::from(t));
    }
    props
}

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

/// The original properties plus the rejection headers.
pub fn rejected_properties(
    original: &BasicProperties,
    reason: &str,
    detail: &str,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    headers.insert(
        "x-dynzero-reason".into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    headers.insert(
        "x-dynzero-detail".into(),
        AMQPValue::LongString(LongString::from(detail)),
    );
    original.clone().with_headers(headers)
}

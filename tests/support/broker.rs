//! Talking to RabbitMQ from a test: declare what the test owns, publish with
//! broker confirms, and collect what the service under test published.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::time::{Instant, sleep};

use crate::env::{amqp_url, redact, unique_name};

/// How long [`drain`] pauses when the queue is empty: short at first, so a
/// message that is about to arrive is taken promptly.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(100);

/// A connection of the test's own, with one channel in publisher-confirm
/// mode (so [`publish`](Self::publish) returns only once the broker has the
/// message). Dropping it closes the connection, which deletes the capture
/// queues declared on it.
pub struct TestBroker {
    connection: Connection,
    channel: Channel,
}

impl TestBroker {
    /// Connects to [`amqp_url`] (`DYNZERO_TEST_AMQP_URL`, default the local
    /// broker as guest). Panics if the broker cannot be reached.
    pub async fn connect() -> TestBroker {
        Self::connect_to(&amqp_url()).await
    }

    /// Connects to `url`, e.g. [`amqp_url_via`](crate::amqp_url_via) a proxy.
    pub async fn connect_to(url: &str) -> TestBroker {
        let properties =
            ConnectionProperties::default().with_connection_name("dynzero-tests".into());
        let connection = Connection::connect(url, properties)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ at {}: {e}", redact(url)));
        let channel = connection
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("cannot open a channel: {e}"));
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot enable publisher confirms: {e}"));
        TestBroker {
            connection,
            channel,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The confirm-mode channel every helper here uses.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// See [`declare_test_exchange`].
    pub async fn declare_exchange(&self, prefix: &str, kind: ExchangeKind) -> String {
        declare_test_exchange(&self.channel, prefix, kind).await
    }

    /// See [`declare_capture_queue`].
    pub async fn capture(&self, exchange: &str, binding_key: &str) -> String {
        declare_capture_queue(&self.channel, exchange, binding_key).await
    }

    /// See [`publish`].
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) {
        publish(&self.channel, exchange, routing_key, payload, properties).await
    }

    /// See [`drain`].
    pub async fn drain(
        &self,
        queue: &str,
        until: impl Fn(&[Delivery]) -> bool,
        deadline: Duration,
    ) -> Vec<Delivery> {
        drain(&self.channel, queue, until, deadline).await
    }

    /// Closes the connection cleanly (dropping it does too, without waiting).
    pub async fn close(self) {
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

/// Declares a uniquely named, non-durable exchange (`t.<prefix>.<hex>`) for
/// one test. It is not auto-delete, because a service that binds and unbinds
/// its queues during the test would otherwise make it vanish; delete it with
/// [`delete_exchange`] at the end of the test (leftovers are harmless and
/// recognisable by the `t.` prefix).
pub async fn declare_test_exchange(channel: &Channel, prefix: &str, kind: ExchangeKind) -> String {
    let name = unique_name(prefix);
    channel
        .exchange_declare(
            name.as_str().into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot declare exchange {name}: {e}"));
    name
}

/// Best effort; a test that failed before reaching it leaves a harmless
/// `t.*` exchange behind.
pub async fn delete_exchange(channel: &Channel, exchange: &str) {
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}

/// Declares a uniquely named queue (`t.capture.<hex>`) bound to `exchange`
/// with `binding_key`, and returns its name. The exchange must exist already
/// (the caller or the service under test declares it); otherwise the broker
/// closes the channel and this panics.
///
/// The queue is exclusive, so it disappears with the channel's connection.
/// It is deliberately not auto-delete: RabbitMQ deletes an auto-delete queue
/// when its last consumer goes, which would break a second [`drain`].
pub async fn declare_capture_queue(channel: &Channel, exchange: &str, binding_key: &str) -> String {
    let name = unique_name("capture");
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot declare capture queue {name}: {e}"));
    channel
        .queue_bind(
            name.as_str().into(),
            exchange.into(),
            binding_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| {
            panic!("cannot bind {name} to exchange {exchange:?} with {binding_key:?} (does the exchange exist?): {e}")
        });
    name
}

/// Publishes as `mandatory` and waits for the broker's confirm when the
/// channel is in confirm mode (a [`TestBroker`]'s channel is). Panics if the
/// broker refuses the message or cannot route it to any queue, which in a
/// test almost always means a wrong exchange name or routing key.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            properties,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot publish to {exchange:?} with {routing_key:?}: {e}"))
        .await
        .unwrap_or_else(|e| {
            panic!("no confirm for publish to {exchange:?} with {routing_key:?}: {e}")
        });
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => {}
        Confirmation::Ack(Some(returned)) => panic!(
            "message to {exchange:?} with {routing_key:?} was unroutable: {} {}",
            returned.reply_code, returned.reply_text
        ),
        Confirmation::Nack(_) => {
            panic!("broker refused (nacked) message to {exchange:?} with {routing_key:?}")
        }
    }
}

/// Takes messages off `queue`, acking each, until `until` holds for the
/// messages taken so far or `deadline` has passed; returns them in order.
///
/// Reaching the deadline is not a failure here: the caller asserts on what
/// came back, so `drain(ch, q, |_| false, short)` checks that nothing
/// arrives. Messages beyond the first point at which `until` holds stay in
/// the queue for the next call. Polls with `basic.get` (10 ms, then up to
/// 100 ms apart while the queue is empty) rather than consuming, so nothing
/// is prefetched and left unacked.
pub async fn drain(
    channel: &Channel,
    queue: &str,
    until: impl Fn(&[Delivery]) -> bool,
    deadline: Duration,
) -> Vec<Delivery> {
    let give_up_at = Instant::now() + deadline;
    let mut taken = Vec::new();
    let mut pause = FIRST_PAUSE;
    while !until(&taken) {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot get from queue {queue}: {e}"));
        match got {
            Some(message) => {
                let delivery = message.delivery;
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("cannot ack a message from {queue}: {e}"));
                taken.push(delivery);
                pause = FIRST_PAUSE;
            }
            None => {
                let now = Instant::now();
                if now >= give_up_at {
                    break;
                }
                sleep(pause.min(give_up_at - now)).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
    taken
}

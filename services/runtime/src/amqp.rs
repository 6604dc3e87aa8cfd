//! RabbitMQ connections: failover between the configured brokers, TLS with
//! the configured authority, clean closes that cannot hang, and the session
//! a consumer opens.

use crate::backoff::Reconnect;
use crate::config::ConfigError;
use crate::fault::{self, Fault};
use crate::settings::{AmqpSettings, redact};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// How long a clean close may take. On a connection that has just died, lapin
/// can wait forever for a `close-ok` that never comes, and a reconnect loop
/// stuck there never reconnects.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Close the connection cleanly if the broker answers within [`CLOSE_TIMEOUT`];
/// the connection is dropped either way.
pub async fn close_connection(connection: &Connection, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, reason.into())).await;
}

/// Close a channel, then its connection, each within [`CLOSE_TIMEOUT`].
pub async fn close(connection: &Connection, channel: &Channel) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "OK".into())).await;
    close_connection(connection, "OK").await;
}

/// The TLS settings for `amqps://` URLs: the configured authority's PEM
/// added to the bundled public roots (webpki), or those roots alone. A file
/// that cannot be read or holds no certificate is a configuration error.
fn tls(settings: &AmqpSettings) -> Result<OwnedTLSConfig, ConfigError> {
    if settings.ca_file.as_os_str().is_empty() {
        return Ok(OwnedTLSConfig::default());
    }
    let file = settings.ca_file.display();
    let pem = std::fs::read_to_string(&settings.ca_file)
        .map_err(|e| ConfigError(format!("amqp.ca_file {file}: cannot be read: {e}")))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError(format!(
            "amqp.ca_file {file}: holds no PEM certificate"
        )));
    }
    Ok(OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pem),
    })
}

/// A connection to the first broker of `amqp.urls` that accepts one; the
/// last failure if none does.
pub async fn connect(settings: &AmqpSettings) -> lapin::Result<Connection> {
    let tls = tls(settings).map_err(|e| std::io::Error::other(e.0))?;
    let mut last = None;
    for url in &settings.urls {
        let attempt = Connection::connect_with_config(
            url,
            ConnectionProperties::default(),
            tls.clone(),
            lapin::runtime::default_runtime()?,
        )
        .await;
        match attempt {
            Ok(connection) => return Ok(connection),
            // A certificate that does not verify is not a broker away:
            // trying the next one would only hide it.
            Err(e) if fault::broker(&e) == Fault::Configuration => return Err(e),
            Err(e) => {
                if settings.urls.len() > 1 {
                    warn!(error = %e, url = %redact(url), "broker unavailable; trying the next");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("amqp.urls names no broker").into()))
}

/// Connect once at start, waiting out an outage but not a configuration
/// fault (an unreadable `amqp.ca_file`, TLS, certificates), which is
/// returned as a [`ConfigError`].
pub async fn connect_at_start(
    settings: &AmqpSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<Connection>> {
    tls(settings)?;
    let mut reconnect = Reconnect::new();
    loop {
        match connect(settings).await {
            Ok(connection) => return Ok(Some(connection)),
            Err(e) if fault::broker(&e) == Fault::Configuration => {
                let urls: Vec<String> = settings.urls.iter().map(|u| redact(u)).collect();
                return Err(ConfigError(format!(
                    "amqp {}: TLS or certificate failure: {e} (check amqp.urls and amqp.ca_file)",
                    urls.join(",")
                ))
                .into());
            }
            Err(e) => {
                warn!(error = %e, "broker unavailable at start; waiting");
                if !reconnect.wait(shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// A channel in confirm mode.
pub async fn confirm_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Declare a durable quorum queue with these further arguments.
pub async fn declare_quorum_queue(
    channel: &Channel,
    name: &str,
    mut arguments: FieldTable,
) -> lapin::Result<()> {
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    Ok(())
}

/// A consuming session: its connection, the consuming channel and its consumer.
pub struct Session {
    pub connection: Connection,
    pub channel: Channel,
    pub consumer: Consumer,
}

/// Connect, let `declare` declare the topology on a fresh channel, then
/// consume `queue` with `prefetch` deliveries in flight.
pub async fn consume<F, Fut>(
    settings: &AmqpSettings,
    queue: &str,
    prefetch: u16,
    declare: F,
) -> lapin::Result<Session>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = lapin::Result<Channel>>,
{
    let connection = connect(settings).await?;
    let channel = declare(connection.create_channel().await?).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Session {
        connection,
        channel,
        consumer,
    })
}

/// Open a session with `open`, or, if the broker is away, wait the next
/// step of `reconnect`. `None`: no session this time (the caller loops,
/// and stops if `shutdown` turned true).
pub async fn open_or_wait<T>(
    open: impl Future<Output = lapin::Result<T>>,
    reconnect: &mut Reconnect,
    shutdown: &mut watch::Receiver<bool>,
    who: &str,
) -> Option<T> {
    let opened = tokio::select! {
        opened = open => opened,
        _ = shutdown.changed() => return None,
    };
    match opened {
        Ok(session) => {
            reconnect.connected();
            Some(session)
        }
        Err(e) => {
            let wait = reconnect.next_wait();
            warn!(error = %e, ?wait, who, "broker unavailable; retrying");
            crate::backoff::sleep_unless_stopped(wait, shutdown).await;
            None
        }
    }
}

/// What a consumer's next wait brought.
pub enum Next {
    /// The deliveries that had arrived (the first waited for, at most `max`);
    /// `broken`: the consumer failed right after them, reconnect once they
    /// are settled.
    Batch {
        deliveries: Vec<Delivery>,
        broken: bool,
    },
    /// `shutdown` turned true.
    Stopped,
    /// The consumer failed or the broker cancelled it: reconnect.
    Lost,
}

/// Wait for the next delivery, then take whatever else has already arrived,
/// so one commit serves them all.
pub async fn next_batch(
    consumer: &mut Consumer,
    max: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Next {
    // A stop already seen (by a caller's other wait on this receiver) is
    // not announced again by `changed`.
    if *shutdown.borrow() {
        return Next::Stopped;
    }
    let first = loop {
        tokio::select! {
            next = consumer.next() => break next,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Next::Stopped;
                }
            }
        }
    };
    let first = match first {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => {
            warn!(error = %e, "consumer failed; reconnecting");
            return Next::Lost;
        }
        None => {
            warn!("consumer cancelled by the broker; reconnecting");
            return Next::Lost;
        }
    };
    let mut deliveries = vec![first];
    let broken = arrived(consumer, &mut deliveries, max);
    Next::Batch { deliveries, broken }
}

/// Add to `deliveries` what has already arrived, without waiting, up to
/// `max` in all; true when the consumer failed right after them (reconnect
/// once they are settled).
pub fn arrived(consumer: &mut Consumer, deliveries: &mut Vec<Delivery>, max: usize) -> bool {
    while deliveries.len() < max {
        match consumer.next().now_or_never() {
            Some(Some(Ok(delivery))) => deliveries.push(delivery),
            Some(Some(Err(_)) | None) => return true,
            None => break,
        }
    }
    false
}

//! Consumes `dynzero.reconciler`: each delivery is applied in one transaction
//! and acknowledged only after that commits (or after its rejection is
//! confirmed on `dynzero.rejected`).

use crate::amqp::{self, PublishError};
use crate::hub::{Hub, Outcome, ProcessError, Processed};
use dynzero_contracts::rejection::{Reason, Rejection};
use dynzero_runtime::amqp::{Next, Session, consume, next_batch, open_or_wait};
use dynzero_runtime::backoff::{self, Reconnect};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::{Channel, Connection};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// How long acking or rejecting one delivery may take before the connection
/// is taken for dead.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What became of one delivery.
enum Handled {
    Acked,
    /// The broker connection failed under it: it will come again.
    BrokerLost,
    /// Shutdown came while a dependency was down: left unacknowledged for redelivery.
    Abandoned,
}

/// Consume until `shutdown` turns true, reconnecting to the broker as often as
/// it takes. `processed` is notified after each commit, to wake the relay.
pub async fn run(hub: Arc<Hub>, processed: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let settings = &hub.settings.amqp;
    let mut reconnect = Reconnect::new();
    while !*shutdown.borrow() {
        let session = async {
            let session = consume(
                settings,
                &settings.queue,
                settings.prefetch,
                |c| async move { amqp::declare_topology(&c, settings).await.map(|()| c) },
            )
            .await?;
            let rejections = amqp::confirm_channel(&session.connection).await?;
            Ok::<_, lapin::Error>((session, rejections))
        };
        let Some((session, rejections)) =
            open_or_wait(session, &mut reconnect, &mut shutdown, "consumer").await
        else {
            continue;
        };
        let Session {
            connection,
            channel,
            mut consumer,
        } = session;
        info!(queue = %settings.queue, "consuming");
        let max = usize::from(settings.prefetch);
        loop {
            let (batch, broken) = match next_batch(&mut consumer, max, &mut shutdown).await {
                Next::Batch { deliveries, broken } => (deliveries, broken),
                Next::Stopped => {
                    close(&connection, &channel).await;
                    return;
                }
                Next::Lost => break,
            };
            match handle_batch(&hub, &rejections, &batch, &mut shutdown).await {
                Handled::Acked => processed.notify_one(),
                Handled::BrokerLost => break,
                Handled::Abandoned => {
                    close(&connection, &channel).await;
                    return;
                }
            }
            if broken {
                break;
            }
        }
        amqp::close_connection(&connection, "reconnecting").await;
    }
}

/// Closing the channel cancels the consumer; what was prefetched but not
/// processed goes back to the queue unacknowledged. (An explicit
/// basic.cancel first made lapin report a protocol error on the cancel-ok.)
async fn close(connection: &Connection, channel: &Channel) {
    amqp::close(connection, channel).await;
    info!("consumer stopped");
}

async fn handle_batch(
    hub: &Arc<Hub>,
    rejections: &Channel,
    batch: &[Delivery],
    shutdown: &mut watch::Receiver<bool>,
) -> Handled {
    let mut waits = backoff::backoff();
    loop {
        // A panic in processing is a defect like any other: caught, and the
        // batch retried one message at a time so only the culprit suffers.
        let outcome = {
            let hub = hub.clone();
            let bodies: Vec<Vec<u8>> = batch.iter().map(|d| d.data.clone()).collect();
            tokio::spawn(async move {
                let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
                hub.process_batch(&refs).await
            })
            .await
        };
        let outcomes = match outcome {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(ProcessError::Transient(e))) => {
                hub.metrics.transient();
                let wait = waits.next().unwrap_or_default();
                warn!(error = %e, ?wait, "a dependency is down; the messages wait");
                if !backoff::sleep_unless_stopped(wait, shutdown).await {
                    return Handled::Abandoned;
                }
                continue;
            }
            Ok(Err(ProcessError::Failed(e))) if batch.len() == 1 => vec![Outcome::Failed(e)],
            Err(panic) if batch.len() == 1 => {
                vec![Outcome::Failed(anyhow::anyhow!(
                    "processing panicked: {panic}"
                ))]
            }
            Ok(Err(ProcessError::Failed(_))) | Err(_) => {
                for delivery in batch {
                    match Box::pin(handle_batch(
                        hub,
                        rejections,
                        std::slice::from_ref(delivery),
                        shutdown,
                    ))
                    .await
                    {
                        Handled::Acked => {}
                        other => return other,
                    }
                }
                return Handled::Acked;
            }
        };
        for (delivery, outcome) in batch.iter().zip(outcomes) {
            // On a connection that just died, an ack or a confirm can wait
            // forever: give up and reconnect; the broker redelivers, the inbox
            // recognises what was committed.
            match tokio::time::timeout(SETTLE_TIMEOUT, settle(hub, rejections, delivery, outcome))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "broker lost while settling a delivery");
                    return Handled::BrokerLost;
                }
                Err(_) => {
                    warn!(timeout = ?SETTLE_TIMEOUT, "settling a delivery got no answer; reconnecting");
                    return Handled::BrokerLost;
                }
            }
        }
        return Handled::Acked;
    }
}

/// Ack, reject or hand back one delivery after its batch committed.
async fn settle(
    hub: &Hub,
    rejections: &Channel,
    delivery: &Delivery,
    outcome: Outcome,
) -> Result<(), PublishError> {
    match outcome {
        Outcome::Processed(Processed::Applied) => {
            hub.metrics.processed();
            ack(delivery).await
        }
        Outcome::Processed(Processed::Duplicate) => {
            hub.metrics.duplicate();
            ack(delivery).await
        }
        Outcome::Processed(Processed::Rejected(rejection)) => {
            reject(hub, rejections, delivery, &rejection).await
        }
        Outcome::Failed(e) => {
            let attempts = amqp::delivery_count(&delivery.properties) + 1;
            if attempts >= hub.settings.amqp.poison_after {
                warn!(error = %e, attempts, "processing keeps failing; rejecting as poison");
                let rejection = Rejection::new(
                    Reason::Poison,
                    format!("processing failed {attempts} times; last error: {e:#}"),
                );
                reject(hub, rejections, delivery, &rejection).await
            } else {
                warn!(error = %e, attempts, "processing failed; the broker will redeliver");
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
                Ok(())
            }
        }
    }
}

async fn ack(delivery: &Delivery) -> Result<(), PublishError> {
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Publish the original body and properties, plus the reason, to the
/// rejected exchange; ack the original only once the broker confirmed that.
async fn reject(
    hub: &Hub,
    rejections: &Channel,
    delivery: &Delivery,
    rejection: &Rejection,
) -> Result<(), PublishError> {
    let properties = amqp::rejected_properties(
        &delivery.properties,
        rejection.reason.as_str(),
        &rejection.detail,
    );
    amqp::publish_confirmed(
        rejections,
        &hub.settings.amqp.rejected_exchange,
        delivery.routing_key.as_str(),
        &delivery.data,
        properties,
    )
    .await?;
    hub.metrics.rejected(rejection.reason);
    warn!(reason = %rejection.reason, detail = %rejection.detail, "message rejected");
    // The audit record is a convenience; the message itself is safe on the rejected queue.
    if let Err(e) =
        sqlx::query("INSERT INTO rejection (reason, detail, routing_key) VALUES ($1, $2, $3)")
            .bind(rejection.reason.as_str())
            .bind(&rejection.detail)
            .bind(delivery.routing_key.as_str())
            .execute(&hub.pool)
            .await
    {
        warn!(error = %e, "could not record the rejection");
    }
    ack(delivery).await
}

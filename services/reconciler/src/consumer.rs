//! Consumes `dynzero.reconciler`: each delivery is applied in one transaction
//! and acknowledged only after that commits (or after its rejection is
//! confirmed on `dynzero.rejected`).
//!
//! Once `amqp.pipeline_from` messages wait while a batch is in flight, the
//! next batch goes beside it (up to `amqp.pipeline` in flight); a batch
//! taken beside others takes only the messages that name no one a batch in
//! flight names ([`crate::schedule`]), and acks go only as far as every
//! delivery before them has committed ([`crate::ledger`]).

use crate::amqp::{self, PublishError};
use crate::hub::{Fate, Hub, ProcessError};
use crate::ledger::Ledger;
use crate::pipeline::Depth;
use crate::schedule::Schedule;
use crate::store;
use crate::store::locks::MOST_PERSON_LOCKS;
use chrono::{DateTime, Utc};
use dynzero_contracts::named::named;
use dynzero_contracts::rejection::{Reason, Rejection};
use dynzero_runtime::amqp::{Next, Session, arrived, consume, next_batch, open_or_wait};
use dynzero_runtime::backoff::{self, Reconnect};
use dynzero_runtime::fault::{self, Fault};
use lapin::Acker;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::{Channel, Connection, Consumer};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long acking or rejecting one delivery may take before the connection
/// is taken for dead.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often a consumer looks at what has arrived while a batch is in
/// flight beside which another may go (`amqp.pipeline_from`).
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

/// The most people one batch names (as its messages say: a registration's
/// earlier members come on top), so that its transaction locks each person
/// and not whole regions, which would make every other batch wait for it
/// (`store::locks`).
const MOST_PEOPLE: usize = MOST_PERSON_LOCKS - MOST_PERSON_LOCKS / 8;

/// What became of one delivery.
enum Handled {
    Acked,
    /// The broker connection failed under it: it will come again.
    BrokerLost,
    /// Shutdown came while a dependency was down: left unacknowledged for redelivery.
    Abandoned,
}

/// A batch being applied while the consumer goes on: its deliveries, and
/// the task that commits them and says what became of each.
struct Flight {
    batch: Vec<Delivery>,
    arrived: Instant,
    /// `None`: shutdown came while a dependency was down.
    fates: JoinHandle<Option<Vec<Fate>>>,
}

impl Flight {
    fn start(hub: &Arc<Hub>, batch: Vec<Delivery>, shutdown: &watch::Receiver<bool>) -> Self {
        let arrived = Instant::now();
        hub.metrics.batch(batch.len());
        for delivery in &batch {
            if delivery.redelivered || amqp::delivery_count(&delivery.properties) > 0 {
                hub.metrics.redelivered();
            }
        }
        // One copy of the bodies, shared by every attempt to apply them (the
        // deliveries keep theirs for settling).
        let bodies: Arc<[Vec<u8>]> = batch.iter().map(|d| d.data.clone()).collect();
        let fates = tokio::spawn(apply(hub.clone(), bodies, shutdown.clone()));
        Self {
            batch,
            arrived,
            fates,
        }
    }

    /// Settle its deliveries, once `joined` (its task's end) says what
    /// became of them.
    async fn land(
        self,
        joined: Result<Option<Vec<Fate>>, JoinError>,
        hub: &Hub,
        rejections: &Channel,
        ledger: &mut Ledger<Acker>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Handled {
        let fates = match joined {
            Ok(Some(fates)) => fates,
            Ok(None) => return Handled::Abandoned,
            // `apply` catches the panics of processing; this one is its own.
            Err(e) => {
                warn!(error = %e, "a batch's task ended without an answer; the broker redelivers it");
                return Handled::BrokerLost;
            }
        };
        settle_batch(
            hub,
            rejections,
            &self.batch,
            fates,
            self.arrived,
            ledger,
            shutdown,
        )
        .await
    }
}

/// The batches of one channel: those in flight, oldest first, the messages
/// waiting for a batch, and what acks the committed ones.
struct Flights {
    in_flight: VecDeque<Flight>,
    schedule: Schedule<Delivery>,
    ledger: Ledger<Acker>,
}

impl Flights {
    /// Deliveries handed out: they wait for a batch.
    fn arrive(&mut self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.ledger
                .open(delivery.delivery_tag, delivery.acker.clone());
            let names = named(&delivery.data);
            self.schedule.arrive(delivery, &names);
        }
    }

    /// Start the next batch, if any waiting message can go; true if one did.
    fn start_next(&mut self, hub: &Arc<Hub>, max: usize, shutdown: &watch::Receiver<bool>) -> bool {
        let batch = self.schedule.take(max, MOST_PEOPLE);
        hub.metrics.held_back(self.schedule.held_back());
        if batch.is_empty() {
            return false;
        }
        self.in_flight
            .push_back(Flight::start(hub, batch, shutdown));
        true
    }

    /// Settle the oldest batch, once `joined` says what became of it.
    async fn land_oldest(
        &mut self,
        joined: Result<Option<Vec<Fate>>, JoinError>,
        hub: &Hub,
        rejections: &Channel,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Handled {
        let oldest = self
            .in_flight
            .pop_front()
            .expect("a batch in flight landed");
        self.schedule.landed();
        oldest
            .land(joined, hub, rejections, &mut self.ledger, shutdown)
            .await
    }
}

/// What the consumer waited for.
enum Event {
    /// A batch taken from the queue (or why none was).
    Taken(Next),
    /// The oldest batch in flight ended.
    Landed(Result<Option<Vec<Fate>>, JoinError>),
}

/// Consume until `shutdown` turns true, reconnecting to the broker as often as
/// it takes. `processed` is notified after each commit, to wake the relay.
///
/// Once `amqp.pipeline_from` messages wait while a batch is in flight (a
/// backlog, or a rate one batch at a time cannot keep up with), up to
/// `amqp.pipeline` batches are applied at once, each in its own transaction,
/// so the database commits one while the hub reads and plans the next.
/// Deliveries are settled in the order they arrived, a batch only after
/// every batch before it: an ack (`multiple`) never covers a delivery whose
/// transaction has not committed.
pub async fn run(hub: Arc<Hub>, processed: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let settings = &hub.settings.amqp;
    let mut reconnect = Reconnect::new();
    // Kept across connections for its hints of who lives where.
    let mut schedule: Schedule<Delivery> = Schedule::default();
    while !*shutdown.borrow() {
        let session = async {
            let session = consume(
                settings,
                &settings.queue,
                settings.prefetch,
                |c| async move { amqp::declare_topology(&c, settings).await.map(|()| c) },
            )
            .await?;
            amqp::declare_rejected_queue(&session.connection, settings).await?;
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
        let max = usize::from(settings.batch.min(settings.prefetch));
        // Everything the broker has handed out may wait in the schedule:
        // messages held back behind a batch in flight must not keep out
        // those that could go beside it.
        let most_waiting = usize::from(settings.prefetch).max(max);
        let depth = Depth::new(settings.pipeline, settings.pipeline_from, max);
        let mut flights = Flights {
            in_flight: VecDeque::new(),
            schedule: std::mem::take(&mut schedule),
            ledger: Ledger::default(),
        };
        let mut broken = false;
        // Every waiting message is held back behind a batch in flight, and
        // nothing has arrived or landed since: trying again is no use.
        let mut held = false;
        let ended = loop {
            // After each arrival and each landing: start what may go.
            while !broken
                && !held
                && depth.may_start(flights.in_flight.len(), flights.schedule.waiting())
            {
                broken = take_arrived(&mut consumer, &mut flights, most_waiting);
                if broken {
                    break;
                }
                held = !flights.start_next(&hub, max, &shutdown);
            }
            let room = !broken && flights.schedule.waiting() < most_waiting;
            // While a batch is in flight and another may go beside it, what
            // has arrived is looked at every `LOOK_EVERY`, not at each
            // delivery: waking for every delivery took the cores from the
            // batch in flight (p50 at 1,000 msg/s 2–5 ms higher).
            let look = room && flights.in_flight.len() < depth.most;
            let event = match flights.in_flight.front_mut() {
                None if room => {
                    let wanted = most_waiting - flights.schedule.waiting();
                    Event::Taken(next_batch(&mut consumer, wanted, &mut shutdown).await)
                }
                // The channel broke and everything taken has landed: reconnect.
                None => break Handled::BrokerLost,
                Some(_) if look && *shutdown.borrow() => Event::Taken(Next::Stopped),
                Some(oldest) if look => tokio::select! {
                    biased;
                    joined = &mut oldest.fates => Event::Landed(joined),
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            Event::Taken(Next::Stopped)
                        } else {
                            continue;
                        }
                    }
                    () = tokio::time::sleep(LOOK_EVERY) => {
                        let waiting = flights.schedule.waiting();
                        broken = take_arrived(&mut consumer, &mut flights, most_waiting);
                        held &= flights.schedule.waiting() == waiting;
                        continue;
                    }
                },
                Some(oldest) => Event::Landed((&mut oldest.fates).await),
            };
            match event {
                Event::Taken(Next::Batch {
                    deliveries,
                    broken: channel_broke,
                }) => {
                    broken = channel_broke;
                    held = false;
                    flights.arrive(deliveries);
                }
                Event::Taken(Next::Stopped) => {
                    // What is in flight lands first, then what waited for
                    // it, so a clean stop leaves nothing committed unacked.
                    break stop(
                        &mut flights,
                        &hub,
                        &rejections,
                        &processed,
                        max,
                        &mut shutdown,
                    )
                    .await;
                }
                // What is in flight commits or not; unacked, it comes again
                // and the inbox knows what committed.
                Event::Taken(Next::Lost) => break Handled::BrokerLost,
                // Messages held back behind it may go now.
                Event::Landed(joined) => {
                    held = false;
                    match flights
                        .land_oldest(joined, &hub, &rejections, &mut shutdown)
                        .await
                    {
                        Handled::Acked => processed.notify_one(),
                        other => break other,
                    }
                }
            }
        };
        // What waited is handed out again on the next connection.
        flights.schedule.reset();
        schedule = flights.schedule;
        match ended {
            Handled::Abandoned => {
                close(&connection, &channel).await;
                return;
            }
            Handled::BrokerLost | Handled::Acked => {}
        }
        amqp::close_connection(&connection, "reconnecting").await;
    }
}

/// Add what has already arrived to the waiting messages, without waiting,
/// up to `most_waiting` in all; true when the consumer failed right after it.
fn take_arrived(consumer: &mut Consumer, flights: &mut Flights, most_waiting: usize) -> bool {
    let mut deliveries = Vec::new();
    let room = most_waiting.saturating_sub(flights.schedule.waiting());
    let broken = arrived(consumer, &mut deliveries, room);
    flights.arrive(deliveries);
    broken
}

/// Shutdown: land every batch in flight, then apply what waited for them;
/// `Abandoned` (the connection is closed, what is left comes again).
async fn stop(
    flights: &mut Flights,
    hub: &Arc<Hub>,
    rejections: &Channel,
    processed: &Notify,
    max: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Handled {
    loop {
        if flights.in_flight.is_empty() && !flights.start_next(hub, max, shutdown) {
            return Handled::Abandoned;
        }
        let oldest = flights
            .in_flight
            .front_mut()
            .expect("a batch in flight, or one just started");
        let joined = (&mut oldest.fates).await;
        match flights.land_oldest(joined, hub, rejections, shutdown).await {
            Handled::Acked => processed.notify_one(),
            _ => return Handled::Abandoned,
        }
    }
}

/// Closing the channel cancels the consumer; what was prefetched but not
/// processed goes back to the queue unacknowledged. (An explicit
/// basic.cancel first made lapin report a protocol error on the cancel-ok.)
async fn close(connection: &Connection, channel: &Channel) {
    amqp::close(connection, channel).await;
    info!("consumer stopped");
}

/// Apply one batch's bodies, in one transaction where it can: one fate per
/// body, or `None` when shutdown came while a dependency was down. A
/// dependency that is down is waited for; a batch that fails as a whole (or
/// panics) is applied again one message at a time, so only the culprit
/// suffers.
async fn apply(
    hub: Arc<Hub>,
    bodies: Arc<[Vec<u8>]>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<Vec<Fate>> {
    let mut waits = backoff::backoff();
    loop {
        // A panic in processing is a defect like any other: caught here.
        let outcome = {
            let hub = hub.clone();
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move {
                let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
                hub.process_batch(&refs).await
            })
            .await
        };
        return Some(match outcome {
            Ok(Ok(fates)) => fates,
            Ok(Err(ProcessError::Transient(e))) => {
                hub.metrics.transient();
                let wait = waits.next().unwrap_or_default();
                warn!(error = %e, ?wait, "a dependency is down; the messages wait");
                if !backoff::sleep_unless_stopped(wait, &mut shutdown).await {
                    return None;
                }
                continue;
            }
            Ok(Err(ProcessError::Failed(e))) if bodies.len() == 1 => vec![Fate::Failed(e)],
            Err(panic) if bodies.len() == 1 => {
                vec![Fate::Failed(anyhow::anyhow!(
                    "processing panicked: {panic}"
                ))]
            }
            Ok(Err(ProcessError::Failed(_))) | Err(_) => {
                let mut fates = Vec::with_capacity(bodies.len());
                for body in bodies.iter() {
                    let one = Box::pin(apply(
                        hub.clone(),
                        Arc::from([body.clone()]),
                        shutdown.clone(),
                    ));
                    fates.extend(one.await?);
                }
                fates
            }
        });
    }
}

/// Settle a committed batch: rejections and hand-backs one by one as they
/// come, the rest with one `multiple` ack as far as the `ledger` allows
/// (up to the last committed delivery before the first still open).
async fn settle_batch(
    hub: &Hub,
    rejections: &Channel,
    batch: &[Delivery],
    fates: Vec<Fate>,
    arrived: Instant,
    ledger: &mut Ledger<Acker>,
    shutdown: &mut watch::Receiver<bool>,
) -> Handled {
    for (delivery, outcome) in batch.iter().zip(fates) {
        // On a connection that just died, an ack or a confirm can wait
        // forever: give up and reconnect; the broker redelivers, the inbox
        // recognises what was committed.
        match tokio::time::timeout(
            SETTLE_TIMEOUT,
            settle(hub, rejections, delivery, outcome, arrived, shutdown),
        )
        .await
        {
            Ok(Ok(Settled::Ackable)) => ledger.committed(delivery.delivery_tag),
            Ok(Ok(Settled::Done)) => ledger.settled(delivery.delivery_tag),
            Ok(Err(Unsettled::Broker(e))) => {
                warn!(error = %e, "broker lost while settling a delivery");
                return Handled::BrokerLost;
            }
            Ok(Err(Unsettled::Stopped)) => return Handled::Abandoned,
            Err(_) => {
                warn!(
                    timeout = ?SETTLE_TIMEOUT,
                    "settling a delivery took too long; reconnecting, the broker redelivers it"
                );
                return Handled::BrokerLost;
            }
        }
    }
    if let Some(last) = ledger.advance() {
        match tokio::time::timeout(SETTLE_TIMEOUT, ack_up_to(&last)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "broker lost while acking a batch");
                return Handled::BrokerLost;
            }
            Err(_) => {
                warn!(timeout = ?SETTLE_TIMEOUT, "acking a batch took too long; reconnecting");
                return Handled::BrokerLost;
            }
        }
    }
    Handled::Acked
}

/// What settling one delivery left to do.
enum Settled {
    /// Committed (applied or a duplicate): to be acked with the batch.
    Ackable,
    /// Rejected (and acked) or handed back already.
    Done,
}

/// Ack `last` and every delivery before it on its channel not yet settled.
async fn ack_up_to(last: &Acker) -> Result<(), PublishError> {
    last.ack(BasicAckOptions { multiple: true }).await?;
    Ok(())
}

/// Why a delivery was left unacknowledged: the broker redelivers it.
#[derive(Debug, thiserror::Error)]
enum Unsettled {
    #[error(transparent)]
    Broker(#[from] PublishError),
    #[error("shutdown came while the database was away")]
    Stopped,
}

/// Ack, reject or hand back one delivery after its batch committed.
async fn settle(
    hub: &Hub,
    rejections: &Channel,
    delivery: &Delivery,
    outcome: Fate,
    arrived: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Settled, Unsettled> {
    match outcome {
        Fate::Applied => {
            hub.metrics.processed();
            let since_event_time = event_time(&delivery.data)
                .map(|time| (hub.clock.now() - time).to_std().unwrap_or_default());
            hub.metrics
                .applied_after(since_event_time, arrived.elapsed());
            Ok(Settled::Ackable)
        }
        Fate::Duplicate => {
            hub.metrics.duplicate();
            Ok(Settled::Ackable)
        }
        Fate::Rejected(rejection) => {
            reject(hub, rejections, delivery, &rejection, shutdown).await?;
            Ok(Settled::Done)
        }
        Fate::Failed(e) => {
            let attempts = amqp::delivery_count(&delivery.properties) + 1;
            if attempts >= hub.settings.amqp.poison_after {
                warn!(error = %e, attempts, "processing keeps failing; rejecting as poison");
                let rejection = Rejection::new(
                    Reason::Poison,
                    format!("processing failed {attempts} times; last error: {e:#}"),
                );
                reject(hub, rejections, delivery, &rejection, shutdown).await?;
                Ok(Settled::Done)
            } else {
                warn!(error = %e, attempts, "processing failed; the broker will redeliver");
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(PublishError::from)?;
                Ok(Settled::Done)
            }
        }
    }
}

async fn ack(delivery: &Delivery) -> Result<(), PublishError> {
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Publish the original body and properties, plus the reason, to the
/// rejected exchange; record it; ack the original only once the broker
/// confirmed it and the record is written (a database outage is waited out).
async fn reject(
    hub: &Hub,
    rejections: &Channel,
    delivery: &Delivery,
    rejection: &Rejection,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Unsettled> {
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
    let (source, event_type) = envelope_names(&delivery.data);
    let record = store::rejections::Recorded {
        reason: rejection.reason.as_str(),
        detail: &rejection.detail,
        routing_key: delivery.routing_key.as_str(),
        body: &delivery.data,
        content_type: delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        source: source.as_deref(),
        event_type: event_type.as_deref(),
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str()),
        redelivered: delivery.redelivered || amqp::delivery_count(&delivery.properties) > 0,
    };
    let mut waits = backoff::backoff();
    loop {
        match store::rejections::record(&hub.pool, &record).await {
            Ok(true) => break,
            Ok(false) => {
                info!(reason = %rejection.reason, "a redelivered rejection, already recorded");
                break;
            }
            // A record the database refuses on its data: the message itself
            // is safe on the rejected queue.
            Err(e) if fault::database(&e) == Fault::Defect => {
                warn!(error = %e, "could not record the rejection");
                break;
            }
            Err(e) => {
                let wait = waits.next().unwrap_or_default();
                warn!(error = %e, ?wait, "the database is away; the rejection waits to be recorded");
                if !backoff::sleep_unless_stopped(wait, shutdown).await {
                    return Err(Unsettled::Stopped);
                }
            }
        }
    }
    Ok(ack(delivery).await?)
}

/// The event's `time`, where the body has a readable one (an applied
/// message always does; this reads only that member).
fn event_time(body: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        time: Option<DateTime<Utc>>,
    }
    serde_json::from_slice::<Envelope>(body).ok()?.time
}

/// The `source` and `type` of a rejected body, where it has readable ones
/// (bounded: they are shown on the board, not trusted).
fn envelope_names(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(event)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return (None, None);
    };
    let field = |name: &str| {
        event
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(|s| s.chars().take(256).collect::<String>())
    };
    (field("source"), field("type"))
}

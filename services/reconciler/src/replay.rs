//! Replaying a rejected message: its original body and content type,
//! byte for byte, to the inbound exchange with its routing key and publisher
//! confirms, then `replayed_at` noted. It goes through the hub like any
//! message. Shared by the API and `dynzero rejected replay`.

use crate::amqp::{self, PublishError};
use crate::store::rejections;
use chrono::{DateTime, Utc};
use dynzero_runtime::settings::AmqpSettings;
use lapin::{Channel, Connection};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no rejection {0}")]
    NotFound(i64),
    #[error("rejection {0} was recorded without its body")]
    NoBody(i64),
    #[error("publishing the replay: {0}")]
    Broker(#[from] PublishError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A confirming channel to the broker, open for one or many replays.
pub struct Replayer {
    inbound_exchange: String,
    connection: Connection,
    channel: Channel,
}

impl Replayer {
    pub async fn open(settings: &AmqpSettings) -> Result<Self, lapin::Error> {
        let connection = amqp::connect(settings).await?;
        let channel = match amqp::confirm_channel(&connection).await {
            Ok(channel) => channel,
            Err(e) => {
                amqp::close_connection(&connection, "replay channel failed").await;
                return Err(e);
            }
        };
        Ok(Self {
            inbound_exchange: settings.inbound_exchange.clone(),
            connection,
            channel,
        })
    }

    /// Republish rejection `id`; returns when it was marked replayed.
    pub async fn replay(&self, pool: &PgPool, id: i64) -> Result<DateTime<Utc>, ReplayError> {
        let stored = rejections::find(pool, id)
            .await?
            .ok_or(ReplayError::NotFound(id))?;
        let body = stored.body.ok_or(ReplayError::NoBody(id))?;
        let mut properties = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(ct) = stored.content_type {
            properties = properties.with_content_type(ct.into());
        }
        amqp::publish_confirmed(
            &self.channel,
            &self.inbound_exchange,
            &stored.routing_key,
            &body,
            properties,
        )
        .await?;
        let replayed_at = rejections::mark_replayed(pool, id).await?;
        tracing::info!(rejection = id, "rejected message replayed");
        Ok(replayed_at)
    }

    pub async fn close(self) {
        amqp::close(&self.connection, &self.channel).await;
    }
}

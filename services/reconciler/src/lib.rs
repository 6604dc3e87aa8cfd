//! The reconciler service: consumes inbound events from RabbitMQ, reconciles
//! households in PostgreSQL with the domain core, and relays states and
//! alerts back out.

pub mod amqp;
pub mod apply;
pub mod batch;
pub mod clock;
pub mod consumer;
pub mod fold;
pub mod hub;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod relay;
pub mod replay;
pub mod retention;
pub mod schedule;
pub mod service;
pub mod settings;
pub mod store;

//! Shared support for the end-to-end tests: they talk to the machine's real
//! PostgreSQL and RabbitMQ, so every test gets its own database and its own
//! uniquely named exchanges and queues, and waits for effects by polling with
//! a deadline, never by sleeping a guessed time.
//!
//! - [`fresh_database`]: an empty database of the test's own.
//! - [`unique_name`], [`amqp_url`]: names and addresses on the shared broker.
//! - [`TestBroker`], [`declare_capture_queue`], [`drain`], [`publish`]:
//!   feed the service and collect what it publishes.
//! - [`eventually`]: wait for an effect with a deadline.
//! - [`TcpProxy`]: take PostgreSQL or RabbitMQ "away" from the service under
//!   test (and back) without touching the shared servers.
//!
//! Helpers panic with a message saying what failed instead of returning
//! errors: in a test, a broken fixture is a failed test.
//!
//! Servers: `DYNZERO_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `DYNZERO_TEST_AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

pub mod api;
mod broker;
mod database;
mod env;
mod eventually;
pub mod faultrun;
pub mod hub;
mod proxy;

pub use broker::{
    TestBroker, declare_capture_queue, declare_test_exchange, delete_exchange, drain, publish,
};
pub use database::{TEST_DATABASE_PREFIX, TestDatabase, fresh_database};
pub use env::{
    AMQP_URL_VAR, DEFAULT_AMQP_URL, DEFAULT_PG_URL, PG_URL_VAR, amqp_addr, amqp_url, amqp_url_via,
    pg_addr, pg_server_url, unique_name,
};
pub use eventually::eventually;
pub use proxy::TcpProxy;

//! Synthetic communities as inbound CloudEvents: what the demo publishes and
//! what the end-to-end tests and benchmarks feed the hub.
//!
//! Everything is seeded: the same seed gives the same messages.

mod city;
mod config;
mod demo;
mod facts;
mod message;
mod people;

pub use city::City;
pub use config::CityConfig;
pub use message::Message;
pub use people::{id_number, uscc};

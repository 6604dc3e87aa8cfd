//! The read side: a division-scoped JSON API (`/api/v1`, OpenAPI 3.1 at
//! `/api/openapi.json`) and the Chinese web board on the same server. It
//! reads the tables the hub writes (`household`, `household_version`,
//! `inbox`, `alert`, `rejection`) and owns only its tokens and audit
//! (migrations tracked in `_api_migrations`). It never writes the hub's
//! state: a replay goes back through `dynzero.inbound`.

pub mod access;
pub mod alerts;
pub mod board;
pub mod households;
pub mod http;
pub mod openapi;
pub mod rejections;
pub mod service;
pub mod settings;
pub mod stats;

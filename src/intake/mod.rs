//! Where updates come in over HTTP: the health, readiness and metrics endpoints, and the
//! Telegram webhook, which journals each delivery before answering.
//!
//! May import: every layer below `actors`, and `actors`.

pub mod http;
pub mod webhook;

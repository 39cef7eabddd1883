//! Where updates come in: the Telegram poller (`getUpdates`, under the poller lease with
//! replicas), the VK long-poll poller, and over HTTP the Telegram webhook, which journals each
//! delivery before answering, beside the health, readiness and metrics endpoints.
//!
//! May import: every layer below `actors`, and `actors`.

pub mod http;
pub mod poller;
pub mod vk_poller;
pub mod webhook;

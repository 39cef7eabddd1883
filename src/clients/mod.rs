//! Clients of the outside services: the Telegram Bot API, the VK API, S3 (with server-side
//! object operations) and Airtable. Each speaks its service's protocol and types its errors;
//! none knows the conversation or the actors.
//!
//! May import: `util`, `obs`, `config`.

pub mod airtable;
pub mod s3;
pub mod telegram;
pub mod vk;

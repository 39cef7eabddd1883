//! The Telegram Bot API boundary: object types, the HTTP client and its errors.

mod client;
mod error;
pub mod ratelimit;
mod types;

pub use client::{parse_envelope, ByteStream, Download, TelegramClient};
pub use error::TelegramError;
pub use types::{
    CallbackQuery, Chat, Document, File, Message, SentMessage, Update, User, WebhookInfo,
};

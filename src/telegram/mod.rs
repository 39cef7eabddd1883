//! The Telegram Bot API boundary: object types, the HTTP client and its errors.

pub mod chat;
mod client;
mod error;
mod types;

pub use crate::inbound::IncomingUpdate;
pub use client::{parse_envelope, ByteStream, Download, TelegramClient};
pub use error::TelegramError;
pub use types::{
    CallbackQuery, Chat, Document, File, Message, SentMessage, Update, User, WebhookInfo,
};

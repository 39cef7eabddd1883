//! The VK boundary (a community's Bots Long Poll API): object types, the HTTP client and its
//! errors. The client reads nothing from the environment: it is built from a [`VkConfig`].

mod client;
mod error;
mod types;

pub use client::{parse_envelope, random_id, Pace, VkByteStream, VkClient, VkConfig};
pub use error::{codes, VkError};
pub use types::{
    Attachment, LongPollServer, MessageEvent, MessageNew, PollAnswer, VkDoc, VkEvent, VkMessage,
};

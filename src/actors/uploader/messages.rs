//! What the uploader is asked and answers: the upload, its progress, its report, and why an
//! upload failed (with the text the person is shown).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::clients::s3::StorageError;
use crate::clients::telegram::TelegramError;
use crate::clients::vk::VkError;
use crate::domain::chat::Platform;

/// Asks for one file to be stored; answered when it is stored or has failed.
#[derive(Message)]
#[rtype(result = "Result<UploadReport, UploadError>")]
pub struct Upload {
    /// The chat the file was sent in (Telegram's holds apply per chat).
    pub chat_id: i64,
    /// Where the file comes from: Telegram (`file_id` is its `file_id`) or VK (`file_id` is
    /// the document's URL).
    pub platform: Platform,
    /// The platform's reference to download the file by.
    pub file_id: String,
    /// Object key in the bucket.
    pub key: String,
    /// Content type to store, if known.
    pub content_type: Option<String>,
    /// Size Telegram announced, if any.
    pub expected_size: Option<u64>,
    /// Identifies this upload in progress messages.
    pub ticket: u64,
    /// Who receives progress messages.
    pub progress: Recipient<UploadProgress>,
}

/// Progress of one upload: after each stored part, and before each retry.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UploadProgress {
    /// The ticket given in [`Upload`].
    pub ticket: u64,
    /// What happened.
    pub state: ProgressState,
}

/// What an upload is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressState {
    /// Bytes stored so far, of the total if known.
    Bytes {
        /// Bytes stored so far.
        bytes: u64,
        /// Total size, if known.
        total: Option<u64>,
    },
    /// An attempt failed; the next one starts after `next_in`.
    Retrying {
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// What failed, in words for the user.
        reason: String,
        /// Wait before the next attempt.
        next_in: Duration,
    },
}

impl UploadProgress {
    /// Bytes stored so far.
    pub fn bytes(ticket: u64, bytes: u64, total: Option<u64>) -> Self {
        Self {
            ticket,
            state: ProgressState::Bytes { bytes, total },
        }
    }
}

/// What a finished upload did.
#[derive(Debug, Clone)]
pub struct UploadReport {
    /// Object key.
    pub key: String,
    /// Bytes stored.
    pub bytes: u64,
    /// Parts used (1 for a single PUT).
    pub parts: u32,
    /// Whether S3 multipart upload was used.
    pub multipart: bool,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Why an upload failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    /// Telegram would not hand the file over or the download broke.
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    /// VK would not hand the document over.
    #[error(transparent)]
    Vk(VkError),
    /// S3 refused or failed.
    #[error("{0}")]
    Storage(Arc<StorageError>),
    /// Telegram refuses to serve files this large to bots.
    #[error("the file is too big for the Bot API to download")]
    TooBig,
    /// The uploader or the store is gone (shutting down).
    #[error("the uploader is not running")]
    Unavailable,
}

impl From<StorageError> for UploadError {
    fn from(e: StorageError) -> Self {
        Self::Storage(Arc::new(e))
    }
}

impl UploadError {
    /// Whether the upload may succeed if tried again: an outside service was unavailable, S3
    /// refused our credentials (the upload waits for an operator; the file is not given up),
    /// or the uploader restarted under it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Telegram(e) => e.is_retryable(),
            Self::Vk(e) => e.is_retryable(),
            Self::Storage(e) => e.is_retryable() || e.is_denied(),
            Self::Unavailable => true,
            Self::TooBig => false,
        }
    }

    /// Whether S3 refused our credentials or permission: the storage sink is paused until an
    /// operator fixes the settings, so no retry budget runs out on it.
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Storage(e) if e.is_denied())
    }

    /// The wait Telegram asked for, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Telegram(e) => e.retry_after(),
            Self::Vk(e) => e.rate_limited_for(),
            _ => None,
        }
    }

    /// A short reason fit for the user, without internals.
    pub fn user_text(&self) -> String {
        match self {
            Self::Telegram(TelegramError::Incomplete {
                received, expected, ..
            }) if received < expected => {
                format!("the download ended early ({received} of {expected} bytes)")
            }
            Self::Telegram(TelegramError::Incomplete { expected, .. }) => {
                format!("more than the announced {expected} bytes arrived")
            }
            Self::Telegram(TelegramError::RetryAfter { seconds, .. }) => {
                format!("Telegram asked to wait {seconds} s")
            }
            Self::Telegram(TelegramError::Api { code, .. }) => {
                format!("Telegram did not hand the file over (HTTP {code})")
            }
            Self::Telegram(TelegramError::LocalFileRefused { .. }) => {
                "the Bot API server named a file the bot may not read".into()
            }
            Self::Telegram(_) => "the download broke off".into(),
            Self::Vk(VkError::Http { status, .. }) => {
                format!("VK did not hand the document over (HTTP {status})")
            }
            Self::Vk(_) => "the download from VK broke off".into(),
            Self::Storage(e) => match &**e {
                StorageError::Request {
                    status: Some(s @ (401 | 403)),
                    ..
                } => format!(
                    "the storage refuses our credentials (HTTP {s}); the operators are told"
                ),
                StorageError::Request {
                    status: Some(s), ..
                } => format!("the storage is unavailable (HTTP {s})"),
                _ => "the storage is unavailable".into(),
            },
            Self::TooBig => "the file is too big".into(),
            Self::Unavailable => "the service is restarting".into(),
        }
    }
}

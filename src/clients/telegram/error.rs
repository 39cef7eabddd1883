//! Errors of the Telegram boundary, split into those worth retrying and those that are final.

use std::time::Duration;

/// A failed Bot API call. Texts never contain the bot token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TelegramError {
    /// Telegram answered `ok: false`.
    #[error("Telegram {method} failed: {code} {description}")]
    Api {
        /// The method called.
        method: &'static str,
        /// `error_code` (HTTP status).
        code: u16,
        /// `description`.
        description: String,
    },
    /// Flood control: wait this long before the next call.
    #[error("Telegram {method}: too many requests, retry after {seconds} s")]
    RetryAfter {
        /// The method called.
        method: &'static str,
        /// `parameters.retry_after`.
        seconds: u64,
    },
    /// The request did not reach Telegram or its answer did not arrive.
    #[error("Telegram {method}: network error: {detail}")]
    Network {
        /// The method called.
        method: &'static str,
        /// What went wrong, with the token removed.
        detail: String,
    },
    /// The answer was not the JSON envelope the Bot API sends.
    #[error("Telegram {method}: invalid JSON in HTTP {status} response: {detail} (body starts: {raw:?})")]
    InvalidJson {
        /// The method called.
        method: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// The parser's message.
        detail: String,
        /// The first bytes of the body.
        raw: String,
    },
    /// A local Bot API server named a file the bot must not read (outside
    /// `telegram.local_files_root`, through a symbolic link, or not a regular file).
    #[error("Telegram download: local file refused: {detail}")]
    LocalFileRefused {
        /// Why.
        detail: String,
    },
    /// A download delivered a different number of bytes than announced.
    #[error("Telegram download: {received} bytes received where {basis} announced {expected}")]
    Incomplete {
        /// Bytes that arrived (so far, when too many arrived).
        received: u64,
        /// Bytes announced.
        expected: u64,
        /// Who announced them: `Content-Length` or `file_size`.
        basis: &'static str,
    },
}

impl TelegramError {
    /// The method the error came from (`download` for file transfers).
    pub fn method(&self) -> &'static str {
        match self {
            Self::Api { method, .. }
            | Self::RetryAfter { method, .. }
            | Self::Network { method, .. }
            | Self::InvalidJson { method, .. } => method,
            Self::LocalFileRefused { .. } | Self::Incomplete { .. } => "download",
        }
    }

    /// Whether the same call may succeed later (flood control, 5xx, network, a broken answer).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { code, .. } => *code >= 500 || *code == 409,
            Self::RetryAfter { .. } | Self::Network { .. } | Self::Incomplete { .. } => true,
            Self::InvalidJson { status, .. } => *status >= 500 || *status == 200,
            Self::LocalFileRefused { .. } => false,
        }
    }

    /// The wait Telegram asked for, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RetryAfter { seconds, .. } => Some(Duration::from_secs(*seconds)),
            _ => None,
        }
    }

    /// The API error code, if Telegram answered with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => Some(*code),
            Self::RetryAfter { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether Telegram says the edit changed nothing (harmless).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Self::Api { description, .. } if description.contains("message is not modified"))
    }
}

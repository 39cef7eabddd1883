//! Errors of the VK boundary, split into those worth retrying and those that are final.

use std::time::Duration;

/// A failed VK API call. Texts never contain the access token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VkError {
    /// VK answered `{"error": {"error_code", "error_msg"}}`.
    #[error("VK {method} failed: error {code}: {message}")]
    Api {
        /// The method called.
        method: &'static str,
        /// `error_code`.
        code: i64,
        /// `error_msg`.
        message: String,
    },
    /// The request did not reach VK or its answer did not arrive.
    #[error("VK {method}: network error: {detail}")]
    Network {
        /// The method called.
        method: &'static str,
        /// What went wrong, with the token removed.
        detail: String,
    },
    /// VK answered with an HTTP error status.
    #[error("VK {method}: HTTP {status}")]
    Http {
        /// The method called.
        method: &'static str,
        /// The status.
        status: u16,
    },
    /// The answer was not the JSON VK sends.
    #[error("VK {method}: invalid answer: {detail} (body starts: {raw:?})")]
    InvalidJson {
        /// The method called.
        method: &'static str,
        /// The parser's message.
        detail: String,
        /// The first bytes of the body.
        raw: String,
    },
    /// A download delivered a different number of bytes than the document's size.
    #[error("VK download: {received} bytes received where {expected} were announced")]
    Incomplete {
        /// Bytes that arrived.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
}

/// Error codes of VK's API that the service treats specially.
pub mod codes {
    /// User authorization failed (a bad or revoked token).
    pub const AUTHORIZATION: i64 = 5;
    /// Too many requests per second.
    pub const TOO_MANY: i64 = 6;
    /// Flood control.
    pub const FLOOD: i64 = 9;
    /// Internal server error.
    pub const INTERNAL: i64 = 10;
    /// Access denied (e.g. the token is another community's).
    pub const ACCESS_DENIED: i64 = 15;
    /// A parameter is invalid (e.g. a wrong group id).
    pub const INVALID_PARAMETER: i64 = 100;
}

impl VkError {
    /// Whether trying again later may succeed: network trouble, 5xx, VK's internal errors and
    /// its rate limits (6, 9).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Incomplete { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            Self::Api { code, .. } => {
                matches!(*code, codes::TOO_MANY | codes::FLOOD | codes::INTERNAL)
            }
            Self::InvalidJson { .. } => false,
        }
    }

    /// Whether VK refused the token (error 5): nothing works until an operator fixes it.
    pub fn is_authorization(&self) -> bool {
        matches!(self, Self::Api { code, .. } if *code == codes::AUTHORIZATION)
    }

    /// The extra wait VK's rate limits ask for (it names none: a second for 6, longer for 9).
    pub fn rate_limited_for(&self) -> Option<Duration> {
        match self {
            Self::Api { code, .. } if *code == codes::TOO_MANY => Some(Duration::from_secs(1)),
            Self::Api { code, .. } if *code == codes::FLOOD => Some(Duration::from_secs(5)),
            _ => None,
        }
    }
}

//! Why the service did not start: one line per cause, saying what is wrong and which setting to check.

use crate::clients::airtable::AirtableError;
use crate::clients::s3::StorageError;
use crate::clients::telegram::TelegramError;
use crate::clients::vk::VkError;
use crate::embedded_s3::EmbeddedS3Error;
use crate::store::StoreError;

/// Why the service did not start. Each text is one line saying what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The embedded S3 server could not start.
    #[error(transparent)]
    EmbeddedS3(#[from] EmbeddedS3Error),
    /// The bucket is missing, refused or unreachable.
    #[error("start-up check failed: {0}")]
    Storage(#[from] StorageError),
    /// Telegram rejected the token.
    #[error("start-up check failed: Telegram rejected the bot token (getMe answered {code} {description}); check telegram.token")]
    InvalidToken {
        /// HTTP code.
        code: u16,
        /// Telegram's description.
        description: String,
    },
    /// The durable store could not be opened.
    #[error("start-up failed: {0}")]
    Store(#[from] StoreError),
    /// The store actor did not answer.
    #[error("start-up failed: the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// Airtable refused the token or does not know the table.
    #[error("start-up check failed: Airtable table `{table}` in base {base} is not usable: {source}; check the airtable settings")]
    Airtable {
        /// Base id.
        base: String,
        /// Table.
        table: String,
        /// The error.
        source: AirtableError,
    },
    /// The ETL failed.
    #[error("ETL failed: {0}")]
    Etl(String),
    /// An import failed.
    #[error("import failed: {0}")]
    Import(#[from] crate::etl::import::ImportError),
    /// VK refused the community token.
    #[error("start-up check failed: VK rejected the community token ({detail}); check vk.token")]
    VkToken {
        /// VK's message.
        detail: String,
    },
    /// The token does not serve the community.
    #[error("start-up check failed: VK community {group} is not usable with this token ({detail}); check vk.group_id and vk.token")]
    VkGroup {
        /// The configured community.
        group: i64,
        /// VK's error.
        detail: String,
    },
    /// The community's Bots Long Poll API is off.
    #[error("start-up check failed: the Bots Long Poll API of VK community {group} cannot be used: {missing}; turn it on in Manage community → API usage → Bots Long Poll API, with the event type message_new")]
    VkLongPoll {
        /// The configured community.
        group: i64,
        /// What is off.
        missing: &'static str,
    },
    /// VK could not be reached or answered an error.
    #[error("start-up check failed: VK API at {api_url} is not usable: {source}")]
    Vk {
        /// Base URL from settings.
        api_url: String,
        /// The last error.
        source: VkError,
    },
    /// Telegram did not take the webhook.
    #[error("start-up check failed: Telegram did not take the webhook {url}: {detail}; check telegram.webhook.url (a public https:// URL on port 443, 80, 88 or 8443 that reaches http.listen) and telegram.webhook.secret_token")]
    Webhook {
        /// The configured URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP endpoints could not listen.
    #[error("start-up failed: cannot serve HTTP on {listen}: {source}; check http.listen")]
    Http {
        /// The address.
        listen: String,
        /// The error.
        source: std::io::Error,
    },
    /// Telegram could not be reached or answered an error.
    #[error("start-up check failed: Telegram Bot API at {api_url} is not usable: {source}")]
    Telegram {
        /// Base URL from settings.
        api_url: String,
        /// The last error.
        source: TelegramError,
    },
}

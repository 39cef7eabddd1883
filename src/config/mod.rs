//! Typed settings, layered from the embedded defaults, an optional per-environment file, an
//! optional explicit file and `TG_INGEST__…` environment variables.
//!
//! This module is the only place that reads environment variables.

pub mod urls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults compiled into the binary (`settings/default.toml`).
pub const DEFAULTS: &str = include_str!("../../settings/default.toml");

/// A secret value (token, key) whose `Debug` and `Display` never show it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// All settings of the service.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Size of the worker pool.
    pub workers: usize,
    /// Updates one worker holds in memory before the poller waits (the journal holds the rest).
    pub worker_queue_limit: usize,
    /// Directory for local data (store, embedded S3 files).
    pub data_dir: PathBuf,
    /// Attempts per update before it is moved to the poison list.
    pub max_attempts: u32,
    /// Time in-flight work gets to finish at shutdown, in seconds.
    pub shutdown_deadline_secs: u64,
    /// Log output.
    pub log: LogSettings,
    /// Who may use the bot and how large documents may be.
    pub security: SecuritySettings,
    /// The "go" button.
    pub button: ButtonSettings,
    /// Airtable, where button presses are written.
    pub airtable: AirtableSettings,
    /// The group archive and its daily ETL.
    pub archive: ArchiveSettings,
    /// Telegram Bot API client settings.
    pub telegram: TelegramSettings,
    /// S3 storage settings.
    pub s3: S3Settings,
    /// The same bot on VK.
    pub vk: VkSettings,
    /// The HTTP endpoints (health and readiness).
    pub http: HttpSettings,
    /// Where the durable store lives.
    pub store: StoreSettings,
}

/// The durable store's engine.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    /// Empty: SQLite in `data_dir`; `postgres://…`: a PostgreSQL server. A secret (it may hold a
    /// password): never logged.
    pub url: Secret,
    /// How long a replica's lease on polling lasts without renewal, in seconds.
    pub lease_secs: u64,
    /// This replica's name in leases; empty: `<host>-<pid>-<random>`.
    pub replica_id: String,
    /// PostgreSQL: the server's `statement_timeout`; the client waits this plus 5 s for any
    /// answer, then drops the connection and opens another.
    pub statement_timeout_secs: u64,
    /// PostgreSQL: idle seconds before TCP keepalive probes start.
    pub tcp_keepalive_secs: u64,
    /// PostgreSQL: seconds sent data may stay unacknowledged before the connection is ended.
    pub tcp_user_timeout_secs: u64,
}

impl StoreSettings {
    /// This replica's name: `replica_id`, or one made of the host name, the process id and a
    /// random part (unique across restarts).
    pub fn replica_name(&self) -> String {
        if !self.replica_id.is_empty() {
            return self.replica_id.clone();
        }
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let host = if ok {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            "replica".to_string()
        };
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    }

    /// Whether the store is a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }
}

/// The HTTP endpoints.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Address to serve `/healthz` and `/readyz` on; empty: no HTTP server.
    pub listen: String,
}

/// The bot on VK: a community's Bots Long Poll API.
#[derive(Debug, Clone, Deserialize)]
pub struct VkSettings {
    /// Whether the VK bot runs.
    pub enabled: bool,
    /// Community access token (with `messages` and `docs` access).
    pub token: Secret,
    /// The community's id.
    pub group_id: i64,
    /// Base URL of the API methods, without a trailing slash.
    pub api_url: String,
    /// API version sent with every call.
    pub api_version: String,
    /// Long-poll wait, in seconds (at most 90).
    pub wait: u64,
    /// Timeout of ordinary requests, in seconds.
    pub request_timeout_secs: u64,
    /// VK user ids allowed to use `/files all`.
    pub admins: Vec<i64>,
    /// Attempts of the start-up check while VK is unreachable.
    pub startup_attempts: u32,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// Line format.
    pub format: crate::obs::logging::LogFormat,
}

/// Settings of the Telegram Bot API client.
#[derive(Debug, Clone, Deserialize)]
pub struct TelegramSettings {
    /// Bot token.
    pub token: Secret,
    /// Base URL of the Bot API, without a trailing slash.
    pub api_url: String,
    /// Long-poll timeout of `getUpdates`, in seconds.
    pub poll_timeout_secs: u64,
    /// Maximum updates per `getUpdates` call.
    pub poll_limit: u32,
    /// Update kinds requested from Telegram.
    pub allowed_updates: Vec<String>,
    /// Timeout of ordinary requests, in seconds.
    pub request_timeout_secs: u64,
    /// Timeout of a whole file download, in seconds.
    pub download_timeout_secs: u64,
    /// How long Telegram-side failures of a document are retried, in seconds.
    pub download_retry_for_secs: u64,
    /// Whether `api_url` is a local `telegram-bot-api --local` server.
    pub local_bot_api: bool,
    /// The only directory absolute file paths of a local Bot API server are read from.
    pub local_files_root: String,
    /// Largest file the cloud Bot API lets a bot download.
    pub cloud_download_limit_bytes: u64,
    /// Minimum interval between two progress edits, in milliseconds.
    pub progress_interval_ms: u64,
    /// Attempts of the start-up `getMe` check while Telegram is unreachable.
    pub startup_attempts: u32,
    /// How long sends and edits are retried, in seconds.
    pub send_retry_for_secs: u64,
    /// Outgoing rate limits.
    pub rate_limit: RateLimitSettings,
    /// How updates arrive: `getUpdates` polling or a webhook.
    pub mode: TelegramMode,
    /// The webhook, in webhook mode.
    pub webhook: WebhookSettings,
}

/// How Telegram updates arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// The service calls `getUpdates` (long polling).
    Polling,
    /// Telegram POSTs each update to the service's webhook.
    Webhook,
}

/// The Telegram webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// The public HTTPS URL Telegram posts to (set with `setWebhook`).
    pub url: String,
    /// Path served on `http.listen` for deliveries.
    pub path: String,
    /// Sent by Telegram in `X-Telegram-Bot-Api-Secret-Token` with every delivery.
    pub secret_token: Secret,
    /// Simultaneous connections Telegram may open for deliveries (1..=100).
    pub max_connections: u32,
    /// Largest delivery body accepted, in KiB.
    pub max_body_kib: u64,
    /// Seconds between two `getWebhookInfo` checks.
    pub check_interval_secs: u64,
}

/// Outgoing message limits (token buckets).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Whether limits apply at all.
    pub enabled: bool,
    /// Messages per second to one chat.
    pub per_chat_per_sec: f64,
    /// Burst to one chat.
    pub per_chat_burst: u32,
    /// Messages per minute to one group.
    pub per_group_per_min: f64,
    /// Burst to one group.
    pub per_group_burst: u32,
    /// Messages per second overall.
    pub global_per_sec: f64,
    /// Burst overall.
    pub global_burst: u32,
}

/// The "go" button.
#[derive(Debug, Clone, Deserialize)]
pub struct ButtonSettings {
    /// Default message text.
    pub text: String,
    /// Default button label.
    pub label: String,
    /// Users allowed to use /go.
    #[serde(default, deserialize_with = "id_list")]
    pub admins: Vec<i64>,
}

/// Airtable client settings.
#[derive(Debug, Clone, Deserialize)]
pub struct AirtableSettings {
    /// API base URL.
    pub api_url: String,
    /// Base id (`app…`); empty means not configured.
    pub base_id: String,
    /// Table name or id.
    pub table: String,
    /// Personal access token.
    pub token: Secret,
    /// `event_type` value.
    pub event_type: String,
    /// `reporter_name` value.
    pub reporter_name: String,
    /// Fields to merge on for upserts.
    pub merge_fields: Vec<String>,
    /// Requests per second to the base.
    pub requests_per_sec: f64,
    /// Records per request (at most 10).
    pub batch_size: usize,
    /// Pause after a 429, in seconds.
    pub rate_limited_wait_secs: u64,
    /// Timeout of one request, in seconds.
    pub request_timeout_secs: u64,
    /// Column names.
    pub fields: AirtableFields,
}

impl AirtableSettings {
    /// Whether a base is configured.
    pub fn is_configured(&self) -> bool {
        !self.base_id.is_empty()
    }
}

/// Column names of the Airtable table.
#[derive(Debug, Clone, Deserialize)]
pub struct AirtableFields {
    /// Chat id column (text).
    pub chat_id: String,
    /// Username column (text).
    pub username: String,
    /// Press time column (date and time).
    pub triggered_at: String,
    /// Event type column (text).
    pub event_type: String,
    /// Reporter column (text).
    pub reporter_name: String,
}

/// The group archive and its daily ETL.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveSettings {
    /// Archived chat ids; empty means off.
    #[serde(default, deserialize_with = "id_list")]
    pub chats: Vec<i64>,
    /// Bucket for raw JSON.
    pub raw_bucket: String,
    /// Bucket for Parquet.
    pub enriched_bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// Time zone, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Local `HH:MM` of the daily ETL run.
    pub etl_at: String,
    /// Days looked back by the scheduler's passes.
    pub catch_up_days: u32,
    /// Seconds between the scheduler's passes.
    pub recheck_secs: u64,
    /// Rows per Parquet row group.
    pub rows_per_group: usize,
    /// Days the JSON of delivered raw objects is kept in the store for the ETL; 0: not kept.
    pub local_copy_days: u32,
}

impl ArchiveSettings {
    /// Whether any chat is archived.
    pub fn is_enabled(&self) -> bool {
        !self.chats.is_empty()
    }

    /// The ETL time as minutes after local midnight.
    pub fn etl_minute(&self) -> Option<u32> {
        let (h, m) = self.etl_at.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }
}

/// Access control and size limits.
#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Users allowed to use the bot; empty means everyone.
    #[serde(default, deserialize_with = "id_list")]
    pub allowed_user_ids: Vec<i64>,
    /// Chats served; empty means every chat.
    #[serde(default, deserialize_with = "id_list")]
    pub allowed_chat_ids: Vec<i64>,
    /// Largest accepted document in bytes; 0 means no limit of our own.
    pub max_file_bytes: u64,
}

impl TelegramSettings {
    /// Timeout of ordinary requests.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Largest document the bot accepts, or `None` when a local Bot API server lifts the limit.
    pub fn download_limit(&self) -> Option<u64> {
        (!self.local_bot_api).then_some(self.cloud_download_limit_bytes)
    }
}

/// Settings of the S3 storage.
#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    /// Endpoint URL; empty means the embedded server.
    pub endpoint: String,
    /// SigV4 region.
    pub region: String,
    /// Bucket for documents.
    pub bucket: String,
    /// Access key id.
    pub access_key: Secret,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style addressing.
    pub path_style: bool,
    /// Multipart part size in MiB.
    pub part_size_mib: usize,
    /// Parts of one upload in flight at once.
    pub parts_in_flight: usize,
    /// Timeout of one S3 request, in seconds.
    pub request_timeout_secs: u64,
    /// Longest object key in bytes.
    pub max_key_bytes: usize,
    /// Attempts of the start-up bucket check while S3 is unreachable.
    pub startup_attempts: u32,
    /// How long an upload is retried, in seconds.
    pub retry_for_secs: u64,
    /// Documents uploaded at the same time; more wait their turn.
    pub max_concurrent_uploads: usize,
    /// Largest object a rename copies with one `CopyObject`, in MiB; larger ones are copied
    /// in parts (`UploadPartCopy`).
    pub single_copy_max_mib: u64,
    /// The embedded server used when `endpoint` is empty.
    pub embedded: EmbeddedS3Settings,
}

impl S3Settings {
    /// Multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size_mib * 1024 * 1024
    }
}

/// Settings of the embedded S3 server.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddedS3Settings {
    /// Listen address, loopback by default.
    pub listen: String,
    /// Access key of the embedded server.
    pub access_key: String,
    /// Secret key of the embedded server.
    pub secret_key: Secret,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file could not be read or a value had the wrong type.
    #[error("invalid settings: {0}")]
    Load(#[from] config::ConfigError),
    /// A value was read but is not acceptable.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `telegram.poll_timeout_secs`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the optional layers come from; `from_env` fills it from the process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Directory holding per-environment files.
    pub settings_dir: Option<PathBuf>,
    /// Name of the environment (`settings/<name>.toml`).
    pub environment: Option<String>,
    /// Explicit settings file.
    pub file: Option<PathBuf>,
    /// Environment variables to apply (`TG_INGEST__…`), as key/value pairs.
    pub env_vars: Vec<(String, String)>,
}

impl Sources {
    /// Reads `TG_INGEST_ENV`, `TG_INGEST_SETTINGS_DIR` and all `TG_INGEST__…` variables.
    pub fn from_env(file: Option<PathBuf>) -> Self {
        Self {
            settings_dir: std::env::var_os("TG_INGEST_SETTINGS_DIR").map(PathBuf::from),
            environment: std::env::var("TG_INGEST_ENV")
                .ok()
                .filter(|s| !s.is_empty()),
            file,
            env_vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("TG_INGEST__"))
                .collect(),
        }
    }
}

impl Settings {
    /// Loads and validates the settings from the given sources.
    pub fn load(sources: &Sources) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(env) = &sources.environment {
            let dir = sources
                .settings_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("settings"));
            builder =
                builder.add_source(File::from(dir.join(format!("{env}.toml"))).required(false));
        }
        if let Some(file) = &sources.file {
            builder = builder.add_source(File::from(file.as_path()).required(true));
        }
        let vars = sources.env_vars.iter().cloned().collect();
        builder = builder.add_source(
            Environment::with_prefix("TG_INGEST")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("telegram.allowed_updates")
                .with_list_parse_key("security.allowed_user_ids")
                .with_list_parse_key("security.allowed_chat_ids")
                .with_list_parse_key("button.admins")
                .with_list_parse_key("vk.admins")
                .with_list_parse_key("archive.chats")
                .with_list_parse_key("airtable.merge_fields")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Whether the Telegram bot runs (a token is set; a VK-only deployment has none).
    pub fn telegram_enabled(&self) -> bool {
        !self.telegram.token.is_empty()
    }

    /// Checks ranges and required values, naming the offending key.
    /// Settings that are valid but probably not what the operator meant; logged at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let security = &self.security;
        if self.vk.enabled
            && (!security.allowed_user_ids.is_empty() || !security.allowed_chat_ids.is_empty())
        {
            warnings.push(
                "security.allowed_user_ids and security.allowed_chat_ids restrict the Telegram bot \
                 only: the VK bot serves every person who writes to the community"
                    .to_string(),
            );
        }
        warnings
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        let rl = &self.telegram.rate_limit;
        if rl.enabled
            && (rl.per_chat_per_sec <= 0.0
                || rl.per_group_per_min <= 0.0
                || rl.global_per_sec <= 0.0)
        {
            return invalid(
                "telegram.rate_limit",
                "rates must be above 0 (or set enabled = false)",
            );
        }
        let at = &self.airtable;
        if at.is_configured() {
            if at.token.is_empty() {
                return invalid("airtable.token", "is required when airtable.base_id is set");
            }
            if !is_http_url(&at.api_url) {
                return invalid("airtable.api_url", "must start with http:// or https://");
            }
            if at.table.is_empty() {
                return invalid("airtable.table", "must not be empty");
            }
        }
        if !(1..=10).contains(&at.batch_size) {
            return invalid(
                "airtable.batch_size",
                "must be between 1 and 10 (Airtable's limit)",
            );
        }
        if at.requests_per_sec <= 0.0 || at.requests_per_sec > 5.0 {
            return invalid(
                "airtable.requests_per_sec",
                "must be above 0 and at most 5 (Airtable's limit)",
            );
        }
        if at.merge_fields.is_empty() {
            return invalid("airtable.merge_fields", "must name at least one field");
        }
        let ar = &self.archive;
        if ar.etl_minute().is_none() {
            return invalid("archive.etl_at", "must be a time HH:MM");
        }
        if !(-14 * 60..=14 * 60).contains(&ar.utc_offset_minutes) {
            return invalid("archive.utc_offset_minutes", "must be between -840 and 840");
        }
        if ar.rows_per_group == 0 {
            return invalid("archive.rows_per_group", "must be at least 1");
        }
        if ar.local_copy_days > 366 {
            return invalid("archive.local_copy_days", "must be between 0 and 366");
        }
        if ar.prefix.is_empty() || ar.prefix.starts_with('/') || ar.prefix.ends_with('/') {
            return invalid(
                "archive.prefix",
                "must be non-empty without leading or trailing /",
            );
        }
        let label = self.button.label.len();
        if label == 0 || label > 64 {
            return invalid("button.label", "must be 1 to 64 bytes");
        }
        if self.workers == 0 || self.workers > 256 {
            return invalid("workers", "must be between 1 and 256");
        }
        if !(1..=1_000_000).contains(&self.worker_queue_limit) {
            return invalid("worker_queue_limit", "must be between 1 and 1000000");
        }
        if !(1..=256).contains(&self.s3.max_concurrent_uploads) {
            return invalid("s3.max_concurrent_uploads", "must be between 1 and 256");
        }
        if !(5..=5120).contains(&self.s3.single_copy_max_mib) {
            return invalid(
                "s3.single_copy_max_mib",
                "must be between 5 and 5120 (S3 copies at most 5 GiB in one request)",
            );
        }
        let vk = &self.vk;
        if vk.enabled {
            if vk.token.is_empty() {
                return invalid(
                    "vk.token",
                    "is required when vk.enabled is true (a community token with messages and docs access)",
                );
            }
            if vk.group_id <= 0 {
                return invalid(
                    "vk.group_id",
                    "must be the community's id (a positive number)",
                );
            }
            if !(1..=90).contains(&vk.wait) {
                return invalid("vk.wait", "must be between 1 and 90");
            }
            if vk.request_timeout_secs == 0 {
                return invalid("vk.request_timeout_secs", "must be at least 1");
            }
        }
        let token = self.telegram.token.expose();
        if token.is_empty() && !vk.enabled {
            return invalid(
                "telegram.token",
                "is required (set TG_INGEST__TELEGRAM__TOKEN to the token from @BotFather, or enable vk)",
            );
        }
        if !token.is_empty()
            && (!token.contains(':') || token.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            return invalid(
                "telegram.token",
                "does not look like a bot token (expected <bot id>:<secret>)",
            );
        }
        if self.telegram.mode == TelegramMode::Webhook {
            let wh = &self.telegram.webhook;
            if token.is_empty() {
                return invalid(
                    "telegram.mode",
                    "is webhook, but telegram.token is empty (the webhook belongs to a bot)",
                );
            }
            if self.http.listen.is_empty() {
                return invalid(
                    "http.listen",
                    "is required in webhook mode (deliveries are served there), e.g. \"0.0.0.0:8080\"",
                );
            }
            if !is_http_url(&wh.url) {
                return invalid(
                    "telegram.webhook.url",
                    "is required in webhook mode: the public https:// URL Telegram posts to",
                );
            }
            let secret = wh.secret_token.expose();
            if secret.is_empty()
                || secret.len() > 256
                || !secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return invalid(
                    "telegram.webhook.secret_token",
                    "is required in webhook mode: 1 to 256 characters A-Z, a-z, 0-9, _ and -",
                );
            }
            if !(1..=100).contains(&wh.max_connections) {
                return invalid(
                    "telegram.webhook.max_connections",
                    "must be between 1 and 100",
                );
            }
            if !wh.path.starts_with('/')
                || ["/healthz", "/readyz", "/metrics"].contains(&wh.path.as_str())
            {
                return invalid(
                    "telegram.webhook.path",
                    "must start with / and differ from /healthz, /readyz and /metrics",
                );
            }
            if !(1..=65_536).contains(&wh.max_body_kib) {
                return invalid(
                    "telegram.webhook.max_body_kib",
                    "must be between 1 and 65536",
                );
            }
            if wh.check_interval_secs == 0 {
                return invalid("telegram.webhook.check_interval_secs", "must be at least 1");
            }
        }
        if !(1..=100).contains(&self.telegram.poll_timeout_secs) {
            return invalid("telegram.poll_timeout_secs", "must be between 1 and 100");
        }
        if !(1..=100).contains(&self.telegram.poll_limit) {
            return invalid("telegram.poll_limit", "must be between 1 and 100");
        }
        if !is_http_url(&self.telegram.api_url) {
            return invalid("telegram.api_url", "must start with http:// or https://");
        }
        if self.telegram.request_timeout_secs == 0 {
            return invalid("telegram.request_timeout_secs", "must be at least 1");
        }
        let allowed = &self.security.allowed_chat_ids;
        if !allowed.is_empty() && self.archive.chats.iter().any(|c| !allowed.contains(c)) {
            return invalid(
                "archive.chats",
                "must all be in security.allowed_chat_ids when that list is set (nothing of other chats is kept)",
            );
        }
        let root = std::path::Path::new(&self.telegram.local_files_root);
        if self.telegram.local_bot_api && (!root.is_absolute() || root.parent().is_none()) {
            return invalid(
                "telegram.local_files_root",
                "must be an absolute directory other than / when local_bot_api is on",
            );
        }
        if !self.s3.endpoint.is_empty() && !is_http_url(&self.s3.endpoint) {
            return invalid(
                "s3.endpoint",
                "must be empty or start with http:// or https://",
            );
        }
        if self.s3.bucket.len() < 3 || self.s3.bucket.len() > 63 {
            return invalid("s3.bucket", "must be 3 to 63 characters long");
        }
        if !(5..=512).contains(&self.s3.part_size_mib) {
            return invalid("s3.part_size_mib", "must be between 5 and 512");
        }
        if !(1..=16).contains(&self.s3.parts_in_flight) {
            return invalid("s3.parts_in_flight", "must be between 1 and 16");
        }
        if !(16..=1024).contains(&self.s3.max_key_bytes) {
            return invalid("s3.max_key_bytes", "must be between 16 and 1024");
        }
        if self.store.is_postgres() {
            let url = self.store.url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return invalid(
                    "store.url",
                    "must be empty (SQLite in data_dir) or a postgres:// URL",
                );
            }
            if !(3..=300).contains(&self.store.lease_secs) {
                return invalid("store.lease_secs", "must be between 3 and 300");
            }
            for (key, value) in [
                (
                    "store.statement_timeout_secs",
                    self.store.statement_timeout_secs,
                ),
                ("store.tcp_keepalive_secs", self.store.tcp_keepalive_secs),
                (
                    "store.tcp_user_timeout_secs",
                    self.store.tcp_user_timeout_secs,
                ),
            ] {
                if !(1..=600).contains(&value) {
                    return invalid(key, "must be between 1 and 600");
                }
            }
            if self.s3.endpoint.is_empty() {
                return invalid(
                    "s3.endpoint",
                    "must name an S3 server when store.url is PostgreSQL: the embedded S3 server keeps its files on this machine's disk, which replicas cannot share",
                );
            }
        }
        Ok(())
    }

    /// Registers every secret with the logger, so no log line can contain one.
    pub fn register_secrets(&self) {
        for secret in [
            &self.telegram.token,
            &self.s3.secret_key,
            &self.s3.access_key,
            &self.s3.embedded.secret_key,
            &self.airtable.token,
            &self.vk.token,
            &self.telegram.webhook.secret_token,
            &self.store.url,
        ] {
            crate::obs::logging::redact(secret.expose());
        }
        // The part after the bot id is what makes a token secret.
        if let Some((_, tail)) = self.telegram.token.expose().split_once(':') {
            crate::obs::logging::redact(tail);
        }
        for password in urls::url_passwords(self.store.url.expose()) {
            crate::obs::logging::redact(&password);
        }
    }

    /// Path of the durable store, when it is SQLite.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("state.db")
    }

    /// What the store is, for logs and messages (a PostgreSQL URL without its password).
    pub fn store_name(&self) -> String {
        if self.store.is_postgres() {
            urls::redact_url(self.store.url.expose())
        } else {
            self.store_path().display().to_string()
        }
    }

    /// Directory of the embedded S3 server's files.
    pub fn embedded_s3_dir(&self) -> PathBuf {
        self.data_dir.join("s3")
    }

    /// File holding the embedded S3 server's generated secret (when none is configured).
    pub fn embedded_secret_file(&self) -> PathBuf {
        self.data_dir.join("s3-secret")
    }
}

/// Reads a list of ids given as a list, one number, or a comma-separated string (one id in an
/// environment variable arrives as a number, several as a list).
fn id_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Int(i64),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(Item),
        Many(Vec<Item>),
    }
    let items = match List::deserialize(d)? {
        List::One(item) => vec![item],
        List::Many(items) => items,
    };
    let mut ids = Vec::new();
    for item in items {
        match item {
            Item::Int(n) => ids.push(n),
            Item::Text(text) => {
                for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    ids.push(
                        part.parse()
                            .map_err(|_| D::Error::custom(format!("`{part}` is not an id")))?,
                    );
                }
            }
        }
    }
    Ok(ids)
}

fn is_http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Strips one trailing slash so URLs can be joined with `/`.
pub fn trim_url(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

/// Loads settings the way the binary does: defaults, environment file, `file`, variables.
pub fn load_from_env(file: Option<&Path>) -> Result<Settings, SettingsError> {
    Settings::load(&Sources::from_env(file.map(Path::to_path_buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_vars(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load(&Sources {
            env_vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        })
    }

    const TOKEN: (&str, &str) = ("TG_INGEST__TELEGRAM__TOKEN", "123:secret-token");

    #[test]
    fn defaults_need_only_a_token() {
        let s = with_vars(&[TOKEN]).unwrap();
        assert_eq!(s.workers, 4);
        assert_eq!(s.telegram.poll_timeout_secs, 60);
        assert_eq!(s.telegram.token.expose(), "123:secret-token");
        assert!(s.s3.endpoint.is_empty());
        assert_eq!(s.telegram.download_limit(), Some(20 * 1024 * 1024));
    }

    #[test]
    fn a_vk_only_deployment_needs_no_telegram_token() {
        let vk = [
            ("TG_INGEST__VK__ENABLED", "true"),
            ("TG_INGEST__VK__TOKEN", "vk1.a.community"),
            ("TG_INGEST__VK__GROUP_ID", "42"),
        ];
        let s = with_vars(&vk).unwrap();
        assert!(!s.telegram_enabled() && s.vk.enabled);
        assert_eq!(s.vk.api_url, "https://api.vk.com/method");
        assert_eq!((s.vk.api_version.as_str(), s.vk.wait), ("5.199", 25));
        let err = with_vars(&[vk[0], vk[1]]).unwrap_err().to_string();
        assert!(err.contains("vk.group_id"), "{err}");
        let err = with_vars(&[vk[0]]).unwrap_err().to_string();
        assert!(err.contains("vk.token"), "{err}");
        let both = with_vars(&[vk[0], vk[1], vk[2], TOKEN]).unwrap();
        assert!(both.telegram_enabled() && both.vk.enabled);
        assert!(both.warnings().is_empty());
        // Telegram's allowlists do not restrict VK: said at start.
        for list in [
            "TG_INGEST__SECURITY__ALLOWED_USER_IDS",
            "TG_INGEST__SECURITY__ALLOWED_CHAT_IDS",
        ] {
            let s = with_vars(&[vk[0], vk[1], vk[2], TOKEN, (list, "5")]).unwrap();
            let warnings = s.warnings();
            assert_eq!(warnings.len(), 1, "{list}: {warnings:?}");
            assert!(
                warnings[0].contains("VK bot serves every person"),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn webhook_mode_needs_a_listen_address_a_url_and_a_valid_secret() {
        let s = with_vars(&[TOKEN]).unwrap();
        assert_eq!(s.telegram.mode, TelegramMode::Polling);
        assert_eq!(s.telegram.webhook.path, "/telegram/webhook");
        assert_eq!(s.telegram.webhook.max_connections, 40);
        let full = [
            TOKEN,
            ("TG_INGEST__TELEGRAM__MODE", "webhook"),
            ("TG_INGEST__HTTP__LISTEN", "0.0.0.0:8080"),
            (
                "TG_INGEST__TELEGRAM__WEBHOOK__URL",
                "https://bot.example.com/hook",
            ),
            ("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN", "Abc_123-xyz"),
        ];
        let s = with_vars(&full).unwrap();
        assert_eq!(s.telegram.mode, TelegramMode::Webhook);
        assert_eq!(
            format!("{:?}", s.telegram.webhook.secret_token),
            "[redacted]"
        );
        let without = |key: &str| {
            let vars: Vec<_> = full.iter().copied().filter(|(k, _)| *k != key).collect();
            with_vars(&vars).unwrap_err().to_string()
        };
        assert!(without("TG_INGEST__HTTP__LISTEN").contains("http.listen"));
        assert!(without("TG_INGEST__TELEGRAM__WEBHOOK__URL").contains("telegram.webhook.url"));
        assert!(without("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN")
            .contains("telegram.webhook.secret_token"));
        let mut bad = full.to_vec();
        bad.push(("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN", "has space"));
        let err = with_vars(&bad).unwrap_err().to_string();
        assert!(
            err.contains("telegram.webhook.secret_token") && !err.contains("has space"),
            "{err}"
        );
        let mut clash = full.to_vec();
        clash.push(("TG_INGEST__TELEGRAM__WEBHOOK__PATH", "/metrics"));
        assert!(with_vars(&clash)
            .unwrap_err()
            .to_string()
            .contains("telegram.webhook.path"));
        let err = with_vars(&[("TG_INGEST__TELEGRAM__MODE", "push")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode") || err.contains("push"), "{err}");
    }

    #[test]
    fn a_postgresql_store_needs_an_s3_server_and_its_url_stays_secret() {
        let pg = (
            "TG_INGEST__STORE__URL",
            "postgres://tg:pw-secret@db:5432/tg",
        );
        let err = with_vars(&[TOKEN, pg]).unwrap_err().to_string();
        assert!(
            err.contains("s3.endpoint") && err.contains("replicas cannot share"),
            "{err}"
        );
        let s = with_vars(&[
            TOKEN,
            pg,
            ("TG_INGEST__S3__ENDPOINT", "http://seaweedfs:8333"),
        ])
        .unwrap();
        assert!(s.store.is_postgres());
        assert_eq!(s.store_name(), "postgres://tg@db:5432/tg");
        assert!(!format!("{s:?}").contains("pw-secret"));
        let err = with_vars(&[
            TOKEN,
            ("TG_INGEST__STORE__URL", "mysql://db"),
            ("TG_INGEST__S3__ENDPOINT", "http://seaweedfs:8333"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("store.url"), "{err}");
        assert!(!with_vars(&[TOKEN]).unwrap().store.is_postgres());
    }

    #[test]
    fn missing_token_names_the_key() {
        let err = with_vars(&[]).unwrap_err().to_string();
        assert!(err.contains("telegram.token"), "{err}");
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = with_vars(&[
            TOKEN,
            ("TG_INGEST__WORKERS", "7"),
            ("TG_INGEST__S3__BUCKET", "docs-bucket"),
            ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
            (
                "TG_INGEST__TELEGRAM__ALLOWED_UPDATES",
                "message,callback_query",
            ),
            ("TG_INGEST__SECURITY__ALLOWED_USER_IDS", "5,-7"),
        ])
        .unwrap();
        assert_eq!(s.workers, 7);
        assert_eq!(s.s3.bucket, "docs-bucket");
        assert_eq!(s.telegram.download_limit(), None);
        assert_eq!(s.telegram.allowed_updates, ["message", "callback_query"]);
        assert_eq!(s.security.allowed_user_ids, [5, -7]);
    }

    #[test]
    fn id_lists_take_one_or_many_ids() {
        let s = with_vars(&[
            TOKEN,
            ("TG_INGEST__ARCHIVE__CHATS", "-100500"),
            ("TG_INGEST__BUTTON__ADMINS", "42"),
            ("TG_INGEST__SECURITY__ALLOWED_CHAT_IDS", "1, 2,-100500"),
        ])
        .unwrap();
        assert_eq!(s.archive.chats, [-100500]);
        assert_eq!(s.button.admins, [42]);
        assert_eq!(s.security.allowed_chat_ids, [1, 2, -100500]);
        assert!(s.warnings().is_empty(), "no VK bot: nothing to warn of");
        assert!(with_vars(&[TOKEN, ("TG_INGEST__BUTTON__ADMINS", "1,x")]).is_err());
        let err = with_vars(&[
            TOKEN,
            ("TG_INGEST__ARCHIVE__CHATS", "-100500"),
            ("TG_INGEST__SECURITY__ALLOWED_CHAT_IDS", "1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("archive.chats"),
            "an archived chat must be allowed: {err}"
        );
    }

    #[test]
    fn wrong_type_and_range_name_the_key() {
        let err = with_vars(&[TOKEN, ("TG_INGEST__WORKERS", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("workers"), "{err}");
        let err = with_vars(&[TOKEN, ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("telegram.poll_timeout_secs"), "{err}");
    }

    #[test]
    fn environment_file_layer_applies() {
        let dir = std::env::temp_dir().join(format!("tg-ingest-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("staging.toml"),
            "workers = 2\n[s3]\nbucket = \"stage-docs\"\n",
        )
        .unwrap();
        let s = Settings::load(&Sources {
            settings_dir: Some(dir.clone()),
            environment: Some("staging".into()),
            env_vars: vec![(TOKEN.0.into(), TOKEN.1.into())],
            ..Sources::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(s.workers, 2);
        assert_eq!(s.s3.bucket, "stage-docs");
    }

    #[test]
    fn secrets_never_print() {
        let s = with_vars(&[TOKEN, ("TG_INGEST__S3__SECRET_KEY", "s3-very-secret")]).unwrap();
        let shown = format!("{s:?} {}", s.telegram.token);
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(!shown.contains("s3-very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}

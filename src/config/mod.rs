//! Typed settings, layered from the embedded defaults, an optional per-environment file, an
//! optional explicit file and `TG_INGEST__…` environment variables.
//!
//! This module is the only place that reads environment variables.
//!
//! May import: `util`, `obs`.

mod airtable;
mod archive;
mod s3;
mod store;
mod telegram;
pub mod urls;
mod vk;

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

pub use self::airtable::{AirtableFields, AirtableSettings};
pub use self::archive::{
    ArchiveLayout, ArchiveSettings, ParquetCompression, SegmentCompression, SegmentSettings,
};
pub use self::s3::{EmbeddedS3Settings, S3Settings};
pub use self::store::StoreSettings;
pub use self::telegram::{RateLimitSettings, TelegramMode, TelegramSettings, WebhookSettings};
pub use self::vk::VkSettings;

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

/// The HTTP endpoints.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Address to serve `/healthz` and `/readyz` on; empty: no HTTP server.
    pub listen: String,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// Line format.
    pub format: crate::obs::logging::LogFormat,
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

    /// Checks ranges and required values, section by section, naming the offending key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        airtable::validate(&self.airtable)?;
        archive::validate(&self.archive, &self.security)?;
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
        s3::validate(&self.s3)?;
        vk::validate(&self.vk)?;
        telegram::validate(&self.telegram, &self.http, self.vk.enabled)?;
        store::validate(&self.store, &self.s3)
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

/// The error for `key`, saying what is wrong with its value.
fn invalid(key: &'static str, reason: &str) -> Result<(), SettingsError> {
    Err(SettingsError::Invalid {
        key,
        reason: reason.to_string(),
    })
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
mod tests;

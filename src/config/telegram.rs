//! `[telegram]`: the Bot API client, its rate limits, polling or the webhook; and their checks.

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, is_http_url, HttpSettings, Secret, SettingsError};

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

/// Checks the Telegram section (`vk_enabled`: a VK-only deployment needs no token; the webhook
/// needs `http.listen`).
pub(super) fn validate(
    tg: &TelegramSettings,
    http: &HttpSettings,
    vk_enabled: bool,
) -> Result<(), SettingsError> {
    let rl = &tg.rate_limit;
    if rl.enabled
        && (rl.per_chat_per_sec <= 0.0 || rl.per_group_per_min <= 0.0 || rl.global_per_sec <= 0.0)
    {
        return invalid(
            "telegram.rate_limit",
            "rates must be above 0 (or set enabled = false)",
        );
    }
    let token = tg.token.expose();
    if token.is_empty() && !vk_enabled {
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
    if tg.mode == TelegramMode::Webhook {
        if token.is_empty() {
            return invalid(
                "telegram.mode",
                "is webhook, but telegram.token is empty (the webhook belongs to a bot)",
            );
        }
        if http.listen.is_empty() {
            return invalid(
                "http.listen",
                "is required in webhook mode (deliveries are served there), e.g. \"0.0.0.0:8080\"",
            );
        }
        validate_webhook(&tg.webhook)?;
    }
    if !(1..=100).contains(&tg.poll_timeout_secs) {
        return invalid("telegram.poll_timeout_secs", "must be between 1 and 100");
    }
    if !(1..=100).contains(&tg.poll_limit) {
        return invalid("telegram.poll_limit", "must be between 1 and 100");
    }
    if !is_http_url(&tg.api_url) {
        return invalid("telegram.api_url", "must start with http:// or https://");
    }
    if tg.request_timeout_secs == 0 {
        return invalid("telegram.request_timeout_secs", "must be at least 1");
    }
    let root = std::path::Path::new(&tg.local_files_root);
    if tg.local_bot_api && (!root.is_absolute() || root.parent().is_none()) {
        return invalid(
            "telegram.local_files_root",
            "must be an absolute directory other than / when local_bot_api is on",
        );
    }
    Ok(())
}

/// Checks the webhook, in webhook mode.
fn validate_webhook(wh: &WebhookSettings) -> Result<(), SettingsError> {
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
    if !wh.path.starts_with('/') || ["/healthz", "/readyz", "/metrics"].contains(&wh.path.as_str())
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
    Ok(())
}

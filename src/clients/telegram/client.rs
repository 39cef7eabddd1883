//! A Bot API client over `awc`. One per actor (the HTTP client is not `Send`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::LocalBoxStream;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

mod buttons;
mod download;
mod envelope;

#[cfg(test)]
use self::download::open_local_file;
pub use self::download::Download;
pub use self::envelope::parse_envelope;
use super::error::TelegramError;
use super::types::{File, SentMessage, User, WebhookInfo};
use crate::clients::telegram::ratelimit::{
    acquire, learn_hold, wait_hold, RateLimiter, SharedLimiter,
};
use crate::config::{trim_url, Secret, TelegramSettings};
use crate::obs::metrics::Metrics;
use crate::util::backoff::Backoff;

/// Largest JSON answer read from the Bot API.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A stream of file bytes.
pub type ByteStream = LocalBoxStream<'static, Result<Bytes, TelegramError>>;

/// A Bot API client bound to one token and base URL.
pub struct TelegramClient {
    http: awc::Client,
    api_url: String,
    token: Secret,
    request_timeout: Duration,
    poll_timeout: Duration,
    download_timeout: Duration,
    local_bot_api: bool,
    local_files_root: PathBuf,
    send_retry_for: Duration,
    limiter: SharedLimiter,
    metrics: Arc<Metrics>,
}

impl TelegramClient {
    /// Builds a client from settings.
    pub fn new(settings: &TelegramSettings) -> Self {
        crate::install_tls_provider();
        let poll_timeout = Duration::from_secs(settings.poll_timeout_secs);
        let http = awc::Client::builder()
            .timeout(settings.request_timeout())
            .max_http_version(awc::http::Version::HTTP_11)
            .finish();
        Self {
            http,
            api_url: trim_url(&settings.api_url).to_string(),
            token: settings.token.clone(),
            request_timeout: settings.request_timeout(),
            poll_timeout,
            download_timeout: Duration::from_secs(settings.download_timeout_secs),
            local_bot_api: settings.local_bot_api,
            local_files_root: PathBuf::from(&settings.local_files_root),
            send_retry_for: Duration::from_secs(settings.send_retry_for_secs),
            limiter: RateLimiter::holds_only(),
            metrics: Arc::default(),
        }
    }

    /// Counts retries and rate limits into `metrics` (by default they go nowhere).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Applies the process's shared limiter (message rates and `retry_after` holds).
    pub fn with_limiter(mut self, limiter: SharedLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// Sends through the rate limiter, retrying flood control (`retry_after`), 5xx and network
    /// errors with capped backoff for up to `send_retry_for_secs`.
    async fn send_retrying<T, F, Fut>(&self, chat_id: i64, mut call: F) -> Result<T, TelegramError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TelegramError>>,
    {
        let deadline = Instant::now() + self.send_retry_for;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            acquire(&self.limiter, chat_id).await;
            match self.learn(chat_id, call().await) {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retryable() && e.code() != Some(409) && Instant::now() < deadline =>
                {
                    self.metrics.api_retry("telegram", e.method());
                    // A `retry_after` is now a hold on the chat, which `acquire` waits out.
                    let wait = match e.retry_after() {
                        Some(wait) => wait,
                        None => {
                            let wait = backoff.next_delay();
                            actix_rt::time::sleep(wait).await;
                            wait
                        }
                    };
                    log::warn!(
                        "chat_id={chat_id}: {e}; retrying in {:.1} s",
                        wait.as_secs_f64()
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Passes a result through, teaching the limiter a `retry_after` for `chat_id`.
    fn learn<T>(&self, chat_id: i64, result: Result<T, TelegramError>) -> Result<T, TelegramError> {
        if let Err(e) = &result {
            if let Some(wait) = e.retry_after() {
                learn_hold(&self.limiter, chat_id, wait);
            }
        }
        result
    }

    /// Runs a call that is not a message (no rate slot) once any hold on `chat_id` is over.
    async fn held<T>(
        &self,
        chat_id: i64,
        call: impl Future<Output = Result<T, TelegramError>>,
    ) -> Result<T, TelegramError> {
        wait_hold(&self.limiter, chat_id).await;
        self.learn(chat_id, call.await)
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{}", self.api_url, self.token.expose(), method)
    }

    /// Removes the token from a text that may contain a URL.
    fn redact(&self, text: String) -> String {
        text.replace(self.token.expose(), "[redacted]")
    }

    fn network(&self, method: &'static str, err: impl std::fmt::Display) -> TelegramError {
        TelegramError::Network {
            method,
            detail: self.redact(err.to_string()),
        }
    }

    async fn call<P, R>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Duration,
    ) -> Result<Option<R>, TelegramError>
    where
        P: Serialize,
        R: DeserializeOwned,
    {
        let mut response = self
            .http
            .post(self.method_url(method))
            .timeout(timeout)
            .send_json(params)
            .await
            .map_err(|e| self.network(method, e))?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.network(method, e))?;
        let parsed = parse_envelope(method, status, &body);
        if let Err(TelegramError::RetryAfter { .. }) = &parsed {
            self.metrics.api_rate_limited("telegram", method);
        }
        parsed
    }

    async fn call_required<P, R>(
        &self,
        method: &'static str,
        params: &P,
    ) -> Result<R, TelegramError>
    where
        P: Serialize,
        R: DeserializeOwned,
    {
        self.call(method, params, self.request_timeout)
            .await?
            .ok_or_else(|| TelegramError::InvalidJson {
                method,
                status: 200,
                detail: "missing result".into(),
                raw: String::new(),
            })
    }

    /// `getMe`: checks the token and returns the bot's own user.
    pub async fn get_me(&self) -> Result<User, TelegramError> {
        self.call_required("getMe", &json!({})).await
    }

    /// `deleteWebhook`, keeping pending updates, so `getUpdates` may be used.
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.call::<_, IgnoredAny>(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            self.request_timeout,
        )
        .await
        .map(drop)
    }

    /// `setWebhook`: Telegram delivers updates to `url`, with `secret` in the
    /// `X-Telegram-Bot-Api-Secret-Token` header; pending updates are kept.
    pub async fn set_webhook(
        &self,
        url: &str,
        secret: &Secret,
        allowed_updates: &[String],
        max_connections: u32,
    ) -> Result<(), TelegramError> {
        let params = json!({
            "url": url,
            "secret_token": secret.expose(),
            "allowed_updates": allowed_updates,
            "max_connections": max_connections,
            "drop_pending_updates": false,
        });
        self.call::<_, IgnoredAny>("setWebhook", &params, self.request_timeout)
            .await
            .map(drop)
    }

    /// `getWebhookInfo`: the webhook as Telegram has it.
    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, TelegramError> {
        self.call_required("getWebhookInfo", &json!({})).await
    }

    /// `getUpdates` with long polling; returns the raw JSON of each update.
    pub async fn get_updates(
        &self,
        offset: i64,
        limit: u32,
        allowed_updates: &[String],
    ) -> Result<Vec<Box<RawValue>>, TelegramError> {
        let params = json!({
            "offset": offset,
            "limit": limit,
            "timeout": self.poll_timeout.as_secs(),
            "allowed_updates": allowed_updates,
        });
        let timeout = self.poll_timeout + self.request_timeout;
        Ok(self
            .call("getUpdates", &params, timeout)
            .await?
            .unwrap_or_default())
    }

    /// `sendMessage` with plain text.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        reply_to: Option<i64>,
    ) -> Result<SentMessage, TelegramError> {
        self.send_message_with(chat_id, text, reply_to, None).await
    }

    /// `sendMessage` with plain text and, when given, a `reply_markup` (an inline keyboard).
    pub async fn send_message_with(
        &self,
        chat_id: i64,
        text: &str,
        reply_to: Option<i64>,
        reply_markup: Option<Value>,
    ) -> Result<SentMessage, TelegramError> {
        let mut params = json!({"chat_id": chat_id, "text": text});
        if let Some(id) = reply_to {
            params["reply_parameters"] =
                json!({"message_id": id, "allow_sending_without_reply": true});
        }
        if let Some(markup) = reply_markup {
            params["reply_markup"] = markup;
        }
        self.send_retrying(chat_id, || self.call_required("sendMessage", &params))
            .await
    }

    /// `setMyCommands`: the command menu clients show, as `(command, description)` pairs.
    pub async fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), TelegramError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(command, description)| json!({"command": command, "description": description}))
            .collect();
        self.call::<_, IgnoredAny>(
            "setMyCommands",
            &json!({ "commands": list }),
            self.request_timeout,
        )
        .await
        .map(drop)
    }

    /// `editMessageText` through the rate limiter, once (progress edits are best effort); a
    /// `result` of `null`, `true` or a message are all success.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<(), TelegramError> {
        self.edit_message_with(chat_id, message_id, text, None)
            .await
    }

    /// `editMessageText` with a `reply_markup` when given (without one, the buttons go).
    pub async fn edit_message_with(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
        reply_markup: Option<Value>,
    ) -> Result<(), TelegramError> {
        let mut params = json!({"chat_id": chat_id, "message_id": message_id, "text": text});
        if let Some(markup) = reply_markup {
            params["reply_markup"] = markup;
        }
        acquire(&self.limiter, chat_id).await;
        let result = self
            .call::<_, IgnoredAny>("editMessageText", &params, self.request_timeout)
            .await;
        self.learn(chat_id, result).map(drop)
    }

    /// `getFile` for a file sent in `chat_id`: where it can be downloaded from.
    pub async fn get_file(&self, chat_id: i64, file_id: &str) -> Result<File, TelegramError> {
        let params = json!({"file_id": file_id});
        self.held(chat_id, self.call_required("getFile", &params))
            .await
    }
}

#[cfg(test)]
mod tests;

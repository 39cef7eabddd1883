//! A VK API client over `awc` for a community token. One per actor (the HTTP client is not
//! `Send`); every client of one token shares a [`Pace`], so all VK calls together stay under
//! VK's limit of 20 requests per second per community token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::LocalBoxStream;
use serde_json::Value;

mod download;
mod long_poll;

#[cfg(test)]
use self::download::without_query;
use super::error::VkError;
use crate::config::{trim_url, Secret};
use crate::util::backoff::Backoff;

/// Largest JSON answer read from VK.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Where and as whom the client calls VK.
#[derive(Debug, Clone)]
pub struct VkConfig {
    /// Community access token.
    pub token: Secret,
    /// The community's id.
    pub group_id: i64,
    /// Base URL of the API methods.
    pub api_url: String,
    /// API version sent with every call.
    pub api_version: String,
    /// Long-poll wait.
    pub wait: Duration,
    /// Timeout of ordinary requests.
    pub request_timeout: Duration,
    /// How long sends and edits are retried.
    pub send_retry_for: Duration,
}

impl VkConfig {
    /// The client settings of `vk`; sends are retried for `send_retry_for_secs` (Telegram's
    /// setting, so both platforms retry alike).
    pub fn from_settings(vk: &crate::config::VkSettings, send_retry_for_secs: u64) -> Self {
        Self {
            token: vk.token.clone(),
            group_id: vk.group_id,
            api_url: vk.api_url.clone(),
            api_version: vk.api_version.clone(),
            wait: Duration::from_secs(vk.wait),
            request_timeout: Duration::from_secs(vk.request_timeout_secs),
            send_retry_for: Duration::from_secs(send_retry_for_secs),
        }
    }
}

/// The shared pace of one token's calls: at most one call per `interval`.
#[derive(Debug, Clone)]
pub struct Pace {
    next: Arc<Mutex<Instant>>,
    interval: Duration,
}

impl Pace {
    /// A pace of `per_sec` calls per second.
    pub fn per_sec(per_sec: u32) -> Self {
        Self {
            next: Arc::new(Mutex::new(Instant::now())),
            interval: Duration::from_secs(1) / per_sec.max(1),
        }
    }

    /// Waits for this call's slot.
    pub async fn slot(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            actix_rt::time::sleep(wait).await;
        }
    }
}

/// A stream of file bytes.
pub type VkByteStream = LocalBoxStream<'static, Result<Bytes, VkError>>;

/// The VK API client.
pub struct VkClient {
    http: awc::Client,
    config: VkConfig,
    pace: Pace,
    metrics: std::sync::Arc<crate::obs::metrics::Metrics>,
}

/// Reads VK's `{"response": …}` / `{"error": {…}}` envelope.
pub fn parse_envelope(method: &'static str, status: u16, body: &[u8]) -> Result<Value, VkError> {
    let invalid = |detail: String| VkError::InvalidJson {
        method,
        detail,
        raw: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status != 200 => return Err(VkError::Http { method, status }),
        Err(e) => return Err(invalid(e.to_string())),
    };
    if let Some(error) = value.get("error") {
        return Err(VkError::Api {
            method,
            code: error["error_code"].as_i64().unwrap_or(0),
            message: error["error_msg"].as_str().unwrap_or_default().to_string(),
        });
    }
    if status != 200 {
        return Err(VkError::Http { method, status });
    }
    match value.get("response") {
        Some(response) => Ok(response.clone()),
        None => Err(invalid("no response field".into())),
    }
}

/// A `random_id` for `messages.send` derived from what the message answers, so a reply sent
/// again after a replay carries the same id and VK delivers it once.
pub fn random_id(seed: &str) -> i32 {
    // FNV-1a, folded into VK's positive int32 range.
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    ((hash ^ (hash >> 32)) & 0x7fff_ffff) as i32
}

impl VkClient {
    /// A client with its own HTTP connection pool and the token's shared pace.
    pub fn new(config: VkConfig, pace: Pace) -> Self {
        crate::install_tls_provider();
        let http = awc::Client::builder()
            .timeout(config.request_timeout)
            .finish();
        Self {
            http,
            config: VkConfig {
                api_url: trim_url(&config.api_url).to_string(),
                ..config
            },
            pace,
            metrics: Default::default(),
        }
    }

    /// Counts retries and rate limits into `metrics` (by default they go nowhere).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::obs::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Calls one method once; the token and version travel in the form body, never the URL.
    pub async fn call(
        &self,
        method: &'static str,
        params: &[(&str, String)],
    ) -> Result<Value, VkError> {
        self.pace.slot().await;
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("access_token", self.config.token.expose().to_string()));
        form.push(("v", self.config.api_version.clone()));
        let url = format!("{}/{method}", self.config.api_url);
        let mut response = self
            .http
            .post(url)
            .send_form(&form)
            .await
            .map_err(|e| self.network(method, e))?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.network(method, e))?;
        let parsed = parse_envelope(method, status, &body);
        if matches!(&parsed, Err(e) if e.rate_limited_for().is_some()) {
            self.metrics.api_rate_limited("vk", method);
        }
        parsed
    }

    fn network(&self, method: &'static str, e: impl std::fmt::Display) -> VkError {
        VkError::Network {
            method,
            detail: e
                .to_string()
                .replace(self.config.token.expose(), "[redacted]"),
        }
    }

    /// Calls a method, retrying VK's rate limits, 5xx and network errors with a capped
    /// backoff for up to `send_retry_for`.
    pub async fn call_retrying(
        &self,
        method: &'static str,
        params: &[(&str, String)],
    ) -> Result<Value, VkError> {
        let deadline = Instant::now() + self.config.send_retry_for;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            match self.call(method, params).await {
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    self.metrics.api_retry("vk", method);
                    let wait = e.rate_limited_for().unwrap_or_else(|| backoff.next_delay());
                    log::warn!("{e}; retrying in {:.1} s", wait.as_secs_f64());
                    actix_rt::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// `groups.getById`: the community's name, which checks the token and the group.
    pub async fn community_name(&self) -> Result<String, VkError> {
        let group = self.config.group_id.to_string();
        let response = self.call("groups.getById", &[("group_id", group)]).await?;
        // Since 5.194 the answer is {"groups": [...]}; before, the array itself.
        let groups = response.get("groups").unwrap_or(&response);
        let first = groups.get(0).ok_or_else(|| VkError::InvalidJson {
            method: "groups.getById",
            detail: "no community in the answer".into(),
            raw: response.to_string().chars().take(200).collect(),
        })?;
        if first["id"].as_i64() != Some(self.config.group_id) {
            return Err(VkError::Api {
                method: "groups.getById",
                code: super::error::codes::ACCESS_DENIED,
                message: format!(
                    "the token belongs to community {}, not {}",
                    first["id"], self.config.group_id
                ),
            });
        }
        Ok(first["name"].as_str().unwrap_or_default().to_string())
    }

    /// `messages.send` to a dialog; answers the message's number in the dialog
    /// (`conversation_message_id`, which edits and presses use). `random_id` makes a repeated
    /// send a no-op on VK's side; `keyboard` is VK's keyboard JSON.
    pub async fn send(
        &self,
        peer_id: i64,
        text: &str,
        random_id: i32,
        keyboard: Option<&Value>,
        reply_to: Option<i64>,
    ) -> Result<i64, VkError> {
        let mut params = vec![
            ("peer_ids", peer_id.to_string()),
            ("random_id", random_id.to_string()),
            ("message", text.to_string()),
        ];
        if let Some(keyboard) = keyboard {
            params.push(("keyboard", keyboard.to_string()));
        }
        if let Some(id) = reply_to.filter(|id| *id > 0) {
            params.push(("reply_to", id.to_string()));
        }
        let response = self.call_retrying("messages.send", &params).await?;
        response[0]["conversation_message_id"]
            .as_i64()
            .ok_or_else(|| VkError::InvalidJson {
                method: "messages.send",
                detail: "no conversation_message_id in the answer".into(),
                raw: response.to_string().chars().take(200).collect(),
            })
    }

    /// `messages.edit` of one of the community's messages, by its number in the dialog (tried
    /// once: edits are best effort).
    pub async fn edit(
        &self,
        peer_id: i64,
        message_id: i64,
        text: &str,
        keyboard: Option<&Value>,
    ) -> Result<(), VkError> {
        let mut params = vec![
            ("peer_id", peer_id.to_string()),
            ("conversation_message_id", message_id.to_string()),
            ("message", text.to_string()),
        ];
        if let Some(keyboard) = keyboard {
            params.push(("keyboard", keyboard.to_string()));
        }
        self.call("messages.edit", &params).await.map(drop)
    }

    /// `messages.sendMessageEventAnswer`: answers a callback button press with a snackbar.
    pub async fn answer_event(
        &self,
        event_id: &str,
        user_id: i64,
        peer_id: i64,
        text: &str,
    ) -> Result<(), VkError> {
        let data = if text.is_empty() {
            String::new()
        } else {
            serde_json::json!({"type": "show_snackbar", "text": text}).to_string()
        };
        let mut params = vec![
            ("event_id", event_id.to_string()),
            ("user_id", user_id.to_string()),
            ("peer_id", peer_id.to_string()),
        ];
        if !data.is_empty() {
            params.push(("event_data", data));
        }
        self.call("messages.sendMessageEventAnswer", &params)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests;

//! The Bots Long Poll API: whether it is on, a session, and one long poll.

use super::{VkClient, MAX_RESPONSE_BYTES};
use crate::clients::vk::error::VkError;
use crate::clients::vk::types::{LongPollServer, PollAnswer};

impl VkClient {
    /// `groups.getLongPollSettings`: whether the Bots Long Poll API is on, sends `message_new`
    /// and sends `message_event` (button presses).
    pub async fn long_poll_ready(&self) -> Result<(bool, bool, bool), VkError> {
        let group = self.config.group_id.to_string();
        let response = self
            .call("groups.getLongPollSettings", &[("group_id", group)])
            .await?;
        let enabled = response["is_enabled"].as_bool().unwrap_or(false);
        let on = |event: &str| {
            let flag = &response["events"][event];
            flag.as_i64() == Some(1) || flag.as_bool() == Some(true)
        };
        Ok((enabled, on("message_new"), on("message_event")))
    }

    /// `groups.getLongPollServer`: a new session (server, key, ts).
    pub async fn long_poll_server(&self) -> Result<LongPollServer, VkError> {
        let group = self.config.group_id.to_string();
        let response = self
            .call("groups.getLongPollServer", &[("group_id", group)])
            .await?;
        serde_json::from_value(response.clone()).map_err(|e| VkError::InvalidJson {
            method: "groups.getLongPollServer",
            detail: e.to_string(),
            raw: String::new(),
        })
    }

    /// One long poll: `{server}?act=a_check&key=…&ts=…&wait=…`. The URL holds the session
    /// key and is never logged.
    pub async fn check(&self, session: &LongPollServer) -> Result<PollAnswer, VkError> {
        const METHOD: &str = "long poll";
        self.pace.slot().await;
        let url = format!(
            "{}?act=a_check&key={}&ts={}&wait={}",
            session.server,
            encode(&session.key),
            encode(&session.ts),
            self.config.wait.as_secs()
        );
        let redact = |e: String| e.replace(&session.key, "[redacted]");
        let mut response = self
            .http
            .get(url)
            .timeout(self.config.wait + self.config.request_timeout)
            .send()
            .await
            .map_err(|e| VkError::Network {
                method: METHOD,
                detail: redact(e.to_string()),
            })?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| VkError::Network {
                method: METHOD,
                detail: redact(e.to_string()),
            })?;
        if status != 200 {
            return Err(VkError::Http {
                method: METHOD,
                status,
            });
        }
        PollAnswer::parse(&body).map_err(|e| VkError::InvalidJson {
            method: METHOD,
            detail: e.to_string(),
            raw: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        })
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    crate::clients::s3::objects::encode_key(value).replace('/', "%2F")
}

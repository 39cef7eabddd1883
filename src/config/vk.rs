//! `[vk]`: the same bot on a VK community (Bots Long Poll API); and its checks.

use serde::Deserialize;

use super::{invalid, Secret, SettingsError};

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

/// Checks the VK section, when the VK bot is on.
pub(super) fn validate(vk: &VkSettings) -> Result<(), SettingsError> {
    if !vk.enabled {
        return Ok(());
    }
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
    Ok(())
}

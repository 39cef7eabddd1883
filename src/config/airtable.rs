//! `[airtable]`: where presses of the "go" button become rows; and its checks.

use serde::Deserialize;

use super::{invalid, is_http_url, Secret, SettingsError};

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

/// Checks the Airtable section (token, URL and table only once a base is set).
pub(super) fn validate(at: &AirtableSettings) -> Result<(), SettingsError> {
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
    Ok(())
}

//! The Airtable Web API boundary: idempotent batch upserts, the start-up check and typed errors.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::config::{trim_url, AirtableSettings, Secret};

/// A failed Airtable request. Texts never contain the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AirtableError {
    /// Airtable answered with an error status.
    #[error("Airtable answered {status} {kind}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Airtable's error type, e.g. `INVALID_VALUE_FOR_COLUMN`.
        kind: String,
        /// Airtable's message.
        message: String,
    },
    /// The request did not complete.
    #[error("Airtable unreachable: {0}")]
    Network(String),
}

impl AirtableError {
    /// Errors about the rows sent (invalid data, a request too large) that retrying will not
    /// heal: the row alone is set aside.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Api {
                status: 400 | 413 | 422,
                ..
            }
        )
    }

    /// Errors about the settings, not the rows: a bad token, a missing permission, an unknown
    /// base or table. Delivery pauses with a loud error and every row is kept until an
    /// operator fixes the settings.
    pub fn pauses_sink(&self) -> bool {
        matches!(
            self,
            Self::Api {
                status: 401 | 403 | 404,
                ..
            }
        )
    }

    /// Answers that prove the settings wrong (token, permissions, base, table or fields), as
    /// opposed to Airtable being unavailable or busy.
    pub fn proves_settings_wrong(&self) -> bool {
        matches!(
            self,
            Self::Api {
                status: 401 | 403 | 404 | 422,
                ..
            }
        )
    }

    /// Whether Airtable asks to slow down (then it wants 30 s of silence).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Api { status: 429, .. })
    }
}

/// Reads Airtable's error body, which comes as `{"error":{"type","message"}}`,
/// `{"error":"NOT_FOUND"}` or `{"errors":[{"error","message"}]}`.
pub fn parse_error(status: u16, body: &[u8]) -> AirtableError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (kind, message) = match (&v["error"], &v["errors"][0]) {
        (Value::Object(e), _) => (e.get("type").cloned(), e.get("message").cloned()),
        (Value::String(s), _) => (Some(json!(s)), v.get("message").cloned()),
        (_, Value::Object(e)) => (e.get("error").cloned(), e.get("message").cloned()),
        _ => (None, None),
    };
    let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_string));
    AirtableError::Api {
        status,
        kind: text(kind).unwrap_or_else(|| format!("HTTP_{status}")),
        message: text(message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
    }
}

/// A client for one table. Not `Send` (one per actor).
pub struct AirtableClient {
    http: awc::Client,
    table_url: String,
    token: Secret,
    merge_fields: Vec<String>,
    timeout: Duration,
}

impl AirtableClient {
    /// A client for the table in settings.
    pub fn new(settings: &AirtableSettings) -> Self {
        crate::install_tls_provider();
        let timeout = Duration::from_secs(settings.request_timeout_secs);
        Self {
            http: awc::Client::builder().timeout(timeout).finish(),
            table_url: format!(
                "{}/v0/{}/{}",
                trim_url(&settings.api_url),
                utf8_percent_encode(&settings.base_id, NON_ALPHANUMERIC),
                utf8_percent_encode(&settings.table, NON_ALPHANUMERIC)
            ),
            token: settings.token.clone(),
            merge_fields: settings.merge_fields.clone(),
            timeout,
        }
    }

    async fn send(
        &self,
        request: awc::ClientRequest,
        body: Option<&Value>,
    ) -> Result<Value, AirtableError> {
        let request = request
            .bearer_auth(self.token.expose())
            .timeout(self.timeout);
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| AirtableError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .map_err(|e| AirtableError::Network(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(parse_error(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| AirtableError::Network(format!("invalid JSON answer: {e}")))
    }

    /// Creates or updates rows (`PATCH` with `performUpsert`), so sending the same rows again
    /// never creates a second copy. `records` are `{"fields": {...}}` objects, at most 10.
    pub async fn upsert(&self, records: &[Value]) -> Result<(), AirtableError> {
        let body = json!({
            "performUpsert": {"fieldsToMergeOn": self.merge_fields},
            "records": records,
            "typecast": true,
        });
        self.send(self.http.patch(&self.table_url), Some(&body))
            .await
            .map(drop)
    }

    /// A cheap read that checks the token, base and table.
    pub async fn check(&self) -> Result<(), AirtableError> {
        let url = format!("{}?maxRecords=1", self.table_url);
        self.send(self.http.get(url), None).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shapes_are_read() {
        let e = parse_error(
            422,
            br#"{"error":{"type":"INVALID_VALUE_FOR_COLUMN","message":"Field \"triggered_at\" cannot accept the provided value"}}"#,
        );
        assert!(e.is_permanent());
        assert!(e.to_string().contains("INVALID_VALUE_FOR_COLUMN"));
        let e = parse_error(404, br#"{"error":"NOT_FOUND"}"#);
        assert!(
            !e.is_permanent() && e.pauses_sink() && e.to_string().contains("NOT_FOUND"),
            "an unknown base or table is about the settings, not the row"
        );
        let e = parse_error(401, br#"{"error":{"type":"AUTHENTICATION_REQUIRED"}}"#);
        assert!(!e.is_permanent() && e.pauses_sink());
        let e = parse_error(
            429,
            br#"{"errors":[{"error":"RATE_LIMIT_REACHED","message":"Rate limit exceeded"}]}"#,
        );
        assert!(e.is_rate_limited() && !e.is_permanent());
        let e = parse_error(502, b"<html>bad gateway</html>");
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("HTTP_502"));
    }
}

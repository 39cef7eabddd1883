//! The answer envelope of every Bot API method, read into the result or a typed error.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::clients::telegram::error::TelegramError;

/// Answer envelope of every Bot API method.
#[derive(Deserialize)]
struct Envelope<R> {
    ok: bool,
    result: Option<R>,
    description: Option<String>,
    error_code: Option<u16>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

/// Turns a raw answer into the result or a typed error.
pub fn parse_envelope<R: DeserializeOwned>(
    method: &'static str,
    status: u16,
    body: &[u8],
) -> Result<Option<R>, TelegramError> {
    let envelope: Envelope<R> =
        serde_json::from_slice(body).map_err(|e| TelegramError::InvalidJson {
            method,
            status,
            detail: e.to_string(),
            raw: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        })?;
    if envelope.ok {
        return Ok(envelope.result);
    }
    let code = envelope.error_code.unwrap_or(status);
    if let Some(seconds) = envelope.parameters.and_then(|p| p.retry_after) {
        return Err(TelegramError::RetryAfter { method, seconds });
    }
    Err(TelegramError::Api {
        method,
        code,
        description: envelope.description.unwrap_or_default(),
    })
}

//! Downloading a document from its time-limited, signed URL (never logged).

use std::time::Duration;

use futures_util::stream::StreamExt;

use super::{VkByteStream, VkClient};
use crate::clients::vk::error::VkError;

impl VkClient {
    /// Streams a document from its URL (following redirects); answers the bytes and the
    /// announced length. The URL is time-limited and carries a signature: it is never logged.
    pub async fn download(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(VkByteStream, Option<u64>), VkError> {
        const METHOD: &str = "download";
        self.pace.slot().await;
        let response = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| VkError::Network {
                method: METHOD,
                detail: without_query(&e.to_string()),
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(VkError::Http {
                method: METHOD,
                status,
            });
        }
        let length = response
            .headers()
            .get(awc::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response
            .map(|chunk| {
                chunk.map_err(|e| VkError::Network {
                    method: METHOD,
                    detail: e.to_string(),
                })
            })
            .boxed_local();
        Ok((bytes, length))
    }
}

/// A text with any URL query (signatures, keys) cut off.
pub(super) fn without_query(text: &str) -> String {
    match text.find('?') {
        Some(i) => format!("{}?[…]", &text[..i]),
        None => text.to_string(),
    }
}

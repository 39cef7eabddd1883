//! Server-side operations on stored objects: whether a key exists, a copy that never moves the
//! bytes through the service (`CopyObject`, or `UploadPartCopy` parts above the single-copy
//! limit of 5 GiB), and deletion.
//!
//! Copies are signed here (SigV4 in the headers) rather than by rust-s3, whose copy sends the
//! source key unencoded: S3 expects `x-amz-copy-source` percent-encoded, and names with spaces
//! and Cyrillic letters are common.

use std::collections::HashMap;
use std::time::Duration;

use s3::error::S3Error;
use s3::serde_types::Part;
use s3::Bucket;

pub use super::sigv4::encode_key;
use super::sigv4::SignedPut;
use crate::clients::s3::StorageError;

/// S3's bounds on multipart parts.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// An object as HEAD describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`, names without the prefix).
    pub metadata: HashMap<String, String>,
}

/// The object under `key`, or `None` when there is none.
pub async fn head(bucket: &Bucket, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
    match bucket.head_object(key).await {
        Ok((info, status)) if (200..300).contains(&status) => Ok(Some(ObjectInfo {
            size: info.content_length.unwrap_or(0).max(0) as u64,
            content_type: info.content_type,
            metadata: info.metadata.unwrap_or_default(),
        })),
        Ok((_, 404)) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
        Ok((_, status)) => Err(StorageError::Request {
            op: "head object",
            key: key.to_string(),
            status: Some(status),
            transport: false,
            detail: format!("HTTP {status}"),
        }),
        Err(e) => Err(StorageError::from_s3("head object", key, e)),
    }
}

/// Deletes `key`; deleting a key that is not there succeeds.
pub async fn delete(bucket: &Bucket, key: &str) -> Result<(), StorageError> {
    match bucket.delete_object(key).await {
        Ok(_) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(()),
        Err(e) => Err(StorageError::from_s3("delete object", key, e)),
    }
}

/// How a copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes copied (server-side).
    pub bytes: u64,
    /// `UploadPartCopy` parts used; 0 for a single `CopyObject`.
    pub parts: u32,
}

/// Copies server-side, keeping content type and metadata.
pub struct Copier<'a> {
    /// The bucket (source and destination).
    pub bucket: &'a Bucket,
    /// HTTP client of the copy requests.
    pub http: &'a reqwest::Client,
    /// Largest object copied with one `CopyObject`; larger ones are copied in parts.
    pub single_max: u64,
    /// Preferred part size of a multipart copy.
    pub part_size: u64,
}

impl Copier<'_> {
    /// The bucket of a multipart copy of an object described by `info`: its metadata and
    /// content type go with the upload's creation (a part copy carries none).
    pub fn multipart_bucket(&self, to: &str, info: &ObjectInfo) -> Result<Bucket, StorageError> {
        let mut headers = http::HeaderMap::new();
        for (name, value) in &info.metadata {
            let name = http::HeaderName::try_from(format!("x-amz-meta-{name}"));
            if let (Ok(name), Ok(value)) = (name, http::HeaderValue::from_str(value)) {
                headers.insert(name, value);
            }
        }
        self.bucket
            .with_extra_headers(headers)
            .map_err(|e| StorageError::from_s3("initiate multipart copy", to, e))
    }

    /// Copies `from` into the open multipart upload `upload_id` of `to`, part by part;
    /// answers the parts to complete it with.
    pub async fn copy_parts(
        &self,
        from: &str,
        to: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<Part>, StorageError> {
        let part = self.part_size.max(MIN_PART).max(size.div_ceil(MAX_PARTS));
        let mut parts = Vec::new();
        let mut start = 0u64;
        while start < size {
            let end = (start + part).min(size) - 1;
            let number = parts.len() as u32 + 1;
            fail::fail_point!("copy.part");
            let etag = self
                .copy_request(to, from, Some((upload_id, number, start, end)))
                .await?;
            parts.push(Part {
                part_number: number,
                etag,
            });
            start = end + 1;
        }
        Ok(parts)
    }

    /// One `CopyObject` (no part) or `UploadPartCopy`; returns the ETag it reports.
    pub async fn copy_request(
        &self,
        to: &str,
        from: &str,
        part: Option<(&str, u32, u64, u64)>,
    ) -> Result<String, StorageError> {
        let op = if part.is_some() {
            "upload part copy"
        } else {
            "copy object"
        };
        let fail = |status: Option<u16>, transport: bool, detail: String| StorageError::Request {
            op,
            key: to.to_string(),
            status,
            transport,
            detail,
        };
        let source = format!("/{}/{}", self.bucket.name(), encode_key(from));
        let mut headers = vec![("x-amz-copy-source".to_string(), source)];
        let mut query = Vec::new();
        if let Some((upload_id, number, start, end)) = part {
            headers.push((
                "x-amz-copy-source-range".to_string(),
                format!("bytes={start}-{end}"),
            ));
            query.push(("partNumber".to_string(), number.to_string()));
            query.push(("uploadId".to_string(), upload_id.to_string()));
        }
        let access = self
            .bucket
            .access_key()
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let secret = self
            .bucket
            .secret_key()
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let request = SignedPut {
            base_url: self.bucket.url(),
            host: self.bucket.host(),
            region: self.bucket.region().to_string(),
            key: to.to_string(),
            query,
            headers,
        };
        let (url, headers) =
            request.sign(&access, &secret, crate::util::clock::now_millis() / 1000);
        let mut builder = self.http.put(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let (status, body) = answer(builder, fail).await?;
        // A copy can fail after S3 answered 200: the error is then in the body.
        if !(200..300).contains(&status) || body.contains("<Error>") {
            let status = if (200..300).contains(&status) {
                500
            } else {
                status
            };
            return Err(fail(Some(status), false, error_code(&body)));
        }
        Ok(xml_value(&body, "ETag").unwrap_or_default())
    }
}

/// The ids of the multipart uploads the server has open for exactly `key`
/// (`ListMultipartUploads` with the key as prefix). Read from the XML directly: rust-s3's own
/// listing cannot parse every server's answer (SeaweedFS leaves out `StorageClass`).
pub async fn open_uploads_of(bucket: &Bucket, key: &str) -> Result<Vec<String>, StorageError> {
    let fail = |status: Option<u16>, transport: bool, detail: String| StorageError::Request {
        op: "list multipart uploads",
        key: key.to_string(),
        status,
        transport,
        detail,
    };
    let query = HashMap::from([
        ("uploads".to_string(), String::new()),
        ("prefix".to_string(), key.to_string()),
    ]);
    let url = bucket
        .presign_get("/", 60, Some(query))
        .await
        .map_err(|e| fail(None, false, e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(None, false, e.to_string()))?;
    let (status, body) = answer(client.get(url), fail).await?;
    if !(200..300).contains(&status) {
        return Err(fail(Some(status), false, error_code(&body)));
    }
    Ok(uploads_in(&body)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, id)| id)
        .collect())
}

/// Sends a request; answers its status and body. A request that broke off fails as a
/// transport error, made by `fail` (status, transport, detail).
async fn answer(
    request: reqwest::RequestBuilder,
    fail: impl Fn(Option<u16>, bool, String) -> StorageError,
) -> Result<(u16, String), StorageError> {
    let response = request
        .send()
        .await
        .map_err(|e| fail(None, true, e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| fail(Some(status), true, e.without_url().to_string()))?;
    Ok((status, body))
}

/// `(key, upload id)` of each `<Upload>` of a `ListMultipartUploads` answer.
fn uploads_in(body: &str) -> Vec<(String, String)> {
    body.split("<Upload>")
        .skip(1)
        .filter_map(|upload| {
            let upload = upload.split("</Upload>").next()?;
            let text = |tag: &str| {
                let open = format!("<{tag}>");
                let start = upload.find(&open)? + open.len();
                let end = upload[start..].find(&format!("</{tag}>"))? + start;
                Some(xml_unescape(&upload[start..end]))
            };
            Some((text("Key")?, text("UploadId")?))
        })
        .collect()
}

/// Text of an XML element with its predefined entities (and `&#34;`) decoded, `&amp;` last.
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `Code` and `Message` of an S3 error body, or its start.
fn error_code(body: &str) -> String {
    match (xml_value(body, "Code"), xml_value(body, "Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body.chars().take(200).collect(),
    }
}

/// The text of the first `<tag>` element, entities for quotes resolved.
fn xml_value(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(
        body[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&amp;", "&"),
    )
}

/// Timeout of copy requests: a server-side copy of gigabytes takes a while.
pub fn copy_timeout(request_timeout: Duration) -> Duration {
    request_timeout.max(Duration::from_secs(600))
}

#[cfg(test)]
mod tests;

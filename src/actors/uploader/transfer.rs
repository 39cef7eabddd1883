//! One attempt at storing one file: download from Telegram or VK, verify, upload to S3.
//!
//! The download is cut into parts of `s3.part_size_mib`; up to `s3.parts_in_flight` parts are
//! sent to S3 while the next one is read, so memory stays at about
//! `part_size * (parts_in_flight + 1)` whatever the file size. A file smaller than one part is
//! stored with a single PUT. Every byte is counted and hashed on the way: a download whose
//! length differs from its `Content-Length` or from Telegram's `file_size` fails before the
//! object is completed. Each request carries `Content-MD5` and the signed payload SHA-256, which
//! the server checks; the SHA-256 of the whole file is stored as `x-amz-meta-sha256`.
//! Multipart upload ids are recorded in the store while open, and a failed upload is aborted
//! (retried), so none is left behind.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use s3::serde_types::Part;
use s3::Bucket;
use sha2::Digest;

use crate::actors::uploader::{Upload, UploadError, UploadProgress, UploadReport};
use crate::clients::s3::StorageError;
use crate::clients::telegram::{Download, TelegramClient, TelegramError};
use crate::clients::vk::{VkClient, VkError};
use crate::domain::chat::Platform;
use crate::store::OpenUpload;
use crate::util::hex;

use super::ledger::Ledger;
use super::verify::{rechunk, verified, Tally};

/// Metadata header holding the SHA-256 of the whole object, lowercase hex.
pub const SHA256_META: &str = "x-amz-meta-sha256";

/// Everything one upload needs, detached from the actor so uploads run concurrently.
pub struct Transfer {
    /// Telegram client of the uploader.
    pub telegram: Rc<TelegramClient>,
    /// VK client of the uploader, when the VK bot runs.
    pub vk: Option<Rc<VkClient>>,
    /// Timeout of a whole download from VK.
    pub download_timeout: Duration,
    /// The documents bucket.
    pub bucket: Rc<Bucket>,
    /// Where open multipart uploads are recorded, as whose.
    pub ledger: Ledger,
    /// Part size in bytes.
    pub part_size: usize,
    /// Parts sent at once.
    pub parts_in_flight: usize,
}

impl Transfer {
    /// One attempt at storing `msg`'s file.
    pub async fn run(&self, msg: &Upload, started: Instant) -> Result<UploadReport, UploadError> {
        let (download, size) = match msg.platform {
            Platform::Telegram => self.download_telegram(msg).await?,
            Platform::Vk => self.download_vk(msg).await?,
        };
        let mut expected = Vec::new();
        if let Some(n) = download.length {
            expected.push((n, "Content-Length"));
        }
        if let Some(n) = size {
            expected.push((n, "file_size"));
        }
        let tally = Rc::new(RefCell::new(Tally::default()));
        let bytes = verified(download.bytes, expected, tally.clone());
        let content_type = safe_content_type(msg.content_type.as_deref());
        let mut parts = Box::pin(rechunk(bytes, self.part_size));
        let first = parts.try_next().await?.unwrap_or_default();
        let multipart = first.len() == self.part_size;
        let (bytes, count, sha256) = if !multipart {
            // The part was read to the end of the stream, so the tally is final.
            let sha256 = hex(&tally.borrow().sha.clone().finalize());
            let mut headers = http::HeaderMap::new();
            headers.insert(SHA256_META, header(&msg.key, &sha256)?);
            self.bucket
                .put_object_with_content_type_and_headers(
                    &msg.key,
                    &first,
                    content_type,
                    Some(headers),
                )
                .await
                .map_err(|e| StorageError::from_s3("put", &msg.key, e))?;
            (first.len() as u64, 1, sha256)
        } else {
            let all = stream::once(async { Ok(first) }).chain(parts);
            let (bytes, count) = self.multipart(msg, content_type, size, all, &tally).await?;
            let sha256 = hex(&tally.borrow().sha.clone().finalize());
            self.set_sha256(&msg.key, content_type, &sha256).await?;
            (bytes, count, sha256)
        };
        msg.progress
            .do_send(UploadProgress::bytes(msg.ticket, bytes, Some(bytes)));
        Ok(UploadReport {
            key: msg.key.clone(),
            bytes,
            parts: count,
            multipart,
            sha256,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The download of a Telegram file and the size Telegram announced.
    async fn download_telegram(
        &self,
        msg: &Upload,
    ) -> Result<(Download, Option<u64>), UploadError> {
        let file = self
            .telegram
            .get_file(msg.chat_id, &msg.file_id)
            .await
            .map_err(|e| match &e {
                TelegramError::Api { description, .. }
                    if description.contains("file is too big") =>
                {
                    UploadError::TooBig
                }
                _ => UploadError::Telegram(e),
            })?;
        let path = file.file_path.ok_or_else(|| {
            UploadError::Telegram(TelegramError::Api {
                method: "getFile",
                code: 400,
                description: "no file_path in the answer".into(),
            })
        })?;
        let size = file.file_size.or(msg.expected_size);
        let download = self.telegram.download(msg.chat_id, &path).await?;
        Ok((download, size))
    }

    /// The download of a VK document from its URL; the size is the one its message gave.
    async fn download_vk(&self, msg: &Upload) -> Result<(Download, Option<u64>), UploadError> {
        let Some(vk) = &self.vk else {
            return Err(UploadError::Vk(VkError::Network {
                method: "download",
                detail: "the VK client is not configured".into(),
            }));
        };
        let (bytes, length) = vk
            .download(&msg.file_id, self.download_timeout)
            .await
            .map_err(UploadError::Vk)?;
        // The pipeline counts and verifies bytes as one stream type; a break on the way is a
        // network failure of the download, retried like Telegram's.
        let bytes = bytes
            .map(|chunk| {
                chunk.map_err(|e| TelegramError::Network {
                    method: "download",
                    detail: e.to_string(),
                })
            })
            .boxed_local();
        Ok((Download { bytes, length }, msg.expected_size))
    }

    async fn multipart(
        &self,
        msg: &Upload,
        content_type: &str,
        total: Option<u64>,
        parts: impl Stream<Item = Result<Vec<u8>, TelegramError>>,
        tally: &RefCell<Tally>,
    ) -> Result<(u64, u32), UploadError> {
        let key = msg.key.as_str();
        // The intent first: a kill right after the server creates the upload leaves a record
        // that finds it.
        let intent = self.ledger.intent(&self.bucket.name(), key).await?;
        let upload = match self
            .bucket
            .initiate_multipart_upload(key, content_type)
            .await
        {
            Ok(upload) => upload,
            Err(e) => {
                self.ledger
                    .create_failed(&self.bucket, &intent, key, &e)
                    .await;
                return Err(StorageError::from_s3("initiate multipart upload", key, e).into());
            }
        };
        let open = OpenUpload {
            upload_id: upload.upload_id,
            bucket: self.bucket.name(),
            key: key.to_string(),
        };
        fail::fail_point!("upload.after_create");
        if !self.ledger.created(&intent, &open.upload_id).await {
            // Unrecorded: aborted now (the intent stays until the abort is done).
            let intent = OpenUpload {
                upload_id: intent,
                ..open.clone()
            };
            if self.ledger.abort(&self.bucket, &open).await {
                self.ledger.closed(&intent.upload_id);
            }
            return Err(UploadError::Unavailable);
        }
        let result = self
            .send_parts(msg, content_type, total, &open.upload_id, parts)
            .await;
        let result = match result {
            Ok((etags, bytes)) => {
                debug_assert_eq!(bytes, tally.borrow().bytes);
                let count = etags.len() as u32;
                self.bucket
                    .complete_multipart_upload(key, &open.upload_id, etags)
                    .await
                    .map(|_| (bytes, count))
                    .map_err(|e| StorageError::from_s3("complete multipart upload", key, e).into())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(done) => {
                self.ledger.closed(&open.upload_id);
                Ok(done)
            }
            Err(e) => {
                self.ledger.abort(&self.bucket, &open).await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        msg: &Upload,
        content_type: &str,
        total: Option<u64>,
        upload_id: &str,
        parts: impl Stream<Item = Result<Vec<u8>, TelegramError>>,
    ) -> Result<(Vec<Part>, u64), UploadError> {
        let key = msg.key.as_str();
        let uploads = parts
            .enumerate()
            .map(|(i, chunk)| async move {
                let chunk = chunk?;
                let len = chunk.len() as u64;
                let number = i as u32 + 1;
                let part = self
                    .bucket
                    .put_multipart_chunk(chunk, key, number, upload_id, content_type)
                    .await
                    .map_err(|e| StorageError::from_s3("upload part", key, e))?;
                Ok::<_, UploadError>((part, len))
            })
            .buffered(self.parts_in_flight);
        let mut uploads = std::pin::pin!(uploads);
        let mut etags = Vec::new();
        let mut bytes = 0u64;
        while let Some(done) = uploads.next().await {
            let (part, len) = done?;
            bytes += len;
            etags.push(part);
            msg.progress
                .do_send(UploadProgress::bytes(msg.ticket, bytes, total));
        }
        Ok((etags, bytes))
    }

    /// Stores the SHA-256 on a completed multipart object: a server-side copy onto itself that
    /// replaces the metadata (no bytes pass through the service).
    async fn set_sha256(
        &self,
        key: &str,
        content_type: &str,
        sha256: &str,
    ) -> Result<(), UploadError> {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-metadata-directive", header(key, "REPLACE")?);
        headers.insert(SHA256_META, header(key, sha256)?);
        headers.insert("content-type", header(key, content_type)?);
        let bucket = self
            .bucket
            .with_extra_headers(headers)
            .map_err(|e| StorageError::from_s3("copy (metadata)", key, e))?;
        bucket
            .copy_object_internal(key, key)
            .await
            .map(drop)
            .map_err(|e| StorageError::from_s3("copy (metadata)", key, e).into())
    }
}

/// The content type Telegram announced, or `application/octet-stream` when there is none or it
/// cannot be sent as a header (a hostile `mime_type` with line breaks or control characters).
pub fn safe_content_type(announced: Option<&str>) -> &str {
    announced
        .filter(|t| !t.is_empty() && http::HeaderValue::from_str(t).is_ok())
        .unwrap_or("application/octet-stream")
}

/// A header value built by the service (a hex digest, a checked content type): a value that
/// cannot be sent is a permanent failure of this object, never retried.
fn header(key: &str, value: &str) -> Result<http::HeaderValue, UploadError> {
    http::HeaderValue::from_str(value).map_err(|e| {
        StorageError::Request {
            op: "build metadata for",
            key: key.to_string(),
            status: Some(400),
            transport: false,
            detail: e.to_string(),
        }
        .into()
    })
}

#[cfg(test)]
mod tests;

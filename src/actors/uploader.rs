//! `S3UploaderActor`: streams a file from Telegram into S3 and streams progress back.
//!
//! The download is cut into parts of `s3.part_size_mib`; up to `s3.parts_in_flight` parts are
//! sent to S3 while the next one is read, so memory stays at about
//! `part_size * (parts_in_flight + 1)` whatever the file size. A file smaller than one part is
//! stored with a single PUT. A failed multipart upload is aborted.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use s3::serde_types::Part;
use s3::Bucket;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::settings::S3Settings;
use crate::storage::StorageError;
use crate::telegram::{ByteStream, TelegramClient, TelegramError};

/// Asks for one file to be stored; answered when it is stored or has failed.
#[derive(Message)]
#[rtype(result = "Result<UploadReport, UploadError>")]
pub struct Upload {
    /// Telegram `file_id` to download.
    pub file_id: String,
    /// Object key in the bucket.
    pub key: String,
    /// Content type to store, if known.
    pub content_type: Option<String>,
    /// Size Telegram announced, if any.
    pub expected_size: Option<u64>,
    /// Identifies this upload in progress messages.
    pub ticket: u64,
    /// Who receives progress messages.
    pub progress: Recipient<UploadProgress>,
}

/// Progress of one upload, sent after each stored part.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UploadProgress {
    /// The ticket given in [`Upload`].
    pub ticket: u64,
    /// Bytes stored so far.
    pub bytes: u64,
    /// Total size, if known.
    pub total: Option<u64>,
}

/// What a finished upload did.
#[derive(Debug, Clone)]
pub struct UploadReport {
    /// Object key.
    pub key: String,
    /// Bytes stored.
    pub bytes: u64,
    /// Parts used (1 for a single PUT).
    pub parts: u32,
    /// Whether S3 multipart upload was used.
    pub multipart: bool,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Why an upload failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    /// Telegram would not hand the file over or the download broke.
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    /// S3 refused or failed.
    #[error("{0}")]
    Storage(Arc<StorageError>),
    /// Telegram refuses to serve files this large to bots.
    #[error("the file is too big for the Bot API to download")]
    TooBig,
    /// The actor is gone (shutting down).
    #[error("the uploader is not running")]
    Unavailable,
}

impl From<StorageError> for UploadError {
    fn from(e: StorageError) -> Self {
        Self::Storage(Arc::new(e))
    }
}

/// The uploader; one per service, running uploads concurrently.
pub struct S3UploaderActor {
    telegram: Rc<TelegramClient>,
    bucket: Rc<Bucket>,
    part_size: usize,
    parts_in_flight: usize,
    retry_for: Duration,
    metrics: Arc<Metrics>,
}

impl S3UploaderActor {
    /// An uploader writing to `bucket` with the part size, concurrency and retry budget of `s3`.
    pub fn new(
        telegram: TelegramClient,
        bucket: Box<Bucket>,
        s3: &S3Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            telegram: Rc::new(telegram),
            bucket: Rc::from(bucket),
            part_size: s3.part_size(),
            parts_in_flight: s3.parts_in_flight,
            retry_for: Duration::from_secs(s3.retry_for_secs),
            metrics,
        }
    }
}

impl UploadError {
    /// Whether the upload may succeed if tried again (an outside service was unavailable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Telegram(e) => e.is_retryable(),
            Self::Storage(e) => e.is_retryable(),
            Self::TooBig | Self::Unavailable => false,
        }
    }
}

impl Actor for S3UploaderActor {
    type Context = Context<Self>;
}

impl Handler<Upload> for S3UploaderActor {
    type Result = ResponseFuture<Result<UploadReport, UploadError>>;

    fn handle(&mut self, msg: Upload, _: &mut Context<Self>) -> Self::Result {
        let job = Job {
            telegram: self.telegram.clone(),
            bucket: self.bucket.clone(),
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
        };
        let metrics = self.metrics.clone();
        let retry_for = self.retry_for;
        Box::pin(async move {
            let started = Instant::now();
            log::info!(
                "upload started: key={:?} expected_bytes={}",
                msg.key,
                msg.expected_size
                    .map_or("unknown".into(), |s| s.to_string())
            );
            let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
            let result = loop {
                match job.run(&msg, started).await {
                    Err(e) if e.is_retryable() && started.elapsed() < retry_for => {
                        let delay = backoff.next_delay();
                        log::warn!(
                            "upload of {:?} failed: {e}; retrying in {:.1} s",
                            msg.key,
                            delay.as_secs_f64()
                        );
                        actix_rt::time::sleep(delay).await;
                    }
                    other => break other,
                }
            };
            match &result {
                Ok(r) => {
                    Metrics::incr(&metrics.uploads_completed);
                    metrics.bytes_uploaded.fetch_add(r.bytes, Ordering::Relaxed);
                    if r.multipart {
                        Metrics::incr(&metrics.multipart_uploads);
                        metrics
                            .parts_uploaded
                            .fetch_add(u64::from(r.parts), Ordering::Relaxed);
                    }
                    log::info!(
                        "upload finished: key={:?} bytes={} parts={} seconds={:.2} rate={:.1} MB/s",
                        r.key,
                        r.bytes,
                        r.parts,
                        r.seconds,
                        r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
                    );
                }
                Err(e) => {
                    Metrics::incr(&metrics.uploads_failed);
                    log::error!("upload failed: key={:?}: {e}", msg.key);
                }
            }
            result
        })
    }
}

/// Everything one upload needs, detached from the actor so it can run concurrently.
struct Job {
    telegram: Rc<TelegramClient>,
    bucket: Rc<Bucket>,
    part_size: usize,
    parts_in_flight: usize,
}

impl Job {
    async fn run(&self, msg: &Upload, started: Instant) -> Result<UploadReport, UploadError> {
        let file = self
            .telegram
            .get_file(&msg.file_id)
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
        let total = file.file_size.or(msg.expected_size);
        let download = self.telegram.download(&path).await?;
        let content_type = msg
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let mut parts = Box::pin(rechunk(download, self.part_size));
        let first = parts.try_next().await?.unwrap_or_default();
        let multipart = first.len() == self.part_size;
        let (bytes, count) = if !multipart {
            let len = first.len() as u64;
            self.bucket
                .put_object_with_content_type(&msg.key, &first, content_type)
                .await
                .map_err(|e| StorageError::from_s3("put", &msg.key, e))?;
            (len, 1)
        } else {
            let all = stream::once(async { Ok(first) }).chain(parts);
            self.multipart(msg, content_type, total, all).await?
        };
        msg.progress.do_send(UploadProgress {
            ticket: msg.ticket,
            bytes,
            total: Some(bytes),
        });
        Ok(UploadReport {
            key: msg.key.clone(),
            bytes,
            parts: count,
            multipart,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn multipart(
        &self,
        msg: &Upload,
        content_type: &str,
        total: Option<u64>,
        parts: impl Stream<Item = Result<Vec<u8>, TelegramError>>,
    ) -> Result<(u64, u32), UploadError> {
        let key = msg.key.as_str();
        let upload = self
            .bucket
            .initiate_multipart_upload(key, content_type)
            .await
            .map_err(|e| StorageError::from_s3("initiate multipart upload", key, e))?;
        let upload_id = upload.upload_id;
        let result = self
            .send_parts(msg, content_type, total, &upload_id, parts)
            .await;
        match result {
            Ok((etags, bytes)) => {
                let count = etags.len() as u32;
                match self
                    .bucket
                    .complete_multipart_upload(key, &upload_id, etags)
                    .await
                {
                    Ok(_) => Ok((bytes, count)),
                    Err(e) => {
                        self.abort(key, &upload_id).await;
                        Err(StorageError::from_s3("complete multipart upload", key, e).into())
                    }
                }
            }
            Err(e) => {
                self.abort(key, &upload_id).await;
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
            msg.progress.do_send(UploadProgress {
                ticket: msg.ticket,
                bytes,
                total,
            });
        }
        Ok((etags, bytes))
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        match self.bucket.abort_upload(key, upload_id).await {
            Ok(()) => log::warn!("multipart upload aborted: key={key:?}"),
            Err(e) => log::error!("could not abort multipart upload of {key:?}: {e}"),
        }
    }
}

/// Re-cuts a byte stream into parts of exactly `size` bytes (the last may be shorter).
pub fn rechunk(
    input: ByteStream,
    size: usize,
) -> impl Stream<Item = Result<Vec<u8>, TelegramError>> {
    // State: the input, bytes read but not yet placed in a part, and whether the input ended.
    stream::try_unfold(
        (input, None::<bytes::Bytes>, false),
        move |(mut input, mut carry, ended)| async move {
            if ended {
                return Ok(None);
            }
            let mut part = Vec::with_capacity(size);
            loop {
                let chunk = match carry.take() {
                    Some(c) => c,
                    None => match input.try_next().await? {
                        Some(c) => c,
                        None if part.is_empty() => return Ok(None),
                        None => return Ok(Some((part, (input, None, true)))),
                    },
                };
                let room = size - part.len();
                if chunk.len() <= room {
                    part.extend_from_slice(&chunk);
                } else {
                    part.extend_from_slice(&chunk[..room]);
                    carry = Some(chunk.slice(room..));
                }
                if part.len() == size {
                    return Ok(Some((part, (input, carry, false))));
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunks(sizes: &[usize]) -> ByteStream {
        let mut n = 0u8;
        let items: Vec<Result<Bytes, TelegramError>> = sizes
            .iter()
            .map(|&s| {
                let v: Vec<u8> = (0..s)
                    .map(|_| {
                        n = n.wrapping_add(1);
                        n
                    })
                    .collect();
                Ok(Bytes::from(v))
            })
            .collect();
        stream::iter(items).boxed_local()
    }

    fn run(sizes: &[usize], part: usize) -> Vec<Vec<u8>> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(rechunk(chunks(sizes), part).try_collect())
            .unwrap()
    }

    #[test]
    fn parts_have_the_exact_size_and_keep_every_byte() {
        let parts = run(&[3, 10, 1, 7], 5);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [5, 5, 5, 5, 1]
        );
        let flat: Vec<u8> = parts.concat();
        assert_eq!(flat, (1..=21).collect::<Vec<u8>>());
    }

    #[test]
    fn exact_multiple_has_no_empty_tail() {
        let parts = run(&[4, 4], 4);
        assert_eq!(parts.len(), 2);
        assert!(run(&[], 4).is_empty());
    }
}

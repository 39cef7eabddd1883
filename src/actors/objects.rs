//! Messages of the `S3UploaderActor` about objects already stored: whether keys exist, a
//! server-side copy, a deletion. The conversation uses them to pick free names, to rename and
//! to check the file list against the bucket; no byte passes through the service.
//!
//! Like uploads, these ride out an S3 outage: a retryable failure (network, 5xx, throttling)
//! or a refusal of the credentials is tried again with a capped backoff for up to
//! `s3.retry_for_secs` before it is reported. A quick check (`patient: false`) is tried once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::uploader::ledger::Ledger;
use super::uploader::S3UploaderActor;
use crate::clients::s3::objects::{self, CopyReport};
use crate::clients::s3::StorageError;
use crate::obs::metrics::Metrics;
use crate::store::OpenUpload;
use crate::util::backoff::Backoff;

/// Which of these keys exist in the documents bucket (answers in the same order).
#[derive(Message)]
#[rtype(result = "Result<Vec<bool>, Arc<StorageError>>")]
pub struct ObjectsExist {
    /// The keys.
    pub keys: Vec<String>,
    /// Whether to wait out an S3 outage (`s3.retry_for_secs`) or answer after one try.
    pub patient: bool,
}

/// Copies `from` to `to` server-side, keeping content type and metadata. Answers `None` when
/// there is no object under `from`.
#[derive(Message)]
#[rtype(result = "Result<Option<CopyReport>, Arc<StorageError>>")]
pub struct CopyObject {
    /// Source key.
    pub from: String,
    /// Destination key.
    pub to: String,
}

/// Deletes an object (deleting a missing key succeeds).
#[derive(Message)]
#[rtype(result = "Result<(), Arc<StorageError>>")]
pub struct DeleteObject(pub String);

/// The three object messages, as recipients for whoever needs them.
#[derive(Clone)]
pub struct ObjectsPort {
    /// [`ObjectsExist`].
    pub exist: Recipient<ObjectsExist>,
    /// [`CopyObject`].
    pub copy: Recipient<CopyObject>,
    /// [`DeleteObject`].
    pub delete: Recipient<DeleteObject>,
}

impl ObjectsPort {
    /// The port of an uploader.
    pub fn of(uploader: &Addr<S3UploaderActor>) -> Self {
        Self {
            exist: uploader.clone().recipient(),
            copy: uploader.clone().recipient(),
            delete: uploader.clone().recipient(),
        }
    }
}

impl Handler<ObjectsExist> for S3UploaderActor {
    type Result = ResponseFuture<Result<Vec<bool>, Arc<StorageError>>>;

    fn handle(&mut self, msg: ObjectsExist, _: &mut Context<Self>) -> Self::Result {
        let (bucket, metrics) = (self.bucket(), self.metrics());
        let budget = if msg.patient {
            self.storage_retry_for()
        } else {
            Duration::ZERO
        };
        Box::pin(async move {
            let keys = &msg.keys;
            let check = || async {
                let checks = keys.iter().map(|key| objects::head(&bucket, key));
                let found = futures_util::future::join_all(checks).await;
                found
                    .into_iter()
                    .map(|r| r.map(|info| info.is_some()))
                    .collect::<Result<Vec<_>, _>>()
            };
            patiently("checking keys", (budget, &metrics), check)
                .await
                .map_err(Arc::new)
        })
    }
}

impl Handler<CopyObject> for S3UploaderActor {
    type Result = ResponseFuture<Result<Option<CopyReport>, Arc<StorageError>>>;

    fn handle(&mut self, msg: CopyObject, _: &mut Context<Self>) -> Self::Result {
        let (bucket, http, ledger) = (self.bucket(), self.copy_http(), self.ledger());
        let metrics = self.metrics();
        let (single_max, part_size) = self.copy_limits();
        let budget = self.storage_retry_for();
        Box::pin(async move {
            let head = || objects::head(&bucket, &msg.from);
            let Some(info) = patiently("reading the source", (budget, &metrics), head)
                .await
                .map_err(Arc::new)?
            else {
                return Ok(None);
            };
            let copier = objects::Copier {
                bucket: &bucket,
                http: &http,
                single_max,
                part_size,
            };
            let copy = || copy_recorded(&copier, (&msg.from, &msg.to), &info, &ledger);
            let report = patiently("copy", (budget, &metrics), copy)
                .await
                .map_err(Arc::new)?;
            Metrics::incr(&metrics.objects_copied);
            metrics
                .copy_parts
                .fetch_add(u64::from(report.parts), Ordering::Relaxed);
            log::info!(
                "copied {:?} to {:?} server-side: {} bytes{}",
                msg.from,
                msg.to,
                report.bytes,
                match report.parts {
                    0 => String::new(),
                    n => format!(" in {n} parts"),
                }
            );
            Ok(Some(report))
        })
    }
}

impl Handler<DeleteObject> for S3UploaderActor {
    type Result = ResponseFuture<Result<(), Arc<StorageError>>>;

    fn handle(&mut self, msg: DeleteObject, _: &mut Context<Self>) -> Self::Result {
        let (bucket, metrics) = (self.bucket(), self.metrics());
        let budget = self.storage_retry_for();
        Box::pin(async move {
            patiently("delete", (budget, &metrics), || {
                objects::delete(&bucket, &msg.0)
            })
            .await
            .map_err(Arc::new)
        })
    }
}

/// Runs `op` until it succeeds, fails for good, or `budget` is spent on retryable failures
/// (network, 5xx, throttling, refused credentials), waiting a capped backoff between tries.
async fn patiently<T, F, Fut>(
    what: &str,
    (budget, metrics): (Duration, &Metrics),
    mut op: F,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    let deadline = Instant::now() + budget;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if (e.is_retryable() || e.is_denied()) && Instant::now() < deadline => {
                let wait = backoff.next_delay();
                Metrics::incr(&metrics.object_retries);
                log::warn!(
                    "S3 {what}: {e}; trying again in {:.1} s",
                    wait.as_secs_f64()
                );
                actix_rt::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Copies `from` (described by `info`) to `to` server-side: in one request up to the copier's
/// single-copy size, else as a multipart copy recorded in `ledger` while open (its intent
/// before the server creates it), and aborted when it fails.
async fn copy_recorded(
    copier: &objects::Copier<'_>,
    (from, to): (&str, &str),
    info: &objects::ObjectInfo,
    ledger: &Ledger,
) -> Result<CopyReport, StorageError> {
    if info.size <= copier.single_max {
        copier.copy_request(to, from, None).await?;
        return Ok(CopyReport {
            bytes: info.size,
            parts: 0,
        });
    }
    let content_type = info
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let bucket = copier.multipart_bucket(to, info)?;
    let unrecorded = || StorageError::Config {
        endpoint: String::new(),
        detail: "the store did not record the multipart copy".into(),
    };
    let intent = ledger
        .intent(&copier.bucket.name(), to)
        .await
        .map_err(|_| unrecorded())?;
    let upload = match bucket.initiate_multipart_upload(to, content_type).await {
        Ok(upload) => upload,
        Err(e) => {
            ledger.create_failed(copier.bucket, &intent, to, &e).await;
            return Err(StorageError::from_s3("initiate multipart copy", to, e));
        }
    };
    let open = OpenUpload {
        upload_id: upload.upload_id,
        bucket: copier.bucket.name(),
        key: to.to_string(),
    };
    if !ledger.created(&intent, &open.upload_id).await {
        if ledger.abort(copier.bucket, &open).await {
            ledger.closed(&intent);
        }
        return Err(unrecorded());
    }
    let result = match copier
        .copy_parts(from, to, &open.upload_id, info.size)
        .await
    {
        Ok(parts) => {
            let count = parts.len() as u32;
            copier
                .bucket
                .complete_multipart_upload(to, &open.upload_id, parts)
                .await
                .map(|_| count)
                .map_err(|e| StorageError::from_s3("complete multipart copy", to, e))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(count) => {
            ledger.closed(&open.upload_id);
            Ok(CopyReport {
                bytes: info.size,
                parts: count,
            })
        }
        Err(e) => {
            ledger.abort(copier.bucket, &open).await;
            Err(e)
        }
    }
}

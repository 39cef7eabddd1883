//! The ledger of multipart uploads: each recorded in the store from before the server creates
//! it until it is completed or aborted, so none is ever left open.

use actix::prelude::*;
use s3::error::S3Error;
use s3::Bucket;

use crate::actors::store::StoreActor;
use crate::actors::store::{
    OpenUploads, UploadAbortFailed, UploadClosed, UploadCreated, UploadOpened, UploadsToAbort,
};
use crate::actors::uploader::UploadError;
use crate::store::{OpenUpload, UploadOwner, INTENT};

/// Records the multipart uploads (and copies) of one owner in the store and aborts them, so
/// none is ever left open: the intent before the server creates it, the id once it does, and an
/// abort that failed marked for [`sweep`], which tries it again within seconds.
#[derive(Clone)]
pub struct Ledger {
    /// Where open uploads are recorded.
    pub store: Addr<StoreActor>,
    /// This replica and uploader start.
    pub owner: UploadOwner,
}

impl Ledger {
    /// Records the intent to create a multipart upload of `key` in `bucket`; answers its id.
    pub async fn intent(&self, bucket: &str, key: &str) -> Result<String, UploadError> {
        let id = format!("{INTENT}{:016x}", rand::random::<u64>());
        let upload = OpenUpload {
            upload_id: id.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        let opened = UploadOpened {
            upload,
            owner: self.owner.clone(),
        };
        match self.store.send(opened).await {
            Ok(Ok(())) => Ok(id),
            _ => Err(UploadError::Unavailable),
        }
    }

    /// The server created the upload `intent` was for; whether that is recorded.
    pub async fn created(&self, intent: &str, upload_id: &str) -> bool {
        let created = UploadCreated {
            intent: intent.to_string(),
            upload_id: upload_id.to_string(),
        };
        matches!(self.store.send(created).await, Ok(Ok(())))
    }

    /// The server's creation of the upload `intent` was for failed. Refused outright (a 4xx
    /// answer), nothing was created: the intent is forgotten. Otherwise (no answer, or a 5xx)
    /// the server may have created it and only the answer was lost: the intent is aborted,
    /// which aborts every upload open under `key` that no record names (and stays recorded
    /// for the sweep while that fails).
    pub async fn create_failed(&self, bucket: &Bucket, intent: &str, key: &str, e: &S3Error) {
        if matches!(e, S3Error::HttpFailWithBody(code, _) if (400..500).contains(code)) {
            self.closed(intent);
            return;
        }
        let open = OpenUpload {
            upload_id: intent.to_string(),
            bucket: bucket.name(),
            key: key.to_string(),
        };
        self.abort(bucket, &open).await;
    }

    /// Forgets an upload that was completed, or an intent whose creation failed.
    pub fn closed(&self, upload_id: &str) {
        self.store.do_send(UploadClosed(upload_id.to_string()));
    }

    /// Aborts an upload once, forgetting it when the server no longer has it; when the server
    /// cannot be reached it stays recorded, marked for the next [`sweep`]. Answers whether it
    /// is gone.
    pub async fn abort(&self, bucket: &Bucket, open: &OpenUpload) -> bool {
        let gone = abort_once(bucket, &self.store, open).await;
        if !gone {
            self.store
                .do_send(UploadAbortFailed(open.upload_id.clone()));
        }
        gone
    }
}

/// One abort of a recorded upload (for an intent: of every upload the server has open under
/// its key that no record names); forgets it when it is gone. Answers whether it is.
async fn abort_once(bucket: &Bucket, store: &Addr<StoreActor>, open: &OpenUpload) -> bool {
    if open.is_intent() {
        return abort_unrecorded(bucket, store, open).await;
    }
    match bucket.abort_upload(&open.key, &open.upload_id).await {
        Ok(()) => {
            log::warn!("multipart upload aborted: key={:?}", open.key);
            store.do_send(UploadClosed(open.upload_id.clone()));
            true
        }
        Err(s3::error::S3Error::HttpFailWithBody(404, _)) => {
            log::info!("multipart upload of {:?} is already gone", open.key);
            store.do_send(UploadClosed(open.upload_id.clone()));
            true
        }
        Err(e) => {
            log::warn!(
                "could not abort the multipart upload of {:?}: {e}; it stays recorded and is tried again",
                open.key
            );
            false
        }
    }
}

/// An intent left by a process that died between asking the server for an upload and
/// recording its id: the uploads the server has open under the key, and that no record names,
/// are that process's; they are aborted, then the intent is forgotten.
async fn abort_unrecorded(bucket: &Bucket, store: &Addr<StoreActor>, intent: &OpenUpload) -> bool {
    let listed = match crate::clients::s3::objects::open_uploads_of(bucket, &intent.key).await {
        Ok(listed) => listed,
        Err(e) => {
            log::warn!(
                "could not list the multipart uploads of {:?}: {e}; tried again",
                intent.key
            );
            return false;
        }
    };
    let recorded: std::collections::HashSet<String> = match store.send(OpenUploads).await {
        Ok(Ok(open)) => open.into_iter().map(|u| u.upload_id).collect(),
        _ => return false,
    };
    let mut all_gone = true;
    for id in listed.iter().filter(|id| !recorded.contains(*id)) {
        match bucket.abort_upload(&intent.key, id).await {
            Ok(()) | Err(s3::error::S3Error::HttpFailWithBody(404, _)) => log::warn!(
                "multipart upload aborted: key={:?} (left unrecorded by a process that stopped)",
                intent.key
            ),
            Err(e) => {
                log::warn!(
                    "could not abort the multipart upload of {:?}: {e}",
                    intent.key
                );
                all_gone = false;
            }
        }
    }
    if all_gone {
        store.do_send(UploadClosed(intent.upload_id.clone()));
    }
    all_gone
}

/// Aborts what `owner` must abort now ([`crate::store::Store::uploads_to_abort`]): its own
/// leftovers and failed aborts, and the uploads of replicas whose heartbeat ran out; with
/// `mine_too` (at shutdown) its own current ones as well. Answers how many were aborted and
/// how many remain.
pub async fn sweep(
    ledger: &Ledger,
    target: &crate::clients::s3::S3Target,
    mine_too: bool,
) -> Result<(usize, usize), UploadError> {
    let asked = UploadsToAbort {
        owner: ledger.owner.clone(),
        mine_too,
    };
    let open = ledger
        .store
        .send(asked)
        .await
        .map_err(|_| UploadError::Unavailable)?
        .map_err(|_| UploadError::Unavailable)?;
    let mut aborted = 0;
    for upload in &open {
        let bucket = target.with_bucket(&upload.bucket).bucket()?;
        if ledger.abort(&bucket, upload).await {
            aborted += 1;
        }
    }
    Ok((aborted, open.len() - aborted))
}

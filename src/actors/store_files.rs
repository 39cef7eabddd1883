//! Messages of the `StoreActor` about uploads and saved files (see [`crate::store::SavedFile`]).

use std::sync::Arc;

use actix::prelude::*;

use super::store::StoreActor;
use crate::store::{OpenUpload, SavedFile, StoreError, UploadOwner};

/// A multipart upload (or the intent to create one) of an owner; answered once it is recorded.
#[derive(Message)]
#[rtype(result = "Result<(), Arc<StoreError>>")]
pub struct UploadOpened {
    /// The upload.
    pub upload: OpenUpload,
    /// Who opened it.
    pub owner: UploadOwner,
}

/// The server created the upload an intent was recorded for.
#[derive(Message)]
#[rtype(result = "Result<(), Arc<StoreError>>")]
pub struct UploadCreated {
    /// The intent's id.
    pub intent: String,
    /// The server's upload id.
    pub upload_id: String,
}

/// A multipart upload was completed or aborted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UploadClosed(pub String);

/// An abort failed: the upload stays recorded, marked to be aborted again soon.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UploadAbortFailed(pub String);

/// The multipart uploads recorded as open.
#[derive(Message)]
#[rtype(result = "Result<Vec<OpenUpload>, Arc<StoreError>>")]
pub struct OpenUploads;

/// The uploads an owner must abort now (see [`crate::store::Store::uploads_to_abort`]).
#[derive(Message)]
#[rtype(result = "Result<Vec<OpenUpload>, Arc<StoreError>>")]
pub struct UploadsToAbort {
    /// The owner cleaning up.
    pub owner: UploadOwner,
    /// Whether its own current uploads are included (at shutdown).
    pub mine_too: bool,
}

/// Records a saved document; answered with its file id once it is recorded.
#[derive(Message)]
#[rtype(result = "Result<i64, Arc<StoreError>>")]
pub struct RecordSavedFile(pub SavedFile);

impl Handler<UploadOpened> for StoreActor {
    type Result = Result<(), Arc<StoreError>>;

    fn handle(&mut self, msg: UploadOpened, _: &mut Context<Self>) -> Self::Result {
        self.store_mut()
            .upload_opened(&msg.upload, &msg.owner)
            .map_err(Arc::new)
    }
}

impl Handler<UploadCreated> for StoreActor {
    type Result = Result<(), Arc<StoreError>>;

    fn handle(&mut self, msg: UploadCreated, _: &mut Context<Self>) -> Self::Result {
        self.store_mut()
            .upload_created(&msg.intent, &msg.upload_id)
            .map_err(Arc::new)
    }
}

impl Handler<UploadClosed> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: UploadClosed, _: &mut Context<Self>) {
        if let Err(e) = self.store_mut().upload_closed(&msg.0) {
            log::error!("cannot forget a closed multipart upload: {e}");
        }
    }
}

impl Handler<UploadAbortFailed> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: UploadAbortFailed, _: &mut Context<Self>) {
        if let Err(e) = self.store_mut().upload_abort_failed(&msg.0) {
            log::error!("cannot mark a multipart upload to abort again: {e}");
        }
    }
}

impl Handler<OpenUploads> for StoreActor {
    type Result = Result<Vec<OpenUpload>, Arc<StoreError>>;

    fn handle(&mut self, _: OpenUploads, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().open_uploads().map_err(Arc::new)
    }
}

impl Handler<UploadsToAbort> for StoreActor {
    type Result = Result<Vec<OpenUpload>, Arc<StoreError>>;

    fn handle(&mut self, msg: UploadsToAbort, _: &mut Context<Self>) -> Self::Result {
        self.store_mut()
            .uploads_to_abort(&msg.owner, msg.mine_too)
            .map_err(Arc::new)
    }
}

impl Handler<RecordSavedFile> for StoreActor {
    type Result = Result<i64, Arc<StoreError>>;

    fn handle(&mut self, msg: RecordSavedFile, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().record_saved_file(&msg.0).map_err(Arc::new)
    }
}

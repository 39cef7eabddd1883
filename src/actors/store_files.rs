//! Messages of the `StoreActor` about uploads and saved files (see [`crate::store::SavedFile`]).

use std::sync::Arc;

use actix::prelude::*;

use super::store::StoreActor;
use crate::store::{OpenUpload, SavedFile, StoreError};

/// A multipart upload was started; answered once it is recorded.
#[derive(Message)]
#[rtype(result = "Result<(), Arc<StoreError>>")]
pub struct UploadOpened(pub OpenUpload);

/// A multipart upload was completed or aborted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UploadClosed(pub String);

/// The multipart uploads recorded as open.
#[derive(Message)]
#[rtype(result = "Result<Vec<OpenUpload>, Arc<StoreError>>")]
pub struct OpenUploads;

/// Records a saved document; answered with its file id once it is recorded.
#[derive(Message)]
#[rtype(result = "Result<i64, Arc<StoreError>>")]
pub struct RecordSavedFile(pub SavedFile);

impl Handler<UploadOpened> for StoreActor {
    type Result = Result<(), Arc<StoreError>>;

    fn handle(&mut self, msg: UploadOpened, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().upload_opened(&msg.0).map_err(Arc::new)
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

impl Handler<OpenUploads> for StoreActor {
    type Result = Result<Vec<OpenUpload>, Arc<StoreError>>;

    fn handle(&mut self, _: OpenUploads, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().open_uploads().map_err(Arc::new)
    }
}

impl Handler<RecordSavedFile> for StoreActor {
    type Result = Result<i64, Arc<StoreError>>;

    fn handle(&mut self, msg: RecordSavedFile, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().record_saved_file(&msg.0).map_err(Arc::new)
    }
}

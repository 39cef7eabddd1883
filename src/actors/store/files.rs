//! Requests about uploads, saved files, their keys and owners, the file lists and renames
//! (see [`crate::store::SavedFile`], [`crate::store::KeyClaim`], [`crate::store::MoveStart`]).

use std::sync::Arc;

use actix::prelude::*;

use super::StoreActor;
use crate::domain::chat::Person;
use crate::store::{
    ClaimedKey, FileEntry, KeyClaim, Move, MoveStart, OpenUpload, SavedFile, Store, StoreError,
    UploadOwner,
};

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

store_request!(
    /// Gives a document its key.
    ClaimKey(pub KeyClaim) -> ClaimedKey,
    |s, m| s.claim_key(&m.0)
);

store_request!(
    /// The bucket holds an object under a key this event claimed as unknown.
    MarkForeign {
        /// The key.
        pub key: String,
        /// The event that claimed it.
        pub event: String,
    } -> (),
    |s, m| s.mark_foreign(&m.key, &m.event)
);

store_request!(
    /// An event's document was not stored: its claimed key is free again.
    ReleaseClaim(pub String) -> (),
    |s, m| s.release_claim(&m.0)
);

store_request!(
    /// A page of saved files, newest first: a person's, or everyone's for `None`.
    FilesPage {
        /// Whose files.
        pub owner: Option<Person>,
        /// Files skipped.
        pub offset: u64,
        /// Files in the page.
        pub limit: u64,
    } -> (Vec<FileEntry>, u64),
    |s, m| s.files_page(m.owner.as_ref().map(|p| (p.platform.as_str(), p.user)), m.offset, m.limit)
);

store_request!(
    /// A saved file by id.
    FileById(pub i64) -> Option<FileEntry>,
    |s, m| s.file_by_id(m.0)
);

store_request!(
    /// A person's most recently saved file.
    LatestFile(pub Person) -> Option<FileEntry>,
    |s, m| s.latest_file(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Forgets a file whose object is gone from the bucket.
    ForgetFile(pub i64) -> (),
    |s, m| s.forget_file(m.0)
);

store_request!(
    /// Forgets a file whose object a listing did not find, unless a rename of it is under way;
    /// whether it was forgotten.
    ForgetMissingFile(pub i64) -> bool,
    |s, m| s.forget_missing_file(m.0)
);

store_request!(
    /// Whether anything holds a key.
    KeyIsTaken(pub String) -> bool,
    |s, m| s.key_is_taken(&m.0)
);

store_request!(
    /// Remembers that a person wants to rename a file (their next text is its name).
    SetPendingRename {
        /// Who.
        pub person: Person,
        /// Which file.
        pub file: i64,
        /// In which chat.
        pub chat: i64,
    } -> (),
    |s, m| s.set_pending_rename(m.person.platform.as_str(), m.person.user, m.file, m.chat)
);

store_request!(
    /// The file whose new name the bot waits for from a person.
    PendingRename(pub Person) -> Option<FileEntry>,
    |s, m| s.pending_rename(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Ends a person's pending rename; answers whether there was one.
    ClearPendingRename(pub Person) -> bool,
    |s, m| s.clear_pending_rename(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// The move an event began, if any.
    MoveOf(pub String) -> Option<Move>,
    |s, m| s.move_of(&m.0)
);

store_request!(
    /// Begins moving a person's file to a new key.
    BeginMove {
        /// The event asking for it.
        pub event: String,
        /// The person.
        pub person: Person,
        /// The file.
        pub file: i64,
        /// The new key.
        pub to: String,
    } -> MoveStart,
    |s, m| s.begin_move(&m.event, (m.person.platform.as_str(), m.person.user), m.file, &m.to)
);

store_request!(
    /// The object is under its new key and gone from the old one.
    FinishMove(pub String) -> (),
    |s, m| s.finish_move(&m.0)
);

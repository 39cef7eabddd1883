//! A document becomes an object: its key is claimed (the wanted name, the sender's own, or the
//! next free `name (n).ext`), the uploader streams it with progress shown to the sender, the
//! store records it with its owner, and the confirmation carries a `Rename` button.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{ask, texts, Conversation};
use crate::actors::store::RecordSavedFile;
use crate::actors::store::{AckOf, ClaimKey, MarkForeign, RecordAck, ReleaseClaim};
use crate::actors::uploader::{ProgressState, Upload, UploadError, UploadProgress, UploadReport};
use crate::actors::worker::{HandlerError, Outcome};
use crate::domain::chat::{Button, Event, IncomingDocument};
use crate::domain::keys::document_key;
use crate::store::{KeyClaim, SavedFile};

/// Claims in a row that may meet objects put into the bucket by someone else.
const MAX_FOREIGN: u32 = 20;

/// A progress message being kept up to date.
pub(super) struct ProgressView {
    chat: i64,
    message_id: i64,
    name: String,
    last_edit: Instant,
    last_text: String,
    edits: u32,
}

/// `callback_data` of a file's rename button.
pub fn rename_data(file: i64) -> String {
    format!("rn:{file}")
}

impl Conversation {
    /// The key this event's document is stored under (the same on every replay).
    async fn claim_key(&self, ev: &Event, wanted: &str) -> Result<String, HandlerError> {
        let claim = KeyClaim {
            event: ev.reference.clone(),
            platform: ev.person.platform.as_str().to_string(),
            user_id: ev.person.user,
            chat_id: ev.chat,
            wanted: wanted.to_string(),
            max_bytes: self.deps.max_key_bytes,
        };
        for _ in 0..MAX_FOREIGN {
            let claimed = ask(&self.deps.store, ClaimKey(claim.clone())).await?;
            if !claimed.unknown {
                return Ok(claimed.key);
            }
            // New to the store: the bucket may still hold someone else's object there.
            if !self.object_exists(&claimed.key).await? {
                return Ok(claimed.key);
            }
            log::info!(
                "chat_id={} {:?} is taken by an object the service did not store; numbering",
                ev.chat,
                claimed.key
            );
            let foreign = MarkForeign {
                key: claimed.key,
                event: ev.reference.clone(),
            };
            ask(&self.deps.store, foreign).await?;
        }
        Err(HandlerError::retryable(format!(
            "no free key for {wanted:?} after {MAX_FOREIGN} objects of others"
        )))
    }

    /// Sends `[document]` for this event once, however often the event is handled (a retry
    /// finds the message sent before); answers its message id. Best effort: the file is stored
    /// whether or not the person can be told (someone who blocked the bot still sent it).
    async fn acknowledge(
        &self,
        ev: &Event,
        wanted: &str,
        size: Option<u64>,
    ) -> Result<Option<i64>, HandlerError> {
        if let Some(message_id) = ask(&self.deps.store, AckOf(ev.reference.clone())).await? {
            return Ok(Some(message_id));
        }
        match self.reply(ev, &texts::receiving(wanted, size)).await {
            Ok(message_id) => {
                let record = RecordAck {
                    event: ev.reference.clone(),
                    message_id,
                };
                ask(&self.deps.store, record).await?;
                Ok(Some(message_id))
            }
            Err(e) => {
                log::warn!(
                    "chat_id={} the [document] acknowledgement was not sent ({e}); storing {wanted:?} anyway",
                    ev.chat
                );
                Ok(None)
            }
        }
    }

    /// Stores a document and confirms it.
    pub(super) async fn save_document(
        &self,
        ev: &Event,
        doc: &IncomingDocument,
        progress: Recipient<UploadProgress>,
    ) -> Outcome {
        let wanted = document_key(doc, self.deps.max_key_bytes);
        if let (Some(limit), Some(size)) = (self.deps.download_limit, doc.size) {
            if size > limit {
                self.reply(ev, &texts::too_big(&wanted, Some(size), limit))
                    .await?;
                return Ok(format!(
                    "document refused: {size} bytes over the {limit}-byte download limit"
                ));
            }
        }
        // `[document]` first: the key's check in the bucket and the upload may wait for S3.
        let acknowledged = self.acknowledge(ev, &wanted, doc.size).await?;
        let key = self.claim_key(ev, &wanted).await?;
        // No upload once another replica took the chat over: it stores the document.
        self.deps
            .chat
            .still_ours(ev.chat)
            .await
            .map_err(super::reply_error)?;
        let ticket = self
            .show_progress(ev, acknowledged, (&wanted, &key), doc.size)
            .await;
        let upload = Upload {
            chat_id: ev.chat,
            platform: ev.person.platform,
            file_id: doc.file.clone(),
            key: key.clone(),
            content_type: doc.mime_type.clone(),
            expected_size: doc.size,
            ticket,
            progress,
        };
        let result = self
            .deps
            .uploader
            .send(upload)
            .await
            .unwrap_or(Err(UploadError::Unavailable));
        let view = self.progress.borrow_mut().remove(&ticket);
        let report = match result {
            Ok(report) => report,
            Err(UploadError::Unavailable) => {
                // The uploader (or the store) restarted under the upload: try again.
                return Err(HandlerError::retryable(format!(
                    "document {key:?}: the uploader restarted during the upload"
                )));
            }
            Err(e) => return self.not_saved(ev, doc, &key, e).await,
        };
        self.confirm_saved(ev, doc, &wanted, report, view).await
    }

    /// A new upload's ticket; with the `[document]` message sent, the view its progress edits
    /// (renamed to `key` at once when the wanted name was someone else's).
    async fn show_progress(
        &self,
        ev: &Event,
        acknowledged: Option<i64>,
        (wanted, key): (&str, &str),
        size: Option<u64>,
    ) -> u64 {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        if let Some(message_id) = acknowledged {
            let mut shown = texts::receiving(wanted, size);
            if key != wanted {
                // The wanted name is someone else's: the message names the key taken instead.
                shown = texts::receiving(key, size);
                if let Err(e) = self.deps.chat.edit(ev.chat, message_id, &shown, None).await {
                    if !e.not_modified {
                        log::warn!("chat_id={} [document] edit failed: {e}", ev.chat);
                    }
                }
            }
            let view = ProgressView {
                chat: ev.chat,
                message_id,
                name: key.to_string(),
                last_edit: Instant::now(),
                last_text: shown,
                edits: 0,
            };
            self.progress.borrow_mut().insert(ticket, view);
        }
        ticket
    }

    /// Records a stored document, finishes its progress message and confirms it.
    async fn confirm_saved(
        &self,
        ev: &Event,
        doc: &IncomingDocument,
        wanted: &str,
        report: UploadReport,
        view: Option<ProgressView>,
    ) -> Outcome {
        let saved = SavedFile {
            key: report.key.clone(),
            platform: ev.person.platform.as_str().into(),
            user_id: ev.person.user,
            chat_id: ev.chat,
            bytes: report.bytes,
            sha256: report.sha256.clone(),
            file_id: doc.file.clone(),
            file_unique_id: doc.unique_id.clone(),
        };
        let id = self.record_saved(saved).await;
        if let Some(view) = view.filter(|v| v.edits > 0) {
            let text = format!(
                "[document] Received «{}»: 100% ({})",
                view.name,
                texts::human_bytes(report.bytes)
            );
            if let Err(e) = self
                .deps
                .chat
                .edit(view.chat, view.message_id, &text, None)
                .await
            {
                if !e.not_modified {
                    log::warn!("chat_id={} progress edit failed: {e}", view.chat);
                }
            }
        }
        let text = texts::saved(&report.key, wanted, report.bytes);
        let keyboard = id.map(|id| vec![vec![Button::new(texts::RENAME_BUTTON, rename_data(id))]]);
        // Best effort too: the file is stored, so a failed confirmation never repeats the
        // download and upload.
        let sent = self.send(ev, &text, keyboard.as_ref()).await;
        let told = match sent {
            Ok(_) => "",
            Err(e) => {
                log::error!(
                    "chat_id={} {:?} is stored but the confirmation was not sent: {e}",
                    ev.chat,
                    report.key
                );
                " (the confirmation could not be sent)"
            }
        };
        Ok(format!(
            "document saved: key={:?} bytes={} sha256={}{told}",
            report.key, report.bytes, report.sha256
        ))
    }

    /// A document that could not be stored: its key is given up and the sender told.
    async fn not_saved(
        &self,
        ev: &Event,
        doc: &IncomingDocument,
        key: &str,
        e: UploadError,
    ) -> Outcome {
        if let Err(release) = ask(&self.deps.store, ReleaseClaim(ev.reference.clone())).await {
            log::warn!(
                "chat_id={} the key {key:?} stays claimed: {release}",
                ev.chat
            );
        }
        if let UploadError::TooBig = e {
            let limit = self.deps.download_limit.unwrap_or(0);
            self.reply(ev, &texts::too_big(key, doc.size, limit))
                .await?;
            return Ok(
                "document refused: the platform says the file is too big to download".into(),
            );
        }
        let text = format!(
            "Sorry, «{key}» could not be saved ({}). Please send it again.",
            e.user_text()
        );
        let told = match self.reply(ev, &text).await {
            Ok(_) => String::new(),
            Err(told) => format!("; the sender could not be told: {told}"),
        };
        Err(HandlerError::permanent(format!(
            "document {key:?} not saved: {e}{told}"
        )))
    }

    /// Records a stored file; answers its id. The object is in S3 already, so a store that
    /// is restarting is waited for (a few tries) rather than failing the event, which would
    /// store it again.
    async fn record_saved(&self, saved: SavedFile) -> Option<i64> {
        let key = saved.key.clone();
        for attempt in 1..=5 {
            match self.deps.store.send(RecordSavedFile(saved.clone())).await {
                Ok(Ok(id)) => return Some(id),
                Ok(Err(e)) => {
                    log::warn!("{key:?} stored; recording it failed (try {attempt}): {e}")
                }
                Err(e) => {
                    log::warn!("{key:?} stored; the store is unavailable (try {attempt}): {e}")
                }
            }
            actix_rt::time::sleep(Duration::from_secs(1)).await;
        }
        log::error!("{key:?} is stored in S3 but could not be recorded in the store");
        None
    }

    /// The edit a progress report calls for, if any (edits are spaced by the interval).
    pub(super) fn progress_edit(&self, p: &UploadProgress) -> Option<(i64, i64, String)> {
        let mut views = self.progress.borrow_mut();
        let view = views.get_mut(&p.ticket)?;
        let text = match &p.state {
            ProgressState::Bytes { bytes, total } => {
                if view.last_edit.elapsed() < self.deps.progress_interval {
                    return None;
                }
                texts::progress(&view.name, *bytes, *total)
            }
            ProgressState::Retrying {
                attempt,
                reason,
                next_in,
            } => texts::retrying(&view.name, *attempt, reason, *next_in),
        };
        if text == view.last_text {
            return None;
        }
        view.last_edit = Instant::now();
        view.last_text = text.clone();
        view.edits += 1;
        Some((view.chat, view.message_id, text))
    }
}

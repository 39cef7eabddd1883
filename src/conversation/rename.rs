//! Renaming a saved file. `Rename` (under the confirmation) or `/rename` (for the file saved
//! last) asks for a name and remembers, durably, that the person's next text is it. The name is
//! sanitised like a file name and keeps the old extension when it has none; a name any other
//! object holds is refused and the bot waits for another. The object is then copied
//! server-side to the new key and the old key deleted; the move is recorded under the event
//! that asked for it before the copy, so a crash between copy and delete is completed on
//! replay, leaving neither a lost object nor a stray copy.

use super::{ask, texts, Conversation};
use crate::actors::objects::{CopyObject, DeleteObject};
use crate::actors::store::{
    BeginMove, ClearPendingRename, FileById, FinishMove, ForgetFile, KeyIsTaken, LatestFile,
    MoveOf, PendingRename, SetPendingRename,
};
use crate::actors::worker::{HandlerError, Outcome};
use crate::domain::chat::{Event, Press};
use crate::domain::keys::rename_key;
use crate::store::{FileEntry, Move, MoveStart};

/// Answer to a press on someone else's `Rename`.
pub const NOT_YOURS: &str = "Only the person who sent this file can rename it.";
/// Answer to a press on the `Rename` of a file that is gone.
pub const GONE: &str = "This file is no longer stored.";

/// An S3 failure of a rename step: retried when S3 may recover.
fn storage_failure(step: &str, e: impl std::fmt::Display, retryable: bool) -> HandlerError {
    let message = format!("rename: {step} failed: {e}");
    if retryable {
        HandlerError::retryable(message)
    } else {
        HandlerError::permanent(message)
    }
}

fn uploader_down(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::retryable(format!("uploader unavailable: {e}"))
}

impl Conversation {
    /// `Rename` pressed: only the file's owner may rename it.
    pub(super) async fn rename_press(&self, ev: &Event, press: &Press, file: i64) -> Outcome {
        let entry = ask(&self.deps.store, FileById(file)).await?;
        let answer = |text: &'static str| self.answer(ev, press, text);
        let Some(entry) = entry else {
            answer(GONE).await;
            return Ok(format!("rename press on file {file}: no such file"));
        };
        let person = ev.person;
        if entry.platform != person.platform.as_str() || entry.user_id != person.user {
            answer(NOT_YOURS).await;
            return Ok(format!(
                "rename press by user {} on file {file}: refused, not the owner",
                person.user
            ));
        }
        answer("").await;
        self.ask_for_name(ev, &entry).await
    }

    /// `/rename`: renames the file saved last; `/rename <name>` at once.
    pub(super) async fn rename_command(&self, ev: &Event, args: &str) -> Outcome {
        let Some(entry) = ask(&self.deps.store, LatestFile(ev.person)).await? else {
            self.reply(ev, "[rename] You have no saved files to rename yet.")
                .await?;
            return Ok("/rename: no files".into());
        };
        if args.is_empty() {
            return self.ask_for_name(ev, &entry).await;
        }
        self.take_name(ev, &entry, args).await
    }

    async fn ask_for_name(&self, ev: &Event, entry: &FileEntry) -> Outcome {
        let pending = SetPendingRename {
            person: ev.person,
            file: entry.id,
            chat: ev.chat,
        };
        ask(&self.deps.store, pending).await?;
        self.reply(ev, &texts::rename_asked(&entry.key)).await?;
        Ok(format!(
            "rename of {:?}: waiting for the new name",
            entry.key
        ))
    }

    /// `/cancel`: the pending rename ends.
    pub(super) async fn cancel(&self, ev: &Event) -> Outcome {
        let pending = ask(&self.deps.store, PendingRename(ev.person)).await?;
        ask(&self.deps.store, ClearPendingRename(ev.person)).await?;
        match pending {
            Some(entry) => {
                self.reply(ev, &texts::rename_cancelled(&entry.key)).await?;
                Ok(format!("rename of {:?} cancelled", entry.key))
            }
            None => {
                self.reply(ev, "There is no rename to cancel.").await?;
                Ok("/cancel: nothing pending".into())
            }
        }
    }

    /// Completes the move this event began before a crash, if it began one.
    pub(super) async fn resume_move(&self, ev: &Event) -> Result<Option<String>, HandlerError> {
        match ask(&self.deps.store, MoveOf(ev.reference.clone())).await? {
            Some(m) => self.complete_move(ev, m).await.map(Some),
            None => Ok(None),
        }
    }

    /// The new name arrived.
    pub(super) async fn take_name(&self, ev: &Event, entry: &FileEntry, name: &str) -> Outcome {
        let refuse = |shown: String, why: &'static str| async move {
            self.reply(ev, &texts::rename_refused(&shown, why)).await?;
            Ok::<_, HandlerError>(format!(
                "rename of {:?} to {shown:?} refused: {why}",
                entry.key
            ))
        };
        let Some(to) = rename_key(name, &entry.key, self.deps.max_key_bytes) else {
            return refuse(name.trim().to_string(), "cannot be a file name").await;
        };
        if to == entry.key {
            return refuse(to, "is the name it has").await;
        }
        if ask(&self.deps.store, KeyIsTaken(to.clone())).await? || self.object_exists(&to).await? {
            return refuse(to, "is taken by another file").await;
        }
        let begin = BeginMove {
            event: ev.reference.clone(),
            person: ev.person,
            file: entry.id,
            to: to.clone(),
        };
        match ask(&self.deps.store, begin).await? {
            MoveStart::Begun(m) | MoveStart::Resumed(m) => self.complete_move(ev, m).await,
            MoveStart::Taken => refuse(to, "is taken by another file").await,
            MoveStart::NotTheirs => {
                ask(&self.deps.store, ClearPendingRename(ev.person)).await?;
                self.reply(ev, &texts::rename_cancelled(&entry.key)).await?;
                Ok(format!("rename of {:?}: the file is gone", entry.key))
            }
        }
    }

    /// Copies, deletes the old key, records the new one and tells the person. Each step may
    /// be repeated: a replay after any crash ends in the same state.
    async fn complete_move(&self, ev: &Event, m: Move) -> Outcome {
        if !m.done {
            // No copy once another replica took the chat over: it completes the rename.
            self.deps
                .chat
                .still_ours(ev.chat)
                .await
                .map_err(super::reply_error)?;
            let copy = CopyObject {
                from: m.from_key.clone(),
                to: m.to_key.clone(),
            };
            let copied = self
                .deps
                .objects
                .copy
                .send(copy)
                .await
                .map_err(uploader_down)?
                .map_err(|e| storage_failure("copy", &e, e.is_retryable() || e.is_denied()))?;
            if copied.is_none() && !self.object_exists(&m.to_key).await? {
                // Neither key holds the object: it was deleted behind the service's back.
                ask(&self.deps.store, ForgetFile(m.file)).await?;
                ask(&self.deps.store, ClearPendingRename(ev.person)).await?;
                self.reply(
                    ev,
                    &format!(
                        "[rename cancelled] «{}» is no longer in the storage, so it cannot be renamed.",
                        m.from_key
                    ),
                )
                .await?;
                return Ok(format!("rename of {:?}: the object is gone", m.from_key));
            }
            fail::fail_point!("rename.after_copy", |_| Err(HandlerError::retryable(
                "failpoint rename.after_copy: stopped between copy and delete"
            )));
            self.deps
                .objects
                .delete
                .send(DeleteObject(m.from_key.clone()))
                .await
                .map_err(uploader_down)?
                .map_err(|e| storage_failure("delete", &e, true))?;
            fail::fail_point!("rename.after_delete", |_| Err(HandlerError::retryable(
                "failpoint rename.after_delete: stopped between delete and the store's update"
            )));
            ask(&self.deps.store, FinishMove(m.event.clone())).await?;
        }
        self.reply(ev, &texts::renamed(&m.from_key, &m.to_key))
            .await?;
        Ok(format!("renamed {:?} to {:?}", m.from_key, m.to_key))
    }
}

//! The documents conversation, written once for every chat platform: it greets a person once,
//! stores every document they send (showing its progress), lets them rename a saved file and
//! list their files. It receives neutral [`Event`]s and answers through a [`ChatPort`]; the
//! platform adapters (Telegram, VK) do the translating.
//!
//! - [`documents`]: a document becomes an object under its name (numbered when the name is
//!   another person's), with progress edits and a `Rename` button on the confirmation;
//! - [`rename`]: `Rename` and `/rename` ask for a name, the next text is it; the object is
//!   copied server-side and the old key deleted;
//! - [`files`]: `/files`, ten per page, checked against the bucket.
//!
//! May import: every layer below it (`intake` and down).

pub mod documents;
pub mod files;
pub mod rename;
pub mod texts;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::objects::{ObjectsExist, ObjectsPort};
use crate::actors::store::StoreActor;
use crate::actors::store::{ClearPendingRename, IsGreeted, PendingRename, SetGreeted};
use crate::actors::uploader::{Upload, UploadProgress};
use crate::actors::worker::{HandlerError, Outcome};
use crate::domain::chat::{ChatError, ChatPort, Event, EventKind, Keyboard, Person, Press, Reply};
use crate::store::StoreError;
use documents::ProgressView;

/// People whose greeting one conversation remembers in memory.
const GREETED_CACHE: usize = 100_000;

/// What a conversation needs from the rest of the service.
#[derive(Clone)]
pub struct ConversationDeps {
    /// The platform's side of the chat.
    pub chat: Rc<dyn ChatPort>,
    /// The uploader.
    pub uploader: Recipient<Upload>,
    /// Object operations on the documents bucket.
    pub objects: ObjectsPort,
    /// The durable store.
    pub store: Addr<StoreActor>,
    /// The platform's admins (they may list everyone's files).
    pub admins: Vec<i64>,
    /// Largest document accepted, if there is a limit.
    pub download_limit: Option<u64>,
    /// Longest object key.
    pub max_key_bytes: usize,
    /// Least time between two progress edits.
    pub progress_interval: Duration,
    /// The first progress ticket (conversations sharing a worker count from apart).
    pub first_ticket: u64,
}

/// The conversation of one worker on one platform.
pub struct Conversation {
    deps: ConversationDeps,
    greeted: RefCell<HashSet<Person>>,
    progress: RefCell<HashMap<u64, ProgressView>>,
    next_ticket: Cell<u64>,
}

/// A store call that failed: worth trying the event again.
fn store_down(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::retryable(format!("store unavailable: {e}"))
}

/// Asks the store; both layers of failure (mailbox, store) are worth trying the event again.
pub(crate) async fn ask<M, A>(store: &Addr<StoreActor>, msg: M) -> Result<A, HandlerError>
where
    M: Message<Result = Result<A, Arc<StoreError>>> + Send + 'static,
    A: Send + 'static,
    StoreActor: Handler<M>,
{
    match store.send(msg).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(store_down(e)),
        Err(e) => Err(store_down(e)),
    }
}

/// A failed reply: worth retrying when the platform was unavailable, final when it refused.
pub(crate) fn reply_error(e: ChatError) -> HandlerError {
    let message = format!("reply failed: {e}");
    if e.retryable {
        HandlerError::retryable(message)
    } else {
        HandlerError::permanent(message)
    }
}

impl Conversation {
    /// A conversation with its dependencies.
    pub fn new(deps: ConversationDeps) -> Self {
        Self {
            next_ticket: Cell::new(deps.first_ticket.max(1)),
            deps,
            greeted: RefCell::new(HashSet::new()),
            progress: RefCell::new(HashMap::new()),
        }
    }

    /// Sends a message answering `ev` (quoting its message), with buttons when given.
    async fn send(
        &self,
        ev: &Event,
        text: &str,
        keyboard: Option<&Keyboard>,
    ) -> Result<i64, ChatError> {
        fail::fail_point!("conversation.send");
        let reply = Reply {
            event: &ev.reference,
            quote: ev.message_id,
            keyboard,
        };
        self.deps.chat.send(ev.chat, text, reply).await
    }

    /// Replies to the event's message.
    async fn reply(&self, ev: &Event, text: &str) -> Result<i64, HandlerError> {
        self.send(ev, text, None).await.map_err(reply_error)
    }

    /// Which of `keys` exist in the bucket; `patient` waits out an S3 outage.
    async fn objects_exist(
        &self,
        keys: Vec<String>,
        patient: bool,
    ) -> Result<Vec<bool>, HandlerError> {
        let found = self
            .deps
            .objects
            .exist
            .send(ObjectsExist { keys, patient })
            .await
            .map_err(|e| HandlerError::retryable(format!("uploader unavailable: {e}")))?
            .map_err(|e| HandlerError::retryable(format!("cannot check the bucket: {e}")))?;
        Ok(found)
    }

    /// Whether an object exists under `key`.
    async fn object_exists(&self, key: &str) -> Result<bool, HandlerError> {
        let found = self.objects_exist(vec![key.to_string()], true).await?;
        Ok(found.first().copied().unwrap_or(false))
    }

    fn is_admin(&self, person: Person) -> bool {
        self.deps.admins.contains(&person.user)
    }

    /// Caches that a person was greeted; the cache is a bounded convenience (the store is the
    /// record), emptied when it reaches [`GREETED_CACHE`] people.
    fn remember_greeted(&self, person: Person) {
        let mut greeted = self.greeted.borrow_mut();
        if greeted.len() >= GREETED_CACHE {
            greeted.clear();
        }
        greeted.insert(person);
    }

    /// Whether the person was greeted before (one person's chat always lands on one worker).
    async fn was_greeted(&self, person: Person) -> Result<bool, HandlerError> {
        if self.greeted.borrow().contains(&person) {
            return Ok(true);
        }
        let known = ask(&self.deps.store, IsGreeted(person)).await?;
        if known {
            self.remember_greeted(person);
        }
        Ok(known)
    }

    /// Greets a person on their first message. Answers whether the event is fully handled
    /// by the greeting (a text or `/start`); a document, another command or a press goes on.
    async fn greet(&self, ev: &Event) -> Result<bool, HandlerError> {
        if matches!(ev.kind, EventKind::Press(_)) || self.was_greeted(ev.person).await? {
            return Ok(false);
        }
        // Reply first, remember after: a crash in between greets again rather than never.
        match self.reply(ev, texts::GREETING).await {
            Ok(_) => {
                self.remember_greeted(ev.person);
                if let Err(e) = ask(&self.deps.store, SetGreeted(ev.person)).await {
                    log::error!("chat_id={} cannot remember the greeting: {e}", ev.chat);
                }
            }
            // A document is stored even when the person cannot be greeted.
            Err(e) if matches!(ev.kind, EventKind::Document(_)) => log::warn!(
                "chat_id={} the greeting was not sent ({e}); storing the document anyway",
                ev.chat
            ),
            Err(e) => return Err(e),
        }
        Ok(match &ev.kind {
            EventKind::Document(_) => false,
            EventKind::Command { name, .. } => matches!(name.as_str(), "start" | "help"),
            _ => true,
        })
    }

    /// Handles one event; resolves to a short description for the log.
    pub async fn handle(self: Rc<Self>, ev: Event, progress: Recipient<UploadProgress>) -> Outcome {
        if self.greet(&ev).await? {
            return Ok("greeted".into());
        }
        match &ev.kind {
            EventKind::Press(press) => self.press(&ev, press).await,
            EventKind::Document(doc) => {
                if ask(&self.deps.store, ClearPendingRename(ev.person)).await? {
                    log::info!(
                        "chat_id={} a document arrived while a rename waited for its name: the rename ends",
                        ev.chat
                    );
                }
                self.save_document(&ev, doc, progress).await
            }
            EventKind::Command { name, args } => self.command(&ev, name, args).await,
            EventKind::Text(text) => self.text(&ev, text).await,
            EventKind::Photo => {
                self.reply(&ev, texts::PHOTO_IS_NOT_A_DOCUMENT).await?;
                Ok("photo refused: document is required".into())
            }
            EventKind::Other(what) => {
                self.reply(&ev, texts::DOCUMENT_REQUIRED).await?;
                Ok(format!("{what}: document is required"))
            }
        }
    }

    async fn command(&self, ev: &Event, name: &str, args: &str) -> Outcome {
        match name {
            "start" | "help" => {
                self.reply(ev, texts::HELP).await?;
                Ok(format!("/{name}: help sent"))
            }
            "files" => self.files_command(ev, args).await,
            "rename" => self.rename_command(ev, args).await,
            "cancel" => self.cancel(ev).await,
            // An unknown command is a text like any other.
            _ => self.text(ev, &format!("/{name}")).await,
        }
    }

    /// A text: the new name of a pending rename, else a reminder that documents are wanted.
    async fn text(&self, ev: &Event, text: &str) -> Outcome {
        if let Some(done) = self.resume_move(ev).await? {
            return Ok(done);
        }
        match ask(&self.deps.store, PendingRename(ev.person)).await? {
            Some(file) => self.take_name(ev, &file, text).await,
            None => {
                self.reply(ev, texts::DOCUMENT_REQUIRED).await?;
                Ok("document is required".into())
            }
        }
    }

    /// A press on one of the conversation's buttons: `rn:<file>` (rename), `fl:<page>` and
    /// `fa:<page>` (file list pages).
    async fn press(&self, ev: &Event, press: &Press) -> Outcome {
        let (kind, arg) = press.data.split_once(':').unwrap_or(("", ""));
        let number = arg.parse::<i64>().ok().filter(|n| *n >= 0);
        match (kind, number) {
            ("rn", Some(file)) => self.rename_press(ev, press, file).await,
            ("fl" | "fa", Some(page)) => {
                self.files_press(ev, press, kind == "fa", page as u64).await
            }
            _ => {
                self.answer(ev, press, texts::NOT_OURS).await;
                Ok(format!(
                    "press ignored: unknown button data {:?}",
                    press.data
                ))
            }
        }
    }

    /// Answers a press (best effort: the spinner stops by itself after a while).
    async fn answer(&self, ev: &Event, press: &Press, text: &str) {
        if let Err(e) = self.deps.chat.answer(ev.chat, press, text).await {
            log::warn!("chat_id={}: answering a press failed: {e}", ev.chat);
        }
    }

    /// Shows upload progress to the person.
    pub async fn on_progress(self: Rc<Self>, p: UploadProgress) {
        let Some((chat, message_id, text)) = self.progress_edit(&p) else {
            return;
        };
        if let Err(e) = self.deps.chat.edit(chat, message_id, &text, None).await {
            if !e.not_modified {
                log::warn!("chat_id={chat} progress edit failed: {e}");
            }
        }
    }
}

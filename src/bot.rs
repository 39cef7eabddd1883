//! The document bot (capability A): greets a user once, asks for documents, and stores every
//! document it is sent in S3 while showing the upload's progress.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::actors::airtable::FlushOutbox;
use crate::actors::archive::FlushArchive;
use crate::actors::store::{IsGreeted, PutOutbox, SetGreeted, StoreActor};
use crate::actors::store_files::RecordSavedFile;
use crate::actors::uploader::{ProgressState, Upload, UploadError, UploadProgress};
use crate::actors::worker::{HandlerError, HandlerFactory, Outcome, UpdateHandler};
use crate::archive::{archive_key, ARCHIVE_OUTBOX};
use crate::button::{self, ButtonKey, AIRTABLE_OUTBOX};
use crate::keys::document_key;
use crate::ratelimit::SharedLimiter;
use crate::settings::{
    AirtableSettings, ArchiveSettings, ButtonSettings, SecuritySettings, Settings,
};
use crate::telegram::{
    CallbackQuery, Document, IncomingUpdate, Message, TelegramClient, TelegramError,
};

/// The bot's texts. The bracketed markers are part of the product's contract.
pub mod texts {
    /// Reply to a user's first message.
    pub const GREETING: &str =
        "[greeting] Hello! Send me a file as a document and I will save it to S3.";
    /// Reply to a later message without a document.
    pub const DOCUMENT_REQUIRED: &str =
        "[document is required] Please send a file as a document (use the paperclip, then \"File\").";
    /// Reply to a photo sent as a photo.
    pub const PHOTO_IS_NOT_A_DOCUMENT: &str =
        "[document is required] A photo is not a document: please send the picture as a file.";
    /// Reply to a user who is not on the allowlist.
    pub const NOT_ALLOWED: &str = "Sorry, this bot is private and cannot serve you.";
}

/// A progress message being kept up to date.
struct ProgressView {
    chat_id: i64,
    message_id: i64,
    name: String,
    last_edit: Instant,
    last_text: String,
    edits: u32,
}

/// Users whose greeting one worker remembers in memory.
const GREETED_CACHE: usize = 100_000;

/// The document bot; one per worker.
pub struct DocumentBot {
    telegram: Rc<TelegramClient>,
    uploader: Recipient<Upload>,
    store: Addr<StoreActor>,
    security: SecuritySettings,
    buttons: ButtonSettings,
    airtable: AirtableSettings,
    button_key: ButtonKey,
    airtable_flush: Option<Recipient<FlushOutbox>>,
    archive: ArchiveSettings,
    archive_flush: Option<Recipient<FlushArchive>>,
    bot_username: Option<String>,
    download_limit: Option<u64>,
    max_key_bytes: usize,
    progress_interval: Duration,
    greeted: RefCell<HashSet<i64>>,
    progress: RefCell<HashMap<u64, ProgressView>>,
    next_ticket: Cell<u64>,
}

impl DocumentBot {
    /// A bot using its own Telegram client and the shared uploader, store and rate limiter.
    pub fn new(settings: &Settings, deps: BotDeps) -> Self {
        let max_file = settings.security.max_file_bytes;
        let download_limit = match (settings.telegram.download_limit(), max_file) {
            (limit, 0) => limit,
            (Some(limit), max) => Some(limit.min(max)),
            (None, max) => Some(max),
        };
        Self {
            telegram: Rc::new(TelegramClient::new(&settings.telegram).with_limiter(deps.limiter)),
            uploader: deps.uploader,
            store: deps.store,
            security: settings.security.clone(),
            buttons: settings.button.clone(),
            airtable: settings.airtable.clone(),
            button_key: ButtonKey::from_token(settings.telegram.token.expose()),
            airtable_flush: deps.airtable,
            archive: settings.archive.clone(),
            archive_flush: deps.archive,
            bot_username: deps.bot_username,
            download_limit,
            max_key_bytes: settings.s3.max_key_bytes,
            progress_interval: Duration::from_millis(settings.telegram.progress_interval_ms),
            greeted: RefCell::new(HashSet::new()),
            progress: RefCell::new(HashMap::new()),
            next_ticket: Cell::new(1),
        }
    }

    /// A factory building one bot per worker.
    pub fn factory(settings: Arc<Settings>, deps: BotDeps) -> HandlerFactory {
        Arc::new(move |_worker| {
            Rc::new(DocumentBot::new(&settings, deps.clone())) as Rc<dyn UpdateHandler>
        })
    }

    async fn reply(&self, msg: &Message, text: &str) -> Result<i64, HandlerError> {
        self.telegram
            .send_message(msg.chat.id, text, Some(msg.message_id))
            .await
            .map(|m| m.message_id)
            .map_err(|e| reply_error(&e))
    }

    /// Caches that the user was greeted; the cache is a bounded convenience (the store is the
    /// record), emptied when it reaches [`GREETED_CACHE`] users.
    fn remember_greeted(&self, user: i64) {
        let mut greeted = self.greeted.borrow_mut();
        if greeted.len() >= GREETED_CACHE {
            greeted.clear();
        }
        greeted.insert(user);
    }

    /// Whether the user was greeted before (cached per worker; one user's chat always lands on
    /// the same worker).
    async fn was_greeted(&self, user: i64) -> Result<bool, HandlerError> {
        if self.greeted.borrow().contains(&user) {
            return Ok(true);
        }
        let known = self
            .store
            .send(IsGreeted(user))
            .await
            .map_err(|e| HandlerError::retryable(format!("store unavailable: {e}")))?
            .map_err(|e| HandlerError::retryable(e.to_string()))?;
        if known {
            self.remember_greeted(user);
        }
        Ok(known)
    }

    async fn handle_update(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> Outcome {
        let u = &update.update;
        if let Some(reason) = &u.malformed {
            return Ok(format!("skipped: malformed update ({reason})"));
        }
        if !admitted(&self.security, &update) {
            return self.turn_away(&update).await;
        }
        if let Some(query) = &u.callback_query {
            return self.handle_press(query).await;
        }
        let archived = self.archive_update(&update).await?;
        let Some(msg) = &u.message else {
            if let Some(key) = archived {
                return Ok(format!("archived as {key}"));
            }
            return Ok(match update.kind() {
                "unknown" => format!("skipped: unknown update kind {:?}", update.raw_fields()),
                kind => format!("skipped: {kind} is not handled by the document bot"),
            });
        };
        if !msg.chat.is_private() {
            let go = msg
                .text
                .as_deref()
                .is_some_and(|t| button::is_go_command(t, self.bot_username.as_deref()));
            if go {
                return self.go_command(msg).await;
            }
            return Ok(match archived {
                Some(key) => format!("archived as {key}"),
                None => format!("skipped: message in a {} chat", msg.chat.kind),
            });
        }
        let user = msg.from.as_ref().map_or(msg.chat.id, |f| f.id);
        if !self.was_greeted(user).await? {
            // Reply first, remember after: a crash in between greets again rather than never.
            match self.reply(msg, texts::GREETING).await {
                Ok(_) => {
                    self.remember_greeted(user);
                    self.store.do_send(SetGreeted(user));
                }
                // A document is stored even when the user cannot be greeted.
                Err(e) if msg.document.is_some() => log::warn!(
                    "chat_id={} the greeting was not sent ({e}); storing the document anyway",
                    msg.chat.id
                ),
                Err(e) => return Err(e),
            }
            if msg.document.is_none() {
                return Ok("greeted".into());
            }
        }
        match &msg.document {
            Some(doc) => self.save_document(msg, doc, progress).await,
            None if msg.photo.is_some() => {
                self.reply(msg, texts::PHOTO_IS_NOT_A_DOCUMENT).await?;
                Ok("photo refused: document is required".into())
            }
            None => {
                self.reply(msg, texts::DOCUMENT_REQUIRED).await?;
                Ok("document is required".into())
            }
        }
    }

    async fn save_document(
        &self,
        msg: &Message,
        doc: &Document,
        progress: Recipient<UploadProgress>,
    ) -> Outcome {
        let key = document_key(doc, self.max_key_bytes);
        if let (Some(limit), Some(size)) = (self.download_limit, doc.file_size) {
            if size > limit {
                self.reply(msg, &too_big_text(&key, Some(size), limit))
                    .await?;
                return Ok(format!(
                    "document refused: {size} bytes over the {limit}-byte download limit"
                ));
            }
        }
        let shown = format!(
            "[document] Receiving «{key}»{}…",
            size_suffix(doc.file_size)
        );
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        // The acknowledgement is best effort: the file is stored whether or not the user can
        // be told (a user who blocked the bot still sent the document).
        match self.reply(msg, &shown).await {
            Ok(message_id) => {
                self.progress.borrow_mut().insert(
                    ticket,
                    ProgressView {
                        chat_id: msg.chat.id,
                        message_id,
                        name: key.clone(),
                        last_edit: Instant::now(),
                        last_text: shown,
                        edits: 0,
                    },
                );
            }
            Err(e) => log::warn!(
                "chat_id={} the [document] acknowledgement was not sent ({e}); storing {key:?} anyway",
                msg.chat.id
            ),
        }
        let result = self
            .uploader
            .send(Upload {
                chat_id: msg.chat.id,
                file_id: doc.file_id.clone(),
                key: key.clone(),
                content_type: doc.mime_type.clone(),
                expected_size: doc.file_size,
                ticket,
                progress,
            })
            .await
            .unwrap_or(Err(UploadError::Unavailable));
        let view = self.progress.borrow_mut().remove(&ticket);
        match result {
            Ok(report) => {
                let saved = crate::store::SavedFile {
                    key: report.key.clone(),
                    platform: "telegram".into(),
                    user_id: msg.from.as_ref().map_or(msg.chat.id, |f| f.id),
                    chat_id: msg.chat.id,
                    bytes: report.bytes,
                    sha256: report.sha256.clone(),
                    file_id: doc.file_id.clone(),
                    file_unique_id: Some(doc.file_unique_id.clone()).filter(|u| !u.is_empty()),
                };
                self.record_saved(saved).await;
                if let Some(view) = view.filter(|v| v.edits > 0) {
                    let text = format!(
                        "[document] Received «{}»: 100% ({})",
                        view.name,
                        human_bytes(report.bytes)
                    );
                    self.edit(&view, &text).await;
                }
                let text = format!(
                    "[document has been saved] «{}» ({}) is stored in S3.",
                    report.key,
                    human_bytes(report.bytes)
                );
                // Best effort too: the file is stored, so a failed confirmation never repeats
                // the download and upload.
                let told = match self.reply(msg, &text).await {
                    Ok(_) => "",
                    Err(e) => {
                        log::error!(
                            "chat_id={} {:?} is stored but the confirmation was not sent: {e}",
                            msg.chat.id,
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
            Err(UploadError::Unavailable) => {
                // The uploader (or the store) restarted under the upload: try the update again.
                Err(HandlerError::retryable(format!(
                    "document {key:?}: the uploader restarted during the upload"
                )))
            }
            Err(UploadError::TooBig) => {
                let limit = self.download_limit.unwrap_or(0);
                self.reply(msg, &too_big_text(&key, doc.file_size, limit))
                    .await?;
                Ok("document refused: Telegram says the file is too big to download".into())
            }
            Err(e) => {
                let text = format!(
                    "Sorry, «{key}» could not be saved ({}). Please send it again.",
                    e.user_text()
                );
                let told = match self.reply(msg, &text).await {
                    Ok(_) => String::new(),
                    Err(told) => format!("; the user could not be told: {told}"),
                };
                Err(HandlerError::permanent(format!(
                    "document {key:?} not saved: {e}{told}"
                )))
            }
        }
    }

    /// Answers an update [`admitted`] refuses: a private message gets the polite refusal, a
    /// press its answer, anything else nothing. None of it was journaled, and nothing is kept.
    async fn turn_away(&self, update: &IncomingUpdate) -> Outcome {
        let u = &update.update;
        let chat = update.chat_id();
        if let Some(q) = &u.callback_query {
            let chat = chat.unwrap_or(q.from.id);
            if let Err(e) = self
                .telegram
                .answer_callback_query(chat, &q.id, texts::NOT_ALLOWED)
                .await
            {
                log::warn!("chat_id={chat}: answerCallbackQuery failed: {e}");
            }
            return Ok(format!(
                "refused: press by user {} in chat {chat}",
                q.from.id
            ));
        }
        match &u.message {
            Some(msg) if msg.chat.is_private() => {
                let from = msg.from.as_ref().map(|f| f.id);
                self.reply(msg, texts::NOT_ALLOWED).await?;
                Ok(format!("refused: user {from:?} is not on the allowlist"))
            }
            _ => Ok(format!("refused: chat {chat:?} is not on the allowlist")),
        }
    }

    /// Records a stored file. The object is in S3 already, so a store that is restarting is
    /// waited for (a few tries) rather than failing the update, which would store it again.
    async fn record_saved(&self, saved: crate::store::SavedFile) {
        let key = saved.key.clone();
        for attempt in 1..=5 {
            match self.store.send(RecordSavedFile(saved.clone())).await {
                Ok(Ok(())) => return,
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
    }

    /// Queues the raw update for the raw bucket when its chat is archived; returns its key.
    async fn archive_update(
        &self,
        update: &IncomingUpdate,
    ) -> Result<Option<String>, HandlerError> {
        let Some(key) = archive_key(&self.archive, update) else {
            return Ok(None);
        };
        self.store
            .send(PutOutbox {
                kind: ARCHIVE_OUTBOX,
                key: key.clone(),
                payload: update.raw.get().to_string(),
            })
            .await
            .map_err(|e| HandlerError::retryable(format!("store unavailable: {e}")))?
            .map_err(|e| HandlerError::retryable(e.to_string()))?;
        if let Some(flush) = &self.archive_flush {
            flush.do_send(FlushArchive);
        }
        Ok(Some(key))
    }

    /// `/go` in a group: an admin posts the button there.
    async fn go_command(&self, msg: &Message) -> Outcome {
        let from = msg.from.as_ref().map(|f| f.id);
        if !from.is_some_and(|id| self.buttons.admins.contains(&id)) {
            if self.archive.chats.contains(&msg.chat.id) {
                // Archived chats get no replies from the bot, refusals included.
                return Ok(format!(
                    "/go refused without a reply (archived chat): user {from:?} is not an admin"
                ));
            }
            self.reply(msg, button::texts::ADMINS_ONLY).await?;
            return Ok(format!("/go refused: user {from:?} is not an admin"));
        }
        let posted = button::post_button(
            &self.telegram,
            &self.button_key,
            msg.chat.id,
            &self.buttons.text,
            &self.buttons.label,
        )
        .await
        .map_err(|e| reply_error(&e))?;
        Ok(format!("/go: button posted as message_id={posted}"))
    }

    /// A press on an inline button: answered at once; the first press on one of our buttons
    /// becomes one Airtable row (via the durable outbox) and hides the keyboard.
    async fn handle_press(&self, q: &CallbackQuery) -> Outcome {
        let chat = q.message.as_ref().map_or(q.from.id, |m| m.chat.id);
        let answer = |text: &'static str| async move {
            if let Err(e) = self.telegram.answer_callback_query(chat, &q.id, text).await {
                log::warn!("chat_id={chat}: answerCallbackQuery failed: {e}");
            }
        };
        let Some(msg) = &q.message else {
            answer(button::texts::NOT_OURS).await;
            return Ok("press ignored: no message attached".into());
        };
        let ours = q
            .data
            .as_deref()
            .is_some_and(|d| self.button_key.verify(chat, d));
        if !ours {
            answer(button::texts::NOT_OURS).await;
            return Ok(format!(
                "press ignored: message_id={} is not one of our buttons",
                msg.message_id
            ));
        }
        let fields = button::row_fields(&self.airtable, chat, &q.from, crate::clock::now_millis());
        let new = self
            .store
            .send(PutOutbox {
                kind: AIRTABLE_OUTBOX,
                key: format!("{chat}:{}", msg.message_id),
                payload: serde_json::json!({ "fields": fields }).to_string(),
            })
            .await
            .map_err(|e| HandlerError::retryable(format!("store unavailable: {e}")))?
            .map_err(|e| HandlerError::retryable(e.to_string()))?;
        if !new {
            answer(button::texts::ALREADY_RECORDED).await;
            return Ok(format!(
                "press by user {} on message_id={}: already recorded",
                q.from.id, msg.message_id
            ));
        }
        answer(button::texts::RECORDED).await;
        if let Some(flush) = &self.airtable_flush {
            flush.do_send(FlushOutbox);
        }
        // The keyboard edit waits for the group's message limit; the next press in this chat
        // must not wait behind it, so it runs on its own.
        let (telegram, message_id) = (self.telegram.clone(), msg.message_id);
        actix_rt::spawn(async move {
            if let Err(e) = telegram.remove_keyboard(chat, message_id).await {
                if !e.is_not_modified() {
                    log::warn!(
                        "chat_id={chat}: could not hide the keyboard of message_id={message_id}: {e}"
                    );
                }
            }
        });
        Ok(format!(
            "press by user {} on message_id={}: row queued for Airtable",
            q.from.id, msg.message_id
        ))
    }

    async fn edit(&self, view: &ProgressView, text: &str) {
        if let Err(e) = self
            .telegram
            .edit_message_text(view.chat_id, view.message_id, text)
            .await
        {
            if !e.is_not_modified() {
                log::warn!("chat_id={} progress edit failed: {e}", view.chat_id);
            }
        }
    }
}

/// Everything a bot shares with the other workers' bots.
#[derive(Clone)]
pub struct BotDeps {
    /// The uploader.
    pub uploader: Recipient<Upload>,
    /// The durable store.
    pub store: Addr<StoreActor>,
    /// The process-wide outgoing rate limiter.
    pub limiter: SharedLimiter,
    /// The raw-bucket writer, when archiving is on.
    pub archive: Option<Recipient<FlushArchive>>,
    /// The Airtable writer, when Airtable is configured.
    pub airtable: Option<Recipient<FlushOutbox>>,
    /// The bot's own username, to recognise `/go@<bot>`.
    pub bot_username: Option<String>,
}

/// Whether the service may serve an update and keep anything of it: its chat is allowed (for
/// every kind of update), and a private message or a button press comes from an allowed user.
/// Messages in allowed groups are archived whoever wrote them.
pub fn admitted(security: &SecuritySettings, update: &IncomingUpdate) -> bool {
    let (users, chats) = (&security.allowed_user_ids, &security.allowed_chat_ids);
    if !chats.is_empty() && !update.chat_id().is_some_and(|c| chats.contains(&c)) {
        return false;
    }
    if users.is_empty() {
        return true;
    }
    let u = &update.update;
    let user = match (&u.callback_query, u.any_message()) {
        (Some(q), _) => Some(q.from.id),
        (None, Some(m)) if m.chat.is_private() => m.from.as_ref().map(|f| f.id),
        _ => return true,
    };
    user.is_some_and(|id| users.contains(&id))
}

/// A failed reply: worth retrying when Telegram was unavailable, final when it refused.
fn reply_error(e: &TelegramError) -> HandlerError {
    let message = format!("reply failed: {e}");
    if e.is_retryable() {
        HandlerError::retryable(message)
    } else {
        HandlerError::permanent(message)
    }
}

impl UpdateHandler for DocumentBot {
    fn handle(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> LocalBoxFuture<'static, Outcome> {
        self.handle_update(update, progress).boxed_local()
    }

    fn on_progress(self: Rc<Self>, p: UploadProgress) -> LocalBoxFuture<'static, ()> {
        async move {
            let text = {
                let mut views = self.progress.borrow_mut();
                let Some(view) = views.get_mut(&p.ticket) else {
                    return;
                };
                let text = match &p.state {
                    ProgressState::Bytes { bytes, total } => {
                        if view.last_edit.elapsed() < self.progress_interval {
                            return;
                        }
                        progress_text(&view.name, *bytes, *total)
                    }
                    ProgressState::Retrying {
                        attempt,
                        reason,
                        next_in,
                    } => retry_text(&view.name, *attempt, reason, *next_in),
                };
                if text == view.last_text {
                    return;
                }
                view.last_edit = Instant::now();
                view.last_text = text.clone();
                view.edits += 1;
                (view.chat_id, view.message_id, text)
            };
            if let Err(e) = self
                .telegram
                .edit_message_text(text.0, text.1, &text.2)
                .await
            {
                if !e.is_not_modified() {
                    log::warn!("chat_id={} progress edit failed: {e}", text.0);
                }
            }
        }
        .boxed_local()
    }
}

/// The progress line shown while a file is stored.
pub fn progress_text(name: &str, bytes: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(total) => format!(
            "[document] Receiving «{name}»: {}% ({} of {})",
            (bytes.min(total) * 100 / total),
            human_bytes(bytes),
            human_bytes(total)
        ),
        None => format!("[document] Receiving «{name}»: {}", human_bytes(bytes)),
    }
}

/// The progress line shown while a failed attempt waits for its retry.
pub fn retry_text(name: &str, attempt: u32, reason: &str, next_in: Duration) -> String {
    format!(
        "[document] Receiving «{name}»: attempt {attempt} failed ({reason}). Trying again in {} s…",
        next_in.as_secs_f64().ceil() as u64
    )
}

fn too_big_text(name: &str, size: Option<u64>, limit: u64) -> String {
    let size = size.map_or(String::new(), |s| format!(" is {} and", human_bytes(s)));
    format!(
        "[document] «{name}»{size} is over the {} limit of Telegram's cloud Bot API, so it was not saved. \
         Send a smaller file (the service can take larger ones when it runs with a local Bot API server).",
        human_bytes(limit)
    )
}

fn size_suffix(size: Option<u64>) -> String {
    size.map_or(String::new(), |s| format!(" ({})", human_bytes(s)))
}

/// Bytes in 1024-based units labelled KB, MB, GB, as Telegram's own apps show file sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: serde_json::Value) -> IncomingUpdate {
        IncomingUpdate::parse(serde_json::value::RawValue::from_string(json.to_string()).unwrap())
            .unwrap()
    }

    #[test]
    fn the_allowlists_apply_to_every_kind_of_update() {
        let private = |user: i64| {
            update(
                serde_json::json!({"update_id": 1, "message": {"message_id": 1, "date": 0,
                "from": {"id": user, "is_bot": false, "first_name": "U"},
                "chat": {"id": user, "type": "private"}, "text": "hi"}}),
            )
        };
        let group = |chat: i64, user: i64| {
            update(
                serde_json::json!({"update_id": 2, "message": {"message_id": 1, "date": 0,
                "from": {"id": user, "is_bot": false, "first_name": "U"},
                "chat": {"id": chat, "type": "supergroup"}, "text": "/go"}}),
            )
        };
        let edited = |chat: i64| {
            update(
                serde_json::json!({"update_id": 3, "edited_message": {"message_id": 1,
                "date": 0, "chat": {"id": chat, "type": "group"}, "text": "x"}}),
            )
        };
        let post = |chat: i64| {
            update(
                serde_json::json!({"update_id": 4, "channel_post": {"message_id": 1,
                "date": 0, "chat": {"id": chat, "type": "channel"}, "text": "x"}}),
            )
        };
        let press = |chat: i64, user: i64| {
            update(
                serde_json::json!({"update_id": 5, "callback_query": {"id": "q",
                "from": {"id": user, "is_bot": false, "first_name": "U"}, "chat_instance": "c",
                "data": "go:1", "message": {"message_id": 9, "date": 0,
                "chat": {"id": chat, "type": "supergroup"}}}}),
            )
        };
        let open = SecuritySettings {
            allowed_user_ids: vec![],
            allowed_chat_ids: vec![],
            max_file_bytes: 0,
        };
        assert!(admitted(&open, &private(7)) && admitted(&open, &press(-5, 7)));
        let chats = SecuritySettings {
            allowed_chat_ids: vec![-5, 7],
            ..open.clone()
        };
        assert!(admitted(&chats, &private(7)));
        assert!(!admitted(&chats, &private(8)));
        assert!(admitted(&chats, &group(-5, 1)));
        for refused in [group(-6, 1), edited(-6), post(-6), press(-6, 7)] {
            assert!(!admitted(&chats, &refused), "{}", refused.kind());
        }
        let users = SecuritySettings {
            allowed_user_ids: vec![7],
            ..open
        };
        assert!(admitted(&users, &private(7)) && admitted(&users, &press(-5, 7)));
        assert!(!admitted(&users, &private(8)) && !admitted(&users, &press(-5, 8)));
        assert!(
            admitted(&users, &group(-5, 8)),
            "a group is archived whoever writes in it"
        );
    }

    #[test]
    fn markers_are_verbatim() {
        assert!(texts::GREETING.starts_with("[greeting]"));
        assert!(texts::DOCUMENT_REQUIRED.starts_with("[document is required]"));
        assert!(texts::PHOTO_IS_NOT_A_DOCUMENT.contains("[document is required]"));
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(40 * 1024 * 1024), "40.0 MB");
        assert_eq!(human_bytes(20_971_520), "20.0 MB");
        assert_eq!(human_bytes(1_073_741_824), "1.0 GB");
    }

    #[test]
    fn progress_shows_percent() {
        assert_eq!(
            progress_text("a.pdf", 10 * 1024 * 1024, Some(40 * 1024 * 1024)),
            "[document] Receiving «a.pdf»: 25% (10.0 MB of 40.0 MB)"
        );
        assert_eq!(
            progress_text("a.pdf", 5, None),
            "[document] Receiving «a.pdf»: 5 B"
        );
    }
}

//! The Telegram bot: a router that hands each update to its capability. Private messages and
//! presses on the conversation's buttons go to the documents [`Conversation`] (through the
//! Telegram adapter of the neutral chat interface); `/go` and presses on the go button to
//! [`go::GoButton`]; messages of archived chats to [`archive::Archiver`]. Updates from people
//! or chats the allowlists refuse are answered politely and nothing of them is kept.
//!
//! May import: every layer below it (`conversation` and down).

pub mod archive;
pub mod go;
pub mod telegram_chat;
pub mod vk_chat;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::actors::airtable::FlushOutbox;
use crate::actors::archive::FlushArchive;
use crate::actors::fence::{ClaimFence, FencedChat};
use crate::actors::objects::ObjectsPort;
use crate::actors::store::StoreActor;
use crate::actors::uploader::{Upload, UploadProgress};
use crate::actors::worker::{HandlerError, HandlerFactory, Outcome, UpdateHandler};
use crate::clients::telegram::ratelimit::SharedLimiter;
use crate::clients::telegram::{TelegramClient, TelegramError};
use crate::clients::vk::{Pace, VkClient, VkConfig};
use crate::config::{SecuritySettings, Settings};
use crate::conversation::{Conversation, ConversationDeps};
use crate::domain::button::{self, ButtonKey};
use crate::domain::chat::ChatPort;
use crate::domain::inbound::admitted;
use crate::domain::inbound::IncomingUpdate;
use telegram_chat::{message_event, press_event, TelegramChat};
use vk_chat::{vk_event, VkChat};

pub use crate::conversation::texts;

/// The bot of one worker.
pub struct Bot {
    telegram: Rc<TelegramClient>,
    security: SecuritySettings,
    bot_username: Option<String>,
    conversation: Rc<Conversation>,
    /// The same conversation on VK, when the VK bot runs.
    vk: Option<Rc<Conversation>>,
    go: go::GoButton,
    archiver: archive::Archiver,
}

/// Everything a bot shares with the other workers' bots.
#[derive(Clone)]
pub struct BotDeps {
    /// The uploader.
    pub uploader: Recipient<Upload>,
    /// Object operations on the documents bucket (the uploader's too).
    pub objects: ObjectsPort,
    /// The durable store.
    pub store: Addr<StoreActor>,
    /// The process-wide outgoing rate limiter.
    pub limiter: SharedLimiter,
    /// The raw-bucket writer, when archiving is on.
    pub archive: Option<Recipient<FlushArchive>>,
    /// The Airtable writer, when Airtable is configured.
    pub airtable: Option<Recipient<FlushOutbox>>,
    /// The bot's own username, to recognise `/go@<bot>` and `/files@<bot>`.
    pub bot_username: Option<String>,
    /// The VK client's settings and the token's shared pace, when the VK bot runs.
    pub vk: Option<(VkConfig, Pace)>,
    /// Where retries and rate limits are counted.
    pub metrics: Arc<crate::obs::metrics::Metrics>,
    /// With replicas: the claims' fence, which holds back the effects of an update whose chat
    /// another replica took over.
    pub fence: Option<Arc<ClaimFence>>,
}

/// Fails (retryably) when the update in hand in `chat` may no longer have effects: another
/// replica took the chat over and handles the update.
pub(crate) async fn still_held(
    fence: Option<&Arc<ClaimFence>>,
    chat: i64,
) -> Result<(), HandlerError> {
    match fence {
        Some(fence) if !fence.allows(chat).await => Err(HandlerError::retryable(format!(
            "chat_id={chat} was taken over by another replica; it handles this update"
        ))),
        _ => Ok(()),
    }
}

/// `chat`, fenced when there is a fence.
fn fenced(chat: Rc<dyn ChatPort>, fence: Option<&Arc<ClaimFence>>) -> Rc<dyn ChatPort> {
    match fence {
        Some(fence) => Rc::new(FencedChat::new(chat, fence.clone())),
        None => chat,
    }
}

/// Progress tickets of the VK conversation start here, apart from Telegram's.
const VK_TICKETS: u64 = 1 << 40;

impl Bot {
    /// A bot using its own Telegram client and the shared uploader, store and rate limiter.
    pub fn new(settings: &Settings, deps: BotDeps) -> Self {
        let max_file = settings.security.max_file_bytes;
        let download_limit = match (settings.telegram.download_limit(), max_file) {
            (limit, 0) => limit,
            (Some(limit), max) => Some(limit.min(max)),
            (None, max) => Some(max),
        };
        let telegram = Rc::new(
            TelegramClient::new(&settings.telegram)
                .with_limiter(deps.limiter)
                .with_metrics(deps.metrics.clone()),
        );
        let conversation_deps = ConversationDeps {
            chat: fenced(
                Rc::new(TelegramChat::new(telegram.clone())),
                deps.fence.as_ref(),
            ),
            uploader: deps.uploader,
            objects: deps.objects,
            store: deps.store.clone(),
            admins: settings.button.admins.clone(),
            download_limit,
            max_key_bytes: settings.s3.max_key_bytes,
            progress_interval: Duration::from_millis(settings.telegram.progress_interval_ms),
            first_ticket: 1,
        };
        let vk = deps.vk.map(|(config, pace)| {
            let client = Rc::new(VkClient::new(config, pace).with_metrics(deps.metrics.clone()));
            Rc::new(Conversation::new(ConversationDeps {
                chat: fenced(Rc::new(VkChat::new(client)), deps.fence.as_ref()),
                admins: settings.vk.admins.clone(),
                // VK serves documents of any size the community accepts.
                download_limit: (settings.security.max_file_bytes > 0)
                    .then_some(settings.security.max_file_bytes),
                first_ticket: VK_TICKETS,
                ..conversation_deps.clone()
            }))
        });
        let conversation = Conversation::new(conversation_deps);
        Self {
            go: go::GoButton {
                telegram: telegram.clone(),
                store: deps.store.clone(),
                settings: settings.button.clone(),
                airtable: settings.airtable.clone(),
                button_key: ButtonKey::from_token(settings.telegram.token.expose()),
                airtable_flush: deps.airtable,
                archived_chats: settings.archive.chats.clone(),
                fence: deps.fence.clone(),
            },
            archiver: archive::Archiver {
                store: deps.store,
                settings: settings.archive.clone(),
                flush: deps.archive,
                fence: deps.fence.clone(),
            },
            telegram,
            security: settings.security.clone(),
            bot_username: deps.bot_username,
            conversation: Rc::new(conversation),
            vk,
        }
    }

    /// A factory building one bot per worker.
    pub fn factory(settings: Arc<Settings>, deps: BotDeps) -> HandlerFactory {
        Arc::new(move |_worker| Rc::new(Bot::new(&settings, deps.clone())) as Rc<dyn UpdateHandler>)
    }

    /// Routes one update to its capability.
    async fn route(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> Outcome {
        let u = &update.update;
        if let Some(reason) = &u.malformed {
            return Ok(format!("skipped: malformed update ({reason})"));
        }
        if update.vk.is_some() {
            return self.route_vk(update, progress).await;
        }
        if !admitted(&self.security, &update) {
            return self.turn_away(&update).await;
        }
        if let Some(query) = &u.callback_query {
            let go =
                query.message.is_none() || query.data.as_deref().is_some_and(button::is_go_data);
            if go {
                return self.go.press(query).await;
            }
            let event = press_event(&update, query);
            return self.conversation.clone().handle(event, progress).await;
        }
        let archived = self.archiver.archive(&update).await?;
        let Some(msg) = &u.message else {
            if let Some(key) = archived {
                return Ok(format!("archived as {key}"));
            }
            return Ok(match update.kind() {
                "unknown" => format!("skipped: unknown update kind {:?}", update.raw_fields()),
                kind => format!("skipped: {kind} is not handled by the bot"),
            });
        };
        if let Some(event) = message_event(&update, msg, self.bot_username.as_deref()) {
            return self.conversation.clone().handle(event, progress).await;
        }
        let go = msg
            .text
            .as_deref()
            .is_some_and(|t| button::is_go_command(t, self.bot_username.as_deref()));
        if go {
            return self.go.command(msg).await;
        }
        Ok(match archived {
            Some(key) => format!("archived as {key}"),
            None => format!("skipped: message in a {} chat", msg.chat.kind),
        })
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
                self.telegram
                    .send_message(msg.chat.id, texts::NOT_ALLOWED, Some(msg.message_id))
                    .await
                    .map_err(|e| reply_error(&e))?;
                Ok(format!("refused: user {from:?} is not on the allowlist"))
            }
            _ => Ok(format!("refused: chat {chat:?} is not on the allowlist")),
        }
    }
}

/// A failed reply: worth retrying when Telegram was unavailable, final when it refused.
pub(crate) fn reply_error(e: &TelegramError) -> HandlerError {
    crate::conversation::reply_error(telegram_chat::chat_error(e))
}

impl Bot {
    /// A VK event: private messages and presses go to the VK conversation.
    async fn route_vk(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> Outcome {
        let Some(conversation) = self.vk.clone() else {
            return Ok("skipped: a VK event, and the VK bot is not running".into());
        };
        match vk_event(&update, None) {
            Some(event) => conversation.handle(event, progress).await,
            None => Ok(format!(
                "skipped: VK {} is not handled by the bot",
                update.vk.as_ref().map_or("event", |v| v.kind.as_str())
            )),
        }
    }
}

impl UpdateHandler for Bot {
    fn handle(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> LocalBoxFuture<'static, Outcome> {
        self.route(update, progress).boxed_local()
    }

    fn on_progress(self: Rc<Self>, p: UploadProgress) -> LocalBoxFuture<'static, ()> {
        // Each conversation knows its own tickets (they start apart).
        let conversation = match &self.vk {
            Some(vk) if p.ticket >= VK_TICKETS => vk.clone(),
            _ => self.conversation.clone(),
        };
        conversation.on_progress(p).boxed_local()
    }
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
}

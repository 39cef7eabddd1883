//! The go button (capability B) in a chat: `/go` from an admin posts it, and the first press
//! on one of our buttons becomes one Airtable row through the durable outbox.

use std::rc::Rc;

use actix::prelude::*;

use super::reply_error;
use crate::actors::airtable::FlushOutbox;
use crate::actors::store::{PutOutbox, StoreActor};
use crate::actors::worker::{HandlerError, Outcome};
use crate::clients::telegram::{CallbackQuery, Message, TelegramClient};
use crate::config::{AirtableSettings, ButtonSettings};
use crate::domain::button::{self, ButtonKey, AIRTABLE_OUTBOX};

/// The go button's side of the bot.
pub struct GoButton {
    /// The Bot API client.
    pub telegram: Rc<TelegramClient>,
    /// The durable store (the outbox of rows).
    pub store: Addr<StoreActor>,
    /// Text, label and admins of the button.
    pub settings: ButtonSettings,
    /// Columns of the row.
    pub airtable: AirtableSettings,
    /// Signs and checks `callback_data`.
    pub button_key: ButtonKey,
    /// The Airtable writer, when Airtable is configured.
    pub airtable_flush: Option<Recipient<FlushOutbox>>,
    /// With replicas: the claims' fence (no row once another replica took the chat over).
    pub fence: Option<std::sync::Arc<crate::actors::fence::ClaimFence>>,
    /// Archived chats get no replies from the bot.
    pub archived_chats: Vec<i64>,
}

impl GoButton {
    /// `/go` in a group: an admin posts the button there.
    pub async fn command(&self, msg: &Message) -> Outcome {
        let from = msg.from.as_ref().map(|f| f.id);
        if !from.is_some_and(|id| self.settings.admins.contains(&id)) {
            if self.archived_chats.contains(&msg.chat.id) {
                // Archived chats get no replies from the bot, refusals included.
                return Ok(format!(
                    "/go refused without a reply (archived chat): user {from:?} is not an admin"
                ));
            }
            self.telegram
                .send_message(
                    msg.chat.id,
                    button::texts::ADMINS_ONLY,
                    Some(msg.message_id),
                )
                .await
                .map_err(|e| reply_error(&e))?;
            return Ok(format!("/go refused: user {from:?} is not an admin"));
        }
        let posted = button::post_button(
            &self.telegram,
            &self.button_key,
            msg.chat.id,
            &self.settings.text,
            &self.settings.label,
        )
        .await
        .map_err(|e| reply_error(&e))?;
        Ok(format!("/go: button posted as message_id={posted}"))
    }

    /// A press on an inline button: answered at once; the first press on one of our buttons
    /// becomes one Airtable row (via the durable outbox) and hides the keyboard.
    pub async fn press(&self, q: &CallbackQuery) -> Outcome {
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
        super::still_held(self.fence.as_ref(), chat).await?;
        let fields = button::row_fields(
            &self.airtable,
            chat,
            &q.from,
            crate::util::clock::now_millis(),
        );
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
}

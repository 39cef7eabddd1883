//! The Telegram adapter of the neutral chat interface: private messages and button presses
//! become [`Event`]s, and [`ChatPort`] calls become Bot API calls.

use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture};
use serde_json::{json, Value};

use crate::clients::telegram::{CallbackQuery, Message, TelegramClient, TelegramError};
use crate::domain::chat::{
    parse_command, ChatError, ChatPort, Event, EventKind, IncomingDocument, Keyboard, Person,
    Platform, Press, Reply,
};
use crate::domain::inbound::IncomingUpdate;

/// [`ChatPort`] over the Bot API.
pub struct TelegramChat {
    client: Rc<TelegramClient>,
}

impl TelegramChat {
    /// A port sending through `client`.
    pub fn new(client: Rc<TelegramClient>) -> Self {
        Self { client }
    }
}

/// An inline keyboard as Bot API `reply_markup`.
fn markup(keyboard: &Keyboard) -> Value {
    let rows: Vec<Vec<Value>> = keyboard
        .iter()
        .map(|row| {
            row.iter()
                .map(|b| json!({"text": b.label, "callback_data": b.data}))
                .collect()
        })
        .collect();
    json!({ "inline_keyboard": rows })
}

/// A Bot API failure in neutral terms.
pub fn chat_error(e: &TelegramError) -> ChatError {
    ChatError {
        message: e.to_string(),
        retryable: e.is_retryable(),
        not_modified: e.is_not_modified(),
    }
}

impl ChatPort for TelegramChat {
    fn send<'a>(
        &'a self,
        chat: i64,
        text: &'a str,
        reply: Reply<'a>,
    ) -> LocalBoxFuture<'a, Result<i64, ChatError>> {
        async move {
            self.client
                .send_message_with(chat, text, reply.quote, reply.keyboard.map(markup))
                .await
                .map(|m| m.message_id)
                .map_err(|e| chat_error(&e))
        }
        .boxed_local()
    }

    fn edit<'a>(
        &'a self,
        chat: i64,
        message_id: i64,
        text: &'a str,
        keyboard: Option<&'a Keyboard>,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        async move {
            self.client
                .edit_message_with(chat, message_id, text, keyboard.map(markup))
                .await
                .map_err(|e| chat_error(&e))
        }
        .boxed_local()
    }

    fn answer<'a>(
        &'a self,
        chat: i64,
        press: &'a Press,
        text: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        async move {
            self.client
                .answer_callback_query(chat, &press.id, text)
                .await
                .map_err(|e| chat_error(&e))
        }
        .boxed_local()
    }
}

/// The event of a private message, or `None` for messages in groups and channels.
pub fn message_event(
    update: &IncomingUpdate,
    msg: &Message,
    bot_username: Option<&str>,
) -> Option<Event> {
    if !msg.chat.is_private() {
        return None;
    }
    let kind = if let Some(doc) = &msg.document {
        EventKind::Document(IncomingDocument {
            file: doc.file_id.clone(),
            name: doc.file_name.clone(),
            unique_id: Some(doc.file_unique_id.clone()).filter(|u| !u.is_empty()),
            mime_type: doc.mime_type.clone(),
            size: doc.file_size,
        })
    } else if msg.photo.is_some() {
        EventKind::Photo
    } else if let Some(text) = &msg.text {
        match parse_command(text, bot_username) {
            Some((name, args)) => EventKind::Command { name, args },
            None => EventKind::Text(text.clone()),
        }
    } else {
        EventKind::Other("a message without text or a document".into())
    };
    Some(Event {
        person: Person {
            platform: Platform::Telegram,
            user: msg.from.as_ref().map_or(msg.chat.id, |f| f.id),
        },
        chat: msg.chat.id,
        reference: reference(update),
        message_id: Some(msg.message_id),
        kind,
    })
}

/// The event of a press on a button in a private chat.
pub fn press_event(update: &IncomingUpdate, q: &CallbackQuery) -> Event {
    let chat = q.message.as_ref().map_or(q.from.id, |m| m.chat.id);
    Event {
        person: Person {
            platform: Platform::Telegram,
            user: q.from.id,
        },
        chat,
        reference: reference(update),
        message_id: None,
        kind: EventKind::Press(Press {
            id: q.id.clone(),
            data: q.data.clone().unwrap_or_default(),
            message_id: q.message.as_ref().map(|m| m.message_id),
        }),
    }
}

/// The event reference of an update: stable across replays.
pub fn reference(update: &IncomingUpdate) -> String {
    format!("telegram:{}", update.update_id)
}

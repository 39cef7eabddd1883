//! The VK adapter of the neutral chat interface: `message_new` and `message_event` (a callback
//! button press) in a community's private dialogs become [`Event`]s, and [`ChatPort`] calls
//! become `messages.send` (with a `random_id` derived from the event and the text, so a
//! replayed reply is delivered once), `messages.edit` and `messages.sendMessageEventAnswer`.

use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture};
use serde_json::{json, Value};

use crate::clients::vk::{random_id, MessageEvent, MessageNew, VkClient, VkError};
use crate::domain::chat::{
    parse_command, ChatError, ChatPort, Event, EventKind, IncomingDocument, Keyboard, Person,
    Platform, Press, Reply,
};
use crate::domain::inbound::IncomingUpdate;

/// [`ChatPort`] over VK's API.
pub struct VkChat {
    client: Rc<VkClient>,
}

impl VkChat {
    /// A port sending through `client`.
    pub fn new(client: Rc<VkClient>) -> Self {
        Self { client }
    }
}

/// A VK failure in neutral terms.
pub fn chat_error(e: &VkError) -> ChatError {
    ChatError {
        message: e.to_string(),
        retryable: e.is_retryable(),
        not_modified: false,
    }
}

/// An inline keyboard of callback buttons; each payload carries the button's data.
pub fn keyboard_json(keyboard: &Keyboard) -> Value {
    let rows: Vec<Vec<Value>> = keyboard
        .iter()
        .map(|row| {
            row.iter()
                .map(|b| {
                    let payload = json!({ "d": b.data }).to_string();
                    json!({"action": {"type": "callback", "label": b.label, "payload": payload}})
                })
                .collect()
        })
        .collect();
    json!({"inline": true, "buttons": rows})
}

impl ChatPort for VkChat {
    fn send<'a>(
        &'a self,
        chat: i64,
        text: &'a str,
        reply: Reply<'a>,
    ) -> LocalBoxFuture<'a, Result<i64, ChatError>> {
        async move {
            let keyboard = reply.keyboard.map(keyboard_json);
            let id = random_id(&format!("{}\n{chat}\n{text}", reply.event));
            self.client
                .send(chat, text, id, keyboard.as_ref(), reply.quote)
                .await
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
            // Without a keyboard, an edit keeps none (as on Telegram).
            let keyboard = keyboard_json(keyboard.unwrap_or(&Vec::new()));
            self.client
                .edit(chat, message_id, text, Some(&keyboard))
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
            // Presses come from private dialogs, where the dialog is the person.
            self.client
                .answer_event(&press.id, chat, chat, text)
                .await
                .map_err(|e| chat_error(&e))
        }
        .boxed_local()
    }
}

/// The event of a VK update, or `None` for what the conversation does not handle (messages in
/// group conversations, the community's own messages, other event types).
pub fn vk_event(update: &IncomingUpdate, bot_name: Option<&str>) -> Option<Event> {
    let vk = update.vk.as_ref()?;
    let reference = format!("vk:{}", vk.event_id);
    match vk.kind.as_str() {
        "message_new" => {
            let m = serde_json::from_value::<MessageNew>(vk.object.clone())
                .ok()?
                .message;
            if m.peer_id != m.from_id || m.from_id <= 0 {
                return None;
            }
            let doc = m.attachments.iter().find_map(|a| a.doc.as_ref());
            let kind = if let Some(doc) = doc {
                EventKind::Document(IncomingDocument {
                    file: doc.url.clone(),
                    name: Some(doc.title.clone()).filter(|t| !t.is_empty()),
                    unique_id: Some(format!("{}_{}", doc.owner_id, doc.id)),
                    mime_type: None,
                    size: doc.size,
                })
            } else if m.attachments.iter().any(|a| a.kind == "photo") {
                EventKind::Photo
            } else if !m.text.is_empty() {
                match parse_command(&m.text, bot_name) {
                    Some((name, args)) => EventKind::Command { name, args },
                    None => EventKind::Text(m.text.clone()),
                }
            } else {
                let what = m
                    .attachments
                    .first()
                    .map_or("an empty message".to_string(), |a| format!("a {}", a.kind));
                EventKind::Other(what)
            };
            Some(Event {
                person: Person {
                    platform: Platform::Vk,
                    user: m.from_id,
                },
                chat: m.peer_id,
                reference,
                message_id: Some(m.id).filter(|id| *id > 0),
                kind,
            })
        }
        "message_event" => {
            let e = serde_json::from_value::<MessageEvent>(vk.object.clone()).ok()?;
            if e.peer_id != e.user_id {
                return None;
            }
            let data = e.payload["d"].as_str().unwrap_or_default().to_string();
            Some(Event {
                person: Person {
                    platform: Platform::Vk,
                    user: e.user_id,
                },
                chat: e.peer_id,
                reference,
                message_id: None,
                kind: EventKind::Press(Press {
                    id: e.event_id,
                    data,
                    message_id: e.conversation_message_id,
                }),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chat::Button;
    use crate::domain::inbound::VK_IDS;
    use serde_json::value::RawValue;

    fn update(event: Value) -> IncomingUpdate {
        let raw = RawValue::from_string(event.to_string()).unwrap();
        IncomingUpdate::from_vk(VK_IDS + 1, &raw).unwrap()
    }

    #[test]
    fn messages_and_presses_become_events() {
        let doc = update(
            json!({"type": "message_new", "event_id": "e1", "object": {"message": {
            "id": 9, "from_id": 7, "peer_id": 7, "text": "",
            "attachments": [{"type": "doc", "doc": {"id": 3, "owner_id": 7, "title": "Отчёт.pdf", "size": 12, "ext": "pdf", "url": "https://vk.example/doc"}}]}}}),
        );
        let ev = vk_event(&doc, None).unwrap();
        assert_eq!(
            (ev.person.platform, ev.person.user, ev.chat),
            (Platform::Vk, 7, 7)
        );
        assert_eq!(ev.reference, "vk:e1");
        assert!(
            matches!(&ev.kind, EventKind::Document(d) if d.name.as_deref() == Some("Отчёт.pdf") && d.size == Some(12) && d.file == "https://vk.example/doc")
        );
        let photo = update(
            json!({"type": "message_new", "event_id": "e2", "object": {"message": {
            "id": 10, "from_id": 7, "peer_id": 7, "text": "look", "attachments": [{"type": "photo", "photo": {}}]}}}),
        );
        assert!(matches!(
            vk_event(&photo, None).unwrap().kind,
            EventKind::Photo
        ));
        let command = update(
            json!({"type": "message_new", "event_id": "e3", "object": {"message": {
            "id": 11, "from_id": 7, "peer_id": 7, "text": "/files all"}}}),
        );
        assert!(
            matches!(vk_event(&command, None).unwrap().kind, EventKind::Command { ref name, ref args } if name == "files" && args == "all")
        );
        let group = update(
            json!({"type": "message_new", "event_id": "e4", "object": {"message": {
            "id": 12, "from_id": 7, "peer_id": 2000000001, "text": "hi"}}}),
        );
        assert!(vk_event(&group, None).is_none());
        let press = update(
            json!({"type": "message_event", "event_id": "e5", "object": {
            "user_id": 7, "peer_id": 7, "event_id": "abc", "payload": {"d": "rn:4"}, "conversation_message_id": 3}}),
        );
        let ev = vk_event(&press, None).unwrap();
        assert!(
            matches!(&ev.kind, EventKind::Press(p) if p.id == "abc" && p.data == "rn:4" && p.message_id == Some(3))
        );
    }

    #[test]
    fn keyboards_are_inline_callback_buttons() {
        let k = keyboard_json(&vec![vec![Button::new("Rename", "rn:4")]]);
        assert_eq!(k["inline"], true);
        let action = &k["buttons"][0][0]["action"];
        assert_eq!(
            (action["type"].as_str(), action["label"].as_str()),
            (Some("callback"), Some("Rename"))
        );
        let payload: Value = serde_json::from_str(action["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["d"], "rn:4");
    }
}

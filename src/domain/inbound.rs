//! What the journal holds: one incoming update of any platform, with its journal id, its raw
//! JSON exactly as received, and its parsed form. Journal ids are namespaced per platform:
//! Telegram's `update_id`s are never negative, VK events get ids from [`VK_IDS`] on, in the
//! order they arrived, so the journal orders each platform's updates as they came.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::clients::telegram::Update;
use crate::clients::vk::VkEvent;

/// The first journal id of VK events (far below any Telegram `update_id`).
pub const VK_IDS: i64 = -(1 << 62);
/// VK dialogs are routed as chat `VK_CHATS + peer_id`, apart from every Telegram chat id.
pub const VK_CHATS: i64 = 1 << 60;

/// One journaled update: a Telegram update as fetched (its id, the raw JSON exactly as
/// Telegram sent it, and the parsed form), or a VK event in the journal's envelope
/// `{"update_id": <id>, "vk": <the event exactly as VK sent it>}`.
#[derive(Debug)]
pub struct IncomingUpdate {
    /// The journal id: Telegram's `update_id`, or for a VK event [`VK_IDS`] plus the store's
    /// sequence number of the event.
    pub update_id: i64,
    /// The update exactly as it was received (for VK, in its envelope).
    pub raw: Box<RawValue>,
    /// The parsed Telegram update (empty for a VK event).
    pub update: Update,
    /// The parsed VK event, for one.
    pub vk: Option<VkEvent>,
}

impl IncomingUpdate {
    /// Parses one element of a `getUpdates` result. An element whose `update_id` cannot be read
    /// is an error; one whose body does not fit the known types is kept as [`UpdateKind::Malformed`].
    pub fn parse(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct IdOnly {
            update_id: i64,
        }
        let IdOnly { update_id } = serde_json::from_str(raw.get())?;
        if update_id < 0 {
            return Self::parse_vk(update_id, raw);
        }
        let update = match serde_json::from_str::<Update>(raw.get()) {
            Ok(update) => update,
            Err(err) => Update::empty(update_id, Some(err.to_string())),
        };
        Ok(Self {
            update_id,
            raw,
            update,
            vk: None,
        })
    }

    /// A VK event in its journal envelope. An event that does not parse is kept with its kind
    /// `malformed` and the parser's message, as a Telegram update would be.
    fn parse_vk(update_id: i64, raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Envelope {
            vk: VkEvent,
        }
        let (vk, malformed) = match serde_json::from_str::<Envelope>(raw.get()) {
            Ok(envelope) => (Some(envelope.vk), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Self {
            update_id,
            raw,
            update: Update::empty(update_id, malformed),
            vk,
        })
    }

    /// A VK event (as VK sent it) wrapped for the journal under id `update_id`.
    pub fn from_vk(update_id: i64, event: &RawValue) -> Result<Self, serde_json::Error> {
        let raw = RawValue::from_string(format!(
            "{{\"update_id\":{update_id},\"vk\":{}}}",
            event.get()
        ))?;
        Self::parse(raw)
    }
    /// The chat the update belongs to, used to keep one chat's updates in order.
    pub fn chat_id(&self) -> Option<i64> {
        if let Some(event) = &self.vk {
            return event.peer_id().map(|peer| VK_CHATS + peer);
        }
        let u = &self.update;
        u.any_message()
            .map(|m| m.chat.id)
            .or_else(|| {
                u.callback_query
                    .as_ref()
                    .and_then(|q| q.message.as_ref())
                    .map(|m| m.chat.id)
            })
            .or_else(|| u.callback_query.as_ref().map(|q| q.from.id))
    }

    /// A short name of the update's kind, for logs.
    pub fn kind(&self) -> &'static str {
        let u = &self.update;
        if let Some(event) = &self.vk {
            return match event.kind.as_str() {
                "message_new" => "vk_message_new",
                "message_event" => "vk_message_event",
                _ => "vk_other",
            };
        }
        if u.malformed.is_some() {
            "malformed"
        } else if u.message.is_some() {
            "message"
        } else if u.edited_message.is_some() {
            "edited_message"
        } else if u.channel_post.is_some() {
            "channel_post"
        } else if u.edited_channel_post.is_some() {
            "edited_channel_post"
        } else if u.callback_query.is_some() {
            "callback_query"
        } else {
            "unknown"
        }
    }

    /// The top-level field names of the raw update other than `update_id`, for logging unknown kinds.
    pub fn raw_fields(&self) -> Vec<String> {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(self.raw.get())
            .map(|m| m.keys().filter(|k| *k != "update_id").cloned().collect())
            .unwrap_or_default()
    }
}

/// Whether the service may serve an update and keep anything of it: its chat is allowed (for
/// every kind of update), and a private message or a button press comes from an allowed user.
/// Messages in allowed groups are archived whoever wrote them.
pub fn admitted(security: &crate::config::SecuritySettings, update: &IncomingUpdate) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vk_event_travels_in_its_journal_envelope() {
        let event = RawValue::from_string(
            r#"{"type":"message_new","event_id":"e1","object":{"message":{"id":3,"from_id":7,"peer_id":7,"text":"hi"}}}"#.into(),
        )
        .unwrap();
        let u = IncomingUpdate::from_vk(VK_IDS + 5, &event).unwrap();
        assert_eq!(u.update_id, VK_IDS + 5);
        assert_eq!(u.kind(), "vk_message_new");
        assert_eq!(u.chat_id(), Some(VK_CHATS + 7));
        assert!(u.update.message.is_none() && u.update.malformed.is_none());
        // The journal keeps the envelope; reading it back gives the same event.
        let again =
            IncomingUpdate::parse(RawValue::from_string(u.raw.get().into()).unwrap()).unwrap();
        assert_eq!(again.vk.unwrap().event_id, "e1");
        let broken = RawValue::from_string(format!(
            r#"{{"update_id":{},"vk":{{"object":1}}}}"#,
            VK_IDS + 6
        ))
        .unwrap();
        let broken = IncomingUpdate::parse(broken).unwrap();
        assert!(broken.vk.is_none() && broken.update.malformed.is_some());
        assert_eq!(broken.kind(), "malformed");
    }
}

//! The parts of VK's objects the service reads. Unknown fields are ignored; the raw JSON of
//! every event is kept beside its parsed form.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A Bots Long Poll session: where to ask, with which key, from which event on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LongPollServer {
    /// The long-poll server's URL.
    pub server: String,
    /// The session key (a secret: never logged).
    pub key: String,
    /// The number of the last event.
    #[serde(deserialize_with = "number_or_string")]
    pub ts: String,
}

/// An answer of the long-poll server.
#[derive(Debug)]
pub enum PollAnswer {
    /// New events, and the `ts` to ask from next.
    Events {
        /// Next `ts`.
        ts: String,
        /// The events, raw.
        updates: Vec<Box<RawValue>>,
    },
    /// `failed: 1`: the history is out of date; go on from the new `ts` (events may be lost).
    NewTs(String),
    /// `failed: 2`: the key expired; get a new one with `groups.getLongPollServer`.
    KeyExpired,
    /// `failed: 3`: the session is lost; get a new key and `ts`.
    SessionLost,
}

impl PollAnswer {
    /// Parses a long-poll answer.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "opt_number_or_string")]
            ts: Option<String>,
            updates: Option<Vec<Box<RawValue>>>,
            failed: Option<i64>,
        }
        let raw: Raw = serde_json::from_slice(body)?;
        let missing = |what| serde::de::Error::custom(format!("a long-poll answer without {what}"));
        Ok(match raw.failed {
            Some(1) => Self::NewTs(raw.ts.ok_or_else(|| missing("ts"))?),
            Some(2) => Self::KeyExpired,
            Some(_) => Self::SessionLost,
            None => Self::Events {
                ts: raw.ts.ok_or_else(|| missing("ts"))?,
                updates: raw.updates.ok_or_else(|| missing("updates"))?,
            },
        })
    }
}

/// One community event.
#[derive(Debug, Clone, Deserialize)]
pub struct VkEvent {
    /// `message_new`, `message_event`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique id of the event.
    #[serde(default)]
    pub event_id: String,
    /// The event's object.
    #[serde(default)]
    pub object: Value,
}

impl VkEvent {
    /// The dialog the event belongs to: `object.message.peer_id` for messages,
    /// `object.peer_id` for presses.
    pub fn peer_id(&self) -> Option<i64> {
        self.object["message"]["peer_id"]
            .as_i64()
            .or_else(|| self.object["peer_id"].as_i64())
    }
}

/// `message_new`'s object.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageNew {
    /// The message.
    pub message: VkMessage,
}

/// A private or conversation message.
#[derive(Debug, Clone, Deserialize)]
pub struct VkMessage {
    /// Message id in the community's dialogs.
    #[serde(default)]
    pub id: i64,
    /// Sender.
    pub from_id: i64,
    /// The dialog (the user's id in a private chat, 2000000000 + n in conversations).
    pub peer_id: i64,
    /// Text.
    #[serde(default)]
    pub text: String,
    /// Attachments.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The payload of a keyboard button that sent this message.
    pub payload: Option<String>,
}

/// One attachment of a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// `doc`, `photo`, `sticker`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The document, for `doc`.
    pub doc: Option<VkDoc>,
}

/// A document attachment.
#[derive(Debug, Clone, Deserialize)]
pub struct VkDoc {
    /// Document id.
    #[serde(default)]
    pub id: i64,
    /// Owner id.
    #[serde(default)]
    pub owner_id: i64,
    /// File name.
    #[serde(default)]
    pub title: String,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Extension.
    #[serde(default)]
    pub ext: String,
    /// Download URL (time-limited).
    #[serde(default)]
    pub url: String,
}

/// `message_event`'s object: a press on a callback button.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageEvent {
    /// Who pressed.
    pub user_id: i64,
    /// The dialog.
    pub peer_id: i64,
    /// Id to answer the press with (valid for a minute).
    pub event_id: String,
    /// The button's payload.
    #[serde(default)]
    pub payload: Value,
    /// The message the button belongs to, by its number in the dialog.
    pub conversation_message_id: Option<i64>,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_number_or_string(d)?.ok_or_else(|| serde::de::Error::custom("a null ts"))
}

fn opt_number_or_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(serde::de::Error::custom(format!("ts is {other}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_poll_answers_follow_vk() {
        let events =
            PollAnswer::parse(br#"{"ts":"4","updates":[{"type":"message_new","object":{}}]}"#)
                .unwrap();
        assert!(
            matches!(events, PollAnswer::Events { ref ts, ref updates } if ts == "4" && updates.len() == 1)
        );
        assert!(
            matches!(PollAnswer::parse(br#"{"failed":1,"ts":30}"#).unwrap(), PollAnswer::NewTs(ts) if ts == "30")
        );
        assert!(matches!(
            PollAnswer::parse(br#"{"failed":2}"#).unwrap(),
            PollAnswer::KeyExpired
        ));
        assert!(matches!(
            PollAnswer::parse(br#"{"failed":3}"#).unwrap(),
            PollAnswer::SessionLost
        ));
        assert!(PollAnswer::parse(br#"{"updates":[]}"#).is_err());
        assert!(PollAnswer::parse(b"<html>").is_err());
    }

    #[test]
    fn a_message_with_a_document_is_read() {
        let raw = r#"{"message":{"id":5,"from_id":7,"peer_id":7,"text":"","attachments":[
            {"type":"doc","doc":{"id":1,"owner_id":7,"title":"Отчёт.pdf","size":300,"ext":"pdf","url":"http://x/doc"}},
            {"type":"photo","photo":{"id":2}}]}}"#;
        let m: MessageNew = serde_json::from_str(raw).unwrap();
        assert_eq!(m.message.attachments.len(), 2);
        let doc = m.message.attachments[0].doc.as_ref().unwrap();
        assert_eq!((doc.title.as_str(), doc.size), ("Отчёт.pdf", Some(300)));
        assert!(m.message.attachments[1].doc.is_none());
    }
}

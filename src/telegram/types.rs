//! The parts of the Bot API's objects the service reads. Unknown fields are ignored, so new
//! Bot API versions do not break parsing; the raw JSON of every update is kept beside it.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One update as fetched: its id, the raw JSON exactly as Telegram sent it, and the parsed form.
#[derive(Debug)]
pub struct IncomingUpdate {
    /// `update_id`, increasing per bot.
    pub update_id: i64,
    /// The update exactly as Telegram sent it.
    pub raw: Box<RawValue>,
    /// The parsed update.
    pub update: Update,
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
        let update = match serde_json::from_str::<Update>(raw.get()) {
            Ok(update) => update,
            Err(err) => Update {
                update_id,
                message: None,
                edited_message: None,
                channel_post: None,
                edited_channel_post: None,
                callback_query: None,
                malformed: Some(err.to_string()),
            },
        };
        Ok(Self {
            update_id,
            raw,
            update,
        })
    }

    /// The chat the update belongs to, used to keep one chat's updates in order.
    pub fn chat_id(&self) -> Option<i64> {
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

/// An incoming update.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    /// Update identifier.
    pub update_id: i64,
    /// A new message.
    pub message: Option<Message>,
    /// An edited message.
    pub edited_message: Option<Message>,
    /// A new channel post.
    pub channel_post: Option<Message>,
    /// An edited channel post.
    pub edited_channel_post: Option<Message>,
    /// A press on an inline button.
    pub callback_query: Option<CallbackQuery>,
    /// Why the body could not be parsed, if it could not.
    #[serde(skip)]
    pub malformed: Option<String>,
}

impl Update {
    /// The message of any message-like kind.
    pub fn any_message(&self) -> Option<&Message> {
        self.message
            .as_ref()
            .or(self.edited_message.as_ref())
            .or(self.channel_post.as_ref())
            .or(self.edited_channel_post.as_ref())
    }
}

/// A message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Message identifier inside the chat.
    pub message_id: i64,
    /// Sender; absent in channels.
    pub from: Option<User>,
    /// The chat.
    pub chat: Chat,
    /// Unix time the message was sent.
    #[serde(default)]
    pub date: i64,
    /// Text of a text message.
    pub text: Option<String>,
    /// A general file.
    pub document: Option<Document>,
    /// A photo sent as a photo (not a document).
    pub photo: Option<serde_json::Value>,
}

/// A user or bot.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// User identifier.
    pub id: i64,
    /// Whether this is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// Username, without `@`.
    pub username: Option<String>,
}

/// A chat.
#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    /// Chat identifier.
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl Chat {
    /// Whether this is a one-to-one chat with a user.
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

/// A general file sent as a document.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    /// Identifier to download the file.
    pub file_id: String,
    /// Identifier stable across bots and time.
    pub file_unique_id: String,
    /// File name as the sender's client gave it.
    pub file_name: Option<String>,
    /// MIME type as given by the sender.
    pub mime_type: Option<String>,
    /// File size in bytes; may exceed 2^31.
    pub file_size: Option<u64>,
}

/// A press on an inline keyboard button.
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    /// Query identifier, to answer it.
    pub id: String,
    /// Who pressed.
    pub from: User,
    /// The message the button belongs to.
    pub message: Option<Message>,
    /// The button's data.
    pub data: Option<String>,
}

/// A file ready to be downloaded (`getFile`).
#[derive(Debug, Clone, Deserialize)]
pub struct File {
    /// Identifier.
    pub file_id: String,
    /// Size, if known.
    pub file_size: Option<u64>,
    /// Path for the download URL, or an absolute local path on a `--local` server.
    pub file_path: Option<String>,
}

/// The parts of a sent message the service needs.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessage {
    /// Identifier of the sent message.
    pub message_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> IncomingUpdate {
        IncomingUpdate::parse(RawValue::from_string(json.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn document_message_with_unknown_fields() {
        let u = parse(
            r#"{"update_id":7,"message":{"message_id":3,"from":{"id":5,"is_bot":false,"first_name":"Ann","new_field":1},
            "chat":{"id":5,"type":"private"},"date":1700000000,
            "document":{"file_id":"F","file_unique_id":"U","file_name":"Памятка наставника_KTS.pdf","file_size":5000000000}}}"#,
        );
        assert_eq!(u.kind(), "message");
        assert_eq!(u.chat_id(), Some(5));
        let doc = u.update.message.unwrap().document.unwrap();
        assert_eq!(doc.file_name.as_deref(), Some("Памятка наставника_KTS.pdf"));
        assert_eq!(doc.file_size, Some(5_000_000_000));
    }

    #[test]
    fn unknown_kind_lists_its_fields() {
        let u = parse(r#"{"update_id":8,"poll":{"id":"1"}}"#);
        assert_eq!(u.kind(), "unknown");
        assert_eq!(u.raw_fields(), ["poll"]);
        assert_eq!(u.chat_id(), None);
    }

    #[test]
    fn malformed_body_is_kept_with_its_reason() {
        let u = parse(r#"{"update_id":9,"message":{"message_id":"not a number"}}"#);
        assert_eq!(u.kind(), "malformed");
        assert_eq!(u.update_id, 9);
        assert!(u.update.malformed.is_some());
    }

    #[test]
    fn missing_update_id_is_an_error() {
        let raw = RawValue::from_string(r#"{"message":{}}"#.to_string()).unwrap();
        assert!(IncomingUpdate::parse(raw).is_err());
    }

    #[test]
    fn raw_json_is_kept_verbatim() {
        let json = r#"{"update_id":10,"message":{"message_id":1,"chat":{"id":-100,"type":"group"},"date":1,"text":"hi","x":[1,2]}}"#;
        assert_eq!(parse(json).raw.get(), json);
    }
}

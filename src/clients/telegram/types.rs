//! The parts of the Bot API's objects the service reads. Unknown fields are ignored, so new
//! Bot API versions do not break parsing; the raw JSON of every update is kept beside it.

use serde::Deserialize;

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
    /// An update with no content: a VK event's Telegram side, or one that did not parse.
    pub fn empty(update_id: i64, malformed: Option<String>) -> Self {
        Self {
            update_id,
            message: None,
            edited_message: None,
            channel_post: None,
            edited_channel_post: None,
            callback_query: None,
            malformed,
        }
    }

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

/// `getWebhookInfo`'s answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookInfo {
    /// The webhook URL; empty when none is set.
    #[serde(default)]
    pub url: String,
    /// Updates waiting for delivery.
    #[serde(default)]
    pub pending_update_count: u64,
    /// Unix time of the last delivery error.
    pub last_error_date: Option<i64>,
    /// Telegram's text of the last delivery error.
    pub last_error_message: Option<String>,
    /// The connection limit in effect.
    pub max_connections: Option<u32>,
    /// Update kinds requested.
    pub allowed_updates: Option<Vec<String>>,
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
    use serde_json::value::RawValue;

    use crate::domain::inbound::IncomingUpdate;

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

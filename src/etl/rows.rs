//! A row of the daily Parquet file, read from one raw update: the original pipeline's columns,
//! then what Telegram says about the message (schema v2, listed in `docs/archive.md`).

use serde_json::Value;

/// The update kinds that carry a message, in the order they are looked for.
pub const MESSAGE_KINDS: [&str; 4] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
];

/// Media kinds, in the order they are looked for: an animation also carries a `document`, so
/// it comes first.
pub const MEDIA_KINDS: [&str; 8] = [
    "photo",
    "animation",
    "video",
    "video_note",
    "voice",
    "audio",
    "sticker",
    "document",
];

/// Where a raw object came from, when it was not the bot (top-level field of imported objects).
pub const SOURCE_FIELD: &str = "tg_ingest_source";

/// One row of the output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// `message_id`.
    pub message_id: i64,
    /// `from.id`.
    pub user_id: Option<i64>,
    /// `from.is_bot`.
    pub user_is_bot: Option<bool>,
    /// `from.first_name`.
    pub user_first_name: Option<String>,
    /// `chat.id`.
    pub chat_id: i64,
    /// `chat.type`.
    pub chat_type: String,
    /// `text`, if a text message.
    pub text: Option<String>,
    /// `date`, Unix seconds.
    pub date: i64,
    /// `update_id`.
    pub update_id: i64,
    /// `message`, `edited_message`, `channel_post` or `edited_channel_post`.
    pub update_kind: String,
    /// `edit_date`.
    pub edit_date: Option<i64>,
    /// `caption` of a media message.
    pub caption: Option<String>,
    /// `entities` (or `caption_entities`), as JSON text.
    pub entities: Option<String>,
    /// `reply_to_message.message_id`.
    pub reply_to_message_id: Option<i64>,
    /// `message_thread_id` (forum topics, threads of replies).
    pub message_thread_id: Option<i64>,
    /// `media_group_id` (albums).
    pub media_group_id: Option<String>,
    /// `forward_origin.type`: `user`, `hidden_user`, `chat` or `channel`.
    pub forward_origin_type: Option<String>,
    /// The chat or channel a forward came from.
    pub forward_from_chat_id: Option<i64>,
    /// The user a forward came from.
    pub forward_from_user_id: Option<i64>,
    /// When the forwarded message was first sent.
    pub forward_date: Option<i64>,
    /// The media the message carries, if any.
    pub media: Option<Media>,
    /// `bot` (seen live) or `import` (from a chat export).
    pub source: String,
    /// `from.username`.
    pub username: Option<String>,
    /// Whether it carried a document.
    pub has_document: bool,
    /// Whether it carried a photo.
    pub has_photo: bool,
}

/// The file a message carries, and what became of it in the raw bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Media {
    /// One of [`MEDIA_KINDS`].
    pub kind: String,
    /// `file_unique_id` (of the largest photo size for photos).
    pub file_unique_id: Option<String>,
    /// The file's key in the raw bucket, once stored.
    pub key: Option<String>,
    /// Bytes: as stored, else as Telegram declared them (`file_size`).
    pub bytes: Option<i64>,
    /// MIME type: as stored, else as declared.
    pub mime: Option<String>,
    /// Why the file was not stored (too big, gone, refused, kind not kept).
    pub skipped_reason: Option<String>,
}

/// Reads a row from a raw update; `Err` says why the object is not a message update.
pub fn row_from_raw(raw: &[u8]) -> Result<Row, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
    row_from_value(&v)
}

/// Reads a row from a parsed raw update.
pub fn row_from_value(v: &Value) -> Result<Row, String> {
    let update_id = v["update_id"].as_i64().ok_or("no update_id")?;
    let (kind, m) = message_of(v).ok_or("not a message update")?;
    let from = m.get("from").filter(|f| f.is_object());
    let (origin_type, from_chat, from_user, forward_date) = forward_origin(m);
    Ok(Row {
        message_id: m["message_id"].as_i64().ok_or("no message_id")?,
        user_id: from.and_then(|f| f["id"].as_i64()),
        user_is_bot: from.and_then(|f| f["is_bot"].as_bool()),
        user_first_name: text(from.and_then(|f| f.get("first_name"))),
        chat_id: m["chat"]["id"].as_i64().ok_or("no chat.id")?,
        chat_type: m["chat"]["type"].as_str().unwrap_or("unknown").to_string(),
        text: text(m.get("text")),
        date: m["date"].as_i64().ok_or("no date")?,
        update_id,
        update_kind: kind.to_string(),
        edit_date: m["edit_date"].as_i64(),
        caption: text(m.get("caption")),
        entities: ["entities", "caption_entities"]
            .into_iter()
            .find_map(|k| m.get(k).filter(|e| e.is_array()))
            .map(Value::to_string),
        reply_to_message_id: m["reply_to_message"]["message_id"].as_i64(),
        message_thread_id: m["message_thread_id"].as_i64(),
        media_group_id: text(m.get("media_group_id")),
        forward_origin_type: origin_type,
        forward_from_chat_id: from_chat,
        forward_from_user_id: from_user,
        forward_date,
        media: media_of(m),
        source: text(v.get(SOURCE_FIELD)).unwrap_or_else(|| "bot".to_string()),
        username: text(from.and_then(|f| f.get("username"))),
        has_document: m.get("document").is_some_and(Value::is_object),
        has_photo: m.get("photo").is_some_and(|p| !p.is_null()),
    })
}

/// The update's kind and its message object.
pub fn message_of(v: &Value) -> Option<(&'static str, &Value)> {
    MESSAGE_KINDS
        .into_iter()
        .find_map(|k| v.get(k).filter(|m| m.is_object()).map(|m| (k, m)))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// Type, source chat, source user and date of a forward: from `forward_origin` (Bot API 7.0
/// and later), else from the older `forward_from`, `forward_from_chat`, `forward_sender_name`.
fn forward_origin(m: &Value) -> (Option<String>, Option<i64>, Option<i64>, Option<i64>) {
    if let Some(o) = m.get("forward_origin").filter(|o| o.is_object()) {
        let chat = o["sender_chat"]["id"].as_i64().or(o["chat"]["id"].as_i64());
        return (
            text(o.get("type")),
            chat,
            o["sender_user"]["id"].as_i64(),
            o["date"].as_i64(),
        );
    }
    let date = m["forward_date"].as_i64();
    if let Some(user) = m["forward_from"]["id"].as_i64() {
        return (Some("user".into()), None, Some(user), date);
    }
    if let Some(chat) = m.get("forward_from_chat").filter(|c| c.is_object()) {
        let kind = if chat["type"] == "channel" {
            "channel"
        } else {
            "chat"
        };
        return (Some(kind.into()), chat["id"].as_i64(), None, date);
    }
    if m.get("forward_sender_name").is_some() {
        return (Some("hidden_user".into()), None, None, date);
    }
    (None, None, None, date)
}

/// The file object of a media message: for photos the largest size (by `file_size`, then by
/// area; Telegram lists sizes smallest first).
pub fn media_file(m: &Value) -> Option<(&'static str, &Value)> {
    let (kind, value) = MEDIA_KINDS
        .into_iter()
        .find_map(|k| m.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))?;
    if kind != "photo" {
        return value.is_object().then_some((kind, value));
    }
    let sizes = value.as_array()?;
    let area = |s: &Value| s["width"].as_i64().unwrap_or(0) * s["height"].as_i64().unwrap_or(0);
    sizes
        .iter()
        .filter(|s| s.is_object())
        .enumerate()
        .max_by_key(|(i, s)| (s["file_size"].as_i64().unwrap_or(0), area(s), *i))
        .map(|(_, s)| (kind, s))
}

fn media_of(m: &Value) -> Option<Media> {
    let (kind, file) = media_file(m)?;
    Some(Media {
        kind: kind.to_string(),
        file_unique_id: text(file.get("file_unique_id")),
        key: None,
        bytes: file["file_size"].as_i64(),
        mime: text(file.get("mime_type")),
        skipped_reason: None,
    })
}

#[cfg(test)]
mod tests;

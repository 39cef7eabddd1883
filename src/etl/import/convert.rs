//! Telegram Desktop chat exports (`result.json`): a chat's history as the app exports it, turned
//! into updates shaped like the Bot API's, so imported messages are archived, compacted and
//! queried like the ones the bot saw. The exported entry itself is kept beside the converted
//! message (`tg_ingest_export`), so nothing the export said is lost.

use serde_json::{json, Map, Value};

use crate::etl::rows::SOURCE_FIELD;

/// The field of an imported object that holds the exported entry as it was.
pub const EXPORT_FIELD: &str = "tg_ingest_export";

/// The chat an export is of, as the Bot API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportChat {
    /// Bot API chat id (`-100…` for supergroups and channels, negative for basic groups).
    pub id: i64,
    /// Bot API chat type: `private`, `group`, `supergroup` or `channel`.
    pub kind: &'static str,
    /// The chat's name.
    pub title: Option<String>,
}

impl ExportChat {
    /// The chat of an export's `id` and `type` (`private_supergroup`, `public_channel`,
    /// `private_group`, `personal_chat`, …).
    pub fn from_export(id: i64, export_type: &str, name: Option<String>) -> Self {
        let (kind, id) = match export_type {
            "private_supergroup" | "public_supergroup" => ("supergroup", channel_id(id)),
            "private_channel" | "public_channel" => ("channel", channel_id(id)),
            "private_group" => ("group", -id.abs()),
            _ => ("private", id),
        };
        Self {
            id,
            kind,
            title: name,
        }
    }
}

/// The Bot API id of a supergroup or channel from its bare id (`-100` and the id).
fn channel_id(bare: i64) -> i64 {
    if bare < 0 {
        bare
    } else {
        -1_000_000_000_000 - bare
    }
}

/// The deterministic `update_id` of an imported message: negative, so it never meets the ids
/// of updates the bot received, and distinct per chat and message.
pub fn import_update_id(chat: i64, message_id: i64) -> i64 {
    let chat_part = chat.unsigned_abs() % ((1 << 31) - 1);
    -(((chat_part as i64) << 32) + message_id.rem_euclid(1 << 32)) - 1
}

/// Why an exported entry cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadMessage {
    /// Not an object.
    NotAnObject,
    /// No numeric `id`.
    NoId,
    /// No usable `date_unixtime` (or `date`).
    NoDate,
}

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotAnObject => "not an object",
            Self::NoId => "no message id",
            Self::NoDate => "no date (date_unixtime)",
        })
    }
}

/// An exported message's id and Unix date.
pub fn id_and_date(entry: &Value) -> Result<(i64, i64), BadMessage> {
    let m = entry.as_object().ok_or(BadMessage::NotAnObject)?;
    let id = m
        .get("id")
        .and_then(Value::as_i64)
        .ok_or(BadMessage::NoId)?;
    let date = m
        .get("date_unixtime")
        .and_then(|d| d.as_str().and_then(|s| s.parse().ok()).or(d.as_i64()))
        .ok_or(BadMessage::NoDate)?;
    Ok((id, date))
}

/// The update an exported message becomes: `message` (or `channel_post` in a channel) with the
/// Bot API's field names, marked as imported, with the exported entry beside it.
pub fn to_update(chat: &ExportChat, entry: &Value) -> Result<Value, BadMessage> {
    let (id, date) = id_and_date(entry)?;
    let e = entry.as_object().ok_or(BadMessage::NotAnObject)?;
    let mut m = Map::new();
    m.insert("message_id".into(), json!(id));
    let mut chat_json = json!({"id": chat.id, "type": chat.kind});
    if let Some(title) = &chat.title {
        chat_json["title"] = json!(title);
    }
    m.insert("chat".into(), chat_json);
    m.insert("date".into(), json!(date));
    sender(e, &mut m);
    if let Some(edited) = e
        .get("edited_unixtime")
        .and_then(|d| d.as_str()?.parse::<i64>().ok())
    {
        m.insert("edit_date".into(), json!(edited));
    }
    if let Some(reply) = e.get("reply_to_message_id").and_then(Value::as_i64) {
        m.insert(
            "reply_to_message".into(),
            json!({"message_id": reply, "chat": m["chat"].clone()}),
        );
    }
    if let Some(origin) = forward_origin(e) {
        m.insert("forward_origin".into(), origin);
    }
    let media = media(e, &mut m);
    let (text, entities) = text_and_entities(e);
    if !text.is_empty() {
        let (t, ents) = if media {
            ("caption", "caption_entities")
        } else {
            ("text", "entities")
        };
        m.insert(t.into(), json!(text));
        if !entities.is_empty() {
            m.insert(ents.into(), Value::Array(entities));
        }
    }
    let kind = if chat.kind == "channel" {
        "channel_post"
    } else {
        "message"
    };
    Ok(json!({
        "update_id": import_update_id(chat.id, id),
        SOURCE_FIELD: "import",
        kind: Value::Object(m),
        EXPORT_FIELD: entry,
    }))
}

/// `from` for a user (`from_id` `user123`), `sender_chat` for a channel (`channel456`); the
/// actor of a service message likewise.
fn sender(e: &Map<String, Value>, m: &mut Map<String, Value>) {
    let (id, name) = match e.get("from_id").or(e.get("actor_id")) {
        Some(Value::String(id)) => (id.as_str(), e.get("from").or(e.get("actor"))),
        _ => return,
    };
    let name = name.and_then(Value::as_str).unwrap_or("");
    if let Some(user) = id.strip_prefix("user").and_then(|n| n.parse::<i64>().ok()) {
        m.insert(
            "from".into(),
            json!({"id": user, "is_bot": false, "first_name": name}),
        );
    } else if let Some(ch) = id
        .strip_prefix("channel")
        .and_then(|n| n.parse::<i64>().ok())
    {
        m.insert(
            "sender_chat".into(),
            json!({"id": channel_id(ch), "type": "channel", "title": name}),
        );
    }
}

/// `forward_origin` from `forwarded_from` (a name) and, in newer exports, `forwarded_from_id`.
fn forward_origin(e: &Map<String, Value>) -> Option<Value> {
    let name = e.get("forwarded_from")?;
    let name = name.as_str().unwrap_or("");
    let id = e
        .get("forwarded_from_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(user) = id.strip_prefix("user").and_then(|n| n.parse::<i64>().ok()) {
        return Some(
            json!({"type": "user", "sender_user": {"id": user, "is_bot": false, "first_name": name}}),
        );
    }
    if let Some(ch) = id
        .strip_prefix("channel")
        .and_then(|n| n.parse::<i64>().ok())
    {
        return Some(
            json!({"type": "channel", "chat": {"id": channel_id(ch), "type": "channel", "title": name}}),
        );
    }
    Some(json!({"type": "hidden_user", "sender_user_name": name}))
}

/// The Bot API field of an exported file's `media_type`.
fn media_field(media_type: Option<&str>) -> &'static str {
    match media_type {
        Some("sticker") => "sticker",
        Some("voice_message") => "voice",
        Some("video_message") => "video_note",
        Some("video_file") => "video",
        Some("animation") => "animation",
        Some("audio_file") => "audio",
        _ => "document",
    }
}

/// Puts the exported photo or file into `m` under the Bot API's field; answers whether there
/// was one. The exported path (relative to the export's folder) is kept as `export_path`.
fn media(e: &Map<String, Value>, m: &mut Map<String, Value>) -> bool {
    let copy = |from: &[(&str, &str)], into: &mut Map<String, Value>| {
        for (export, api) in from {
            if let Some(v) = e.get(*export) {
                into.insert((*api).into(), v.clone());
            }
        }
    };
    if let Some(path) = e.get("photo").and_then(Value::as_str) {
        let mut size = Map::new();
        size.insert("export_path".into(), json!(path));
        copy(
            &[
                ("width", "width"),
                ("height", "height"),
                ("photo_file_size", "file_size"),
            ],
            &mut size,
        );
        m.insert("photo".into(), json!([size]));
        return true;
    }
    let Some(path) = e.get("file").and_then(Value::as_str) else {
        return false;
    };
    let mut file = Map::new();
    file.insert("export_path".into(), json!(path));
    copy(
        &[
            ("file_name", "file_name"),
            ("mime_type", "mime_type"),
            ("file_size", "file_size"),
            ("duration_seconds", "duration"),
            ("width", "width"),
            ("height", "height"),
            ("performer", "performer"),
            ("title", "title"),
            ("sticker_emoji", "emoji"),
        ],
        &mut file,
    );
    let field = media_field(e.get("media_type").and_then(Value::as_str));
    m.insert(field.into(), Value::Object(file));
    true
}

/// The Bot API entity type of an exported `text_entities` type; `None` for plain text.
fn entity_type(export: &str) -> Option<&str> {
    Some(match export {
        "plain" => return None,
        "link" => "url",
        "phone" => "phone_number",
        "mention_name" => "text_mention",
        other => other,
    })
}

/// The message's text and its entities (offsets in UTF-16 code units, as the Bot API counts
/// them). `text` is a string, or an array of strings and `{type, text, …}` parts.
fn text_and_entities(e: &Map<String, Value>) -> (String, Vec<Value>) {
    let parts: Vec<Value> = match e.get("text") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(parts)) => parts.clone(),
        _ => Vec::new(),
    };
    let mut text = String::new();
    let mut entities = Vec::new();
    let mut offset = 0usize;
    for part in parts {
        let (piece, kind) = match &part {
            Value::String(s) => (s.as_str(), None),
            Value::Object(p) => (
                p.get("text").and_then(Value::as_str).unwrap_or(""),
                p.get("type").and_then(Value::as_str).and_then(entity_type),
            ),
            _ => continue,
        };
        let length = piece.encode_utf16().count();
        if let (Some(kind), true) = (kind, length > 0) {
            let mut entity = json!({"type": kind, "offset": offset, "length": length});
            if let Some(href) = part.get("href") {
                entity["url"] = href.clone();
            }
            if let Some(user) = part.get("user_id") {
                entity["user"] = json!({"id": user, "is_bot": false, "first_name": piece});
            }
            if let Some(lang) = part.get("language") {
                entity["language"] = lang.clone();
            }
            entities.push(entity);
        }
        text.push_str(piece);
        offset += length;
    }
    (text, entities)
}

#[cfg(test)]
mod tests;

use super::*;
use crate::etl::rows::row_from_value;

fn chat() -> ExportChat {
    ExportChat::from_export(1_234_567_890, "private_supergroup", Some("Team".into()))
}

#[test]
fn chats_get_their_bot_api_ids() {
    assert_eq!(chat().id, -1_001_234_567_890);
    assert_eq!(chat().kind, "supergroup");
    let channel = ExportChat::from_export(42, "public_channel", None);
    assert_eq!((channel.id, channel.kind), (-1_000_000_000_042, "channel"));
    let group = ExportChat::from_export(555, "private_group", None);
    assert_eq!((group.id, group.kind), (-555, "group"));
    let person = ExportChat::from_export(777, "personal_chat", None);
    assert_eq!((person.id, person.kind), (777, "private"));
}

#[test]
fn imported_update_ids_are_negative_distinct_and_stable() {
    let a = import_update_id(-1_001_234_567_890, 1);
    assert!(a < 0);
    assert_eq!(a, import_update_id(-1_001_234_567_890, 1));
    assert_ne!(a, import_update_id(-1_001_234_567_890, 2));
    assert_ne!(a, import_update_id(-1_001_234_567_891, 1));
    assert!(import_update_id(i64::MIN, i64::MAX) < 0, "no overflow");
}

#[test]
fn a_text_of_parts_becomes_text_and_entities_in_utf16_offsets() {
    let entry = json!({
        "id": 10, "type": "message", "date": "2026-11-20T12:00:00", "date_unixtime": "1795176000",
        "from": "Ann", "from_id": "user5",
        "text": ["Привет 👋 ", {"type": "bold", "text": "всем"}, ", see ",
                 {"type": "text_link", "text": "this", "href": "https://example.com"},
                 {"type": "plain", "text": "!"}],
        "edited": "2026-11-20T12:05:00", "edited_unixtime": "1795176300",
        "reply_to_message_id": 9
    });
    let u = to_update(&chat(), &entry).unwrap();
    let m = &u["message"];
    assert_eq!(m["text"], "Привет 👋 всем, see this!");
    assert_eq!(m["from"]["id"], 5);
    assert_eq!(m["edit_date"], 1_795_176_300);
    assert_eq!(m["reply_to_message"]["message_id"], 9);
    // "Привет 👋 " is 10 UTF-16 units (the emoji takes two).
    assert_eq!(
        m["entities"],
        json!([
            {"type": "bold", "offset": 10, "length": 4},
            {"type": "text_link", "offset": 20, "length": 4, "url": "https://example.com"}
        ])
    );
    assert_eq!(
        u[EXPORT_FIELD], entry,
        "the exported entry is kept as it was"
    );
    let row = row_from_value(&u).unwrap();
    assert_eq!(
        (row.source.as_str(), row.message_id, row.date, row.chat_id),
        ("import", 10, 1_795_176_000, -1_001_234_567_890)
    );
    assert_eq!(row.reply_to_message_id, Some(9));
}

#[test]
fn photos_files_forwards_and_service_messages_are_shaped_like_the_bot_api() {
    let photo = to_update(
        &chat(),
        &json!({"id": 1, "type": "message", "date_unixtime": "5", "from": "B", "from_id": "user6",
                "photo": "photos/photo_1.jpg", "width": 800, "height": 600, "photo_file_size": 1234,
                "text": "caption here", "forwarded_from": "News", "forwarded_from_id": "channel99"}),
    )
    .unwrap();
    let row = row_from_value(&photo).unwrap();
    assert_eq!(row.caption.as_deref(), Some("caption here"));
    assert_eq!(row.text, None);
    assert_eq!(
        row.media.as_ref().map(|m| (m.kind.as_str(), m.bytes)),
        Some(("photo", Some(1234)))
    );
    assert_eq!(row.forward_origin_type.as_deref(), Some("channel"));
    assert_eq!(row.forward_from_chat_id, Some(-1_000_000_000_099));
    let voice = to_update(
        &chat(),
        &json!({"id": 2, "type": "message", "date_unixtime": "6", "file": "voice_messages/a.ogg",
                "media_type": "voice_message", "mime_type": "audio/ogg", "duration_seconds": 3, "text": ""}),
    )
    .unwrap();
    assert_eq!(
        voice["message"]["voice"]["export_path"],
        "voice_messages/a.ogg"
    );
    assert_eq!(row_from_value(&voice).unwrap().media.unwrap().kind, "voice");
    let service = to_update(
        &chat(),
        &json!({"id": 3, "type": "service", "date_unixtime": "7", "actor": "C", "actor_id": "user7",
                "action": "pin_message", "message_id": 1, "text": ""}),
    )
    .unwrap();
    let row = row_from_value(&service).unwrap();
    assert_eq!((row.user_id, row.text), (Some(7), None));
    let post = to_update(
        &ExportChat::from_export(42, "public_channel", None),
        &json!({"id": 4, "type": "message", "date_unixtime": "8", "from": "Chan", "from_id": "channel42", "text": "hi"}),
    )
    .unwrap();
    let row = row_from_value(&post).unwrap();
    assert_eq!(
        (row.update_kind.as_str(), row.user_id),
        ("channel_post", None)
    );
}

#[test]
fn entries_without_id_or_date_say_so() {
    assert_eq!(
        to_update(&chat(), &json!({"type": "message", "date_unixtime": "1"})),
        Err(BadMessage::NoId)
    );
    assert_eq!(
        to_update(
            &chat(),
            &json!({"id": 1, "type": "message", "date": "2026"})
        ),
        Err(BadMessage::NoDate)
    );
    assert_eq!(
        to_update(&chat(), &json!([1])),
        Err(BadMessage::NotAnObject)
    );
}

use super::*;

#[test]
fn rows_come_from_messages_of_every_shape() {
    let r = row_from_raw(
        br#"{"update_id":9,"message":{"message_id":3,"from":{"id":5,"is_bot":false,"first_name":"Ann","username":"ann","x":1},
        "chat":{"id":-100,"type":"supergroup"},"date":1700000000,"text":"hi"}}"#,
    )
    .unwrap();
    assert_eq!(
        (r.message_id, r.user_id, r.chat_id, r.date, r.update_id),
        (3, Some(5), -100, 1_700_000_000, 9)
    );
    assert_eq!(r.text.as_deref(), Some("hi"));
    assert_eq!(r.username.as_deref(), Some("ann"));
    assert_eq!(r.source, "bot");
    assert_eq!(r.media, None);
    let photo = row_from_raw(
        br#"{"update_id":10,"channel_post":{"message_id":4,"chat":{"id":-200,"type":"channel"},"date":1,"photo":[{"file_id":"p"}]}}"#,
    )
    .unwrap();
    assert_eq!(photo.text, None);
    assert_eq!(photo.user_id, None, "channel posts have no from");
    assert!(photo.has_photo);
    assert_eq!(photo.update_kind, "channel_post");
    let edit = row_from_raw(
        br#"{"update_id":11,"edited_message":{"message_id":3,"chat":{"id":-100,"type":"group"},"date":1,"edit_date":2,"text":"hi!"}}"#,
    )
    .unwrap();
    assert_eq!(edit.edit_date, Some(2));
    assert!(row_from_raw(br#"{"update_id":12,"poll":{}}"#).is_err());
    assert!(row_from_raw(b"not json").is_err());
}

#[test]
fn replies_threads_albums_captions_and_entities_are_read() {
    let r = row_from_raw(
        br#"{"update_id":20,"message":{"message_id":7,"chat":{"id":-100,"type":"supergroup","is_forum":true},"date":5,
        "message_thread_id":3,"is_topic_message":true,"media_group_id":"1311","caption":"look",
        "caption_entities":[{"type":"bold","offset":0,"length":4}],
        "reply_to_message":{"message_id":6,"chat":{"id":-100,"type":"supergroup"},"date":4},
        "photo":[{"file_id":"s","file_unique_id":"AQs","file_size":900,"width":90,"height":60},
                 {"file_id":"l","file_unique_id":"AQl","file_size":80000,"width":1280,"height":853},
                 {"file_id":"m","file_unique_id":"AQm","file_size":20000,"width":320,"height":213}]}}"#,
    )
    .unwrap();
    assert_eq!(r.reply_to_message_id, Some(6));
    assert_eq!(r.message_thread_id, Some(3));
    assert_eq!(r.media_group_id.as_deref(), Some("1311"));
    assert_eq!(r.caption.as_deref(), Some("look"));
    assert_eq!(r.text, None);
    let entities: Value = serde_json::from_str(r.entities.as_deref().unwrap()).unwrap();
    assert_eq!(entities[0]["type"], "bold");
    let media = r.media.unwrap();
    assert_eq!(media.kind, "photo");
    assert_eq!(
        (media.file_unique_id.as_deref(), media.bytes),
        (Some("AQl"), Some(80_000)),
        "the largest size, wherever it is listed"
    );
    assert_eq!(media.key, None, "not stored yet");
}

#[test]
fn forwards_are_read_in_both_shapes_the_bot_api_has_used() {
    let origin = |json: &str| {
        let r = row_from_raw(json.as_bytes()).unwrap();
        (
            r.forward_origin_type,
            r.forward_from_chat_id,
            r.forward_from_user_id,
            r.forward_date,
        )
    };
    let m = |extra: &str| {
        format!(
            r#"{{"update_id":1,"message":{{"message_id":1,"chat":{{"id":-1,"type":"group"}},"date":9{extra}}}}}"#
        )
    };
    assert_eq!(
        origin(&m(
            r#","forward_origin":{"type":"channel","date":7,"chat":{"id":-1005,"type":"channel"},"message_id":3}"#
        )),
        (Some("channel".into()), Some(-1005), None, Some(7))
    );
    assert_eq!(
        origin(&m(
            r#","forward_origin":{"type":"user","date":6,"sender_user":{"id":42,"is_bot":false,"first_name":"B"}}"#
        )),
        (Some("user".into()), None, Some(42), Some(6))
    );
    assert_eq!(
        origin(&m(
            r#","forward_origin":{"type":"hidden_user","date":5,"sender_user_name":"C"}"#
        )),
        (Some("hidden_user".into()), None, None, Some(5))
    );
    assert_eq!(
        origin(&m(
            r#","forward_from_chat":{"id":-1007,"type":"channel"},"forward_date":4"#
        )),
        (Some("channel".into()), Some(-1007), None, Some(4))
    );
    assert_eq!(
        origin(&m(
            r#","forward_from":{"id":43,"is_bot":false,"first_name":"D"},"forward_date":3"#
        )),
        (Some("user".into()), None, Some(43), Some(3))
    );
    assert_eq!(origin(&m("")), (None, None, None, None));
}

#[test]
fn each_media_kind_is_named_and_animations_are_not_documents() {
    for (field, kind) in [
        ("video", "video"),
        ("video_note", "video_note"),
        ("voice", "voice"),
        ("audio", "audio"),
        ("sticker", "sticker"),
        ("document", "document"),
    ] {
        let json = format!(
            r#"{{"update_id":1,"message":{{"message_id":1,"chat":{{"id":-1,"type":"group"}},"date":9,
            "{field}":{{"file_id":"f","file_unique_id":"u-{field}","file_size":12,"mime_type":"x/y"}}}}}}"#
        );
        let media = row_from_raw(json.as_bytes()).unwrap().media.unwrap();
        assert_eq!(media.kind, kind);
        assert_eq!(media.file_unique_id, Some(format!("u-{field}")));
        assert_eq!(
            (media.bytes, media.mime.as_deref()),
            (Some(12), Some("x/y"))
        );
    }
    let gif = row_from_raw(
        br#"{"update_id":1,"message":{"message_id":1,"chat":{"id":-1,"type":"group"},"date":9,
        "animation":{"file_id":"a","file_unique_id":"ua","mime_type":"video/mp4"},
        "document":{"file_id":"a","file_unique_id":"ua","mime_type":"video/mp4"}}}"#,
    )
    .unwrap();
    assert_eq!(gif.media.unwrap().kind, "animation");
    assert!(
        gif.has_document,
        "the seed's flag stays as Telegram sent it"
    );
}

#[test]
fn imported_objects_say_so() {
    let r = row_from_raw(
        br#"{"update_id":1,"tg_ingest_source":"import","message":{"message_id":1,"chat":{"id":-1,"type":"group"},"date":9}}"#,
    )
    .unwrap();
    assert_eq!(r.source, "import");
}

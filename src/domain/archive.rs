//! The group archive (capability C): every message of the archived chats is kept, exactly as
//! Telegram sent it, in the raw bucket under a key that depends only on the update, so storing
//! the same update twice never makes two objects.

use crate::config::ArchiveSettings;
use crate::domain::inbound::IncomingUpdate;
use crate::util::clock::{compact_local_time, Day};

/// The outbox that holds raw objects for the raw bucket.
pub const ARCHIVE_OUTBOX: &str = "archive";

/// `<prefix>/context_date=YYYY-MM-DD/<YYYYmmddHHMMSS>_<update_id>.json`, with date and time
/// from the message's own `date` in the archive's time zone; `None` when the update is not a
/// message of an archived chat.
pub fn archive_key(settings: &ArchiveSettings, update: &IncomingUpdate) -> Option<String> {
    let message = update.update.any_message()?;
    if !settings.chats.contains(&message.chat.id) {
        return None;
    }
    let offset = settings.utc_offset_minutes;
    let day = Day::of(message.date, offset);
    let time = compact_local_time(message.date, offset);
    Some(format!(
        "{}/context_date={day}/{time}_{:012}.json",
        settings.prefix, update.update_id
    ))
}

/// The archive key of an update that needs nothing but the archive: a message of an archived
/// chat that is not private (private chats talk to the bot) and, for a new message, not a
/// command the bot may answer there (`/go`, with or without `@bot`). Such an update is queued
/// for the raw bucket at intake and never reaches a worker.
pub fn archive_only(settings: &ArchiveSettings, update: &IncomingUpdate) -> Option<String> {
    let message = update.update.any_message()?;
    if message.chat.is_private() {
        return None;
    }
    if let Some(new) = &update.update.message {
        let first = new
            .text
            .as_deref()
            .and_then(|t| t.split_whitespace().next());
        if first.is_some_and(|w| w == "/go" || w.starts_with("/go@")) {
            return None;
        }
    }
    archive_key(settings, update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn settings() -> ArchiveSettings {
        ArchiveSettings {
            chats: vec![-100],
            raw_bucket: "x-raw".into(),
            enriched_bucket: "x-enriched".into(),
            prefix: "telegram".into(),
            utc_offset_minutes: -180,
            etl_at: "00:05".into(),
            catch_up_days: 7,
            recheck_secs: 300,
            rows_per_group: 1000,
            parquet_compression: crate::config::ParquetCompression::Zstd,
            layout: crate::config::ArchiveLayout::Messages,
            segment: crate::config::SegmentSettings {
                max_bytes: 1 << 20,
                max_secs: 60,
                compression: crate::config::SegmentCompression::Zstd,
            },
            max_puts_per_sec: 3000,
            local_copy_days: 8,
        }
    }

    fn update(json: &str) -> IncomingUpdate {
        IncomingUpdate::parse(RawValue::from_string(json.into()).unwrap()).unwrap()
    }

    #[test]
    fn keys_are_deterministic_and_use_the_local_day() {
        let u = update(
            r#"{"update_id":77,"message":{"message_id":1,"chat":{"id":-100,"type":"group"},"date":1795314600,"text":"late"}}"#,
        );
        let key = archive_key(&settings(), &u).unwrap();
        assert_eq!(
            key,
            "telegram/context_date=2026-11-21/20261121233000_000000000077.json"
        );
        assert_eq!(archive_key(&settings(), &u), Some(key));
    }

    #[test]
    fn only_updates_that_need_nothing_else_are_archive_only() {
        let plain = update(
            r#"{"update_id":5,"message":{"message_id":1,"chat":{"id":-100,"type":"supergroup"},"date":1,"text":"hi /go"}}"#,
        );
        assert_eq!(
            archive_only(&settings(), &plain),
            archive_key(&settings(), &plain)
        );
        assert!(archive_only(&settings(), &plain).is_some());
        for go in ["/go", "/go now", "/go@some_bot"] {
            let u = update(&format!(
                r#"{{"update_id":6,"message":{{"message_id":1,"chat":{{"id":-100,"type":"supergroup"}},"date":1,"text":"{go}"}}}}"#
            ));
            assert_eq!(archive_only(&settings(), &u), None, "{go} goes to the bot");
            assert!(
                archive_key(&settings(), &u).is_some(),
                "and is archived there"
            );
        }
        let edited_go = update(
            r#"{"update_id":7,"edited_message":{"message_id":1,"chat":{"id":-100,"type":"supergroup"},"date":1,"text":"/go"}}"#,
        );
        assert!(
            archive_only(&settings(), &edited_go).is_some(),
            "an edit runs no command"
        );
        let mut with_private = settings();
        with_private.chats.push(42);
        let private = update(
            r#"{"update_id":8,"message":{"message_id":1,"chat":{"id":42,"type":"private"},"date":1,"text":"hi"}}"#,
        );
        assert_eq!(archive_only(&with_private, &private), None);
        let other = update(
            r#"{"update_id":9,"message":{"message_id":1,"chat":{"id":-5,"type":"group"},"date":1}}"#,
        );
        assert_eq!(archive_only(&settings(), &other), None);
    }

    #[test]
    fn other_chats_and_kinds_are_not_archived() {
        let other = update(
            r#"{"update_id":1,"message":{"message_id":1,"chat":{"id":-5,"type":"group"},"date":1}}"#,
        );
        assert_eq!(archive_key(&settings(), &other), None);
        let press = update(
            r#"{"update_id":2,"callback_query":{"id":"q","from":{"id":1,"first_name":"a"},"data":"x"}}"#,
        );
        assert_eq!(archive_key(&settings(), &press), None);
        let edit = update(
            r#"{"update_id":3,"edited_message":{"message_id":1,"chat":{"id":-100,"type":"group"},"date":0}}"#,
        );
        assert!(archive_key(&settings(), &edit)
            .unwrap()
            .contains("context_date=1969-12-31"));
    }
}

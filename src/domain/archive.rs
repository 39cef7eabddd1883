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

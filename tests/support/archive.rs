//! Archive tests' helpers: buckets, raw group updates put straight into the raw bucket, and
//! reading Parquet back.

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use tg_ingest::config::{ArchiveSettings, Settings};
use tg_ingest::domain::archive::archive_key;
use tg_ingest::domain::inbound::IncomingUpdate;
use tg_ingest::etl::{EtlTarget, LIST_PAGE_KEYS};

use super::{block_on, service_env, settings_from, FakeTelegram, TestS3};

pub const GROUP: i64 = -100_500;
/// 2026-11-21 12:00:00 UTC.
pub const NOON: i64 = 1_795_262_400;

pub struct Buckets {
    pub raw: String,
    pub enriched: String,
}

pub fn archive_env(s3: &TestS3) -> (Buckets, Vec<(String, String)>) {
    let b = Buckets {
        raw: s3.create_bucket("raw"),
        enriched: s3.create_bucket("enriched"),
    };
    let vars = vec![
        (
            "TG_INGEST__ARCHIVE__CHATS".to_string(),
            format!("{GROUP},-100501"),
        ),
        ("TG_INGEST__ARCHIVE__RAW_BUCKET".into(), b.raw.clone()),
        (
            "TG_INGEST__ARCHIVE__ENRICHED_BUCKET".into(),
            b.enriched.clone(),
        ),
    ];
    (b, vars)
}

pub fn settings_with(
    tg: &FakeTelegram,
    s3: &TestS3,
    data: &std::path::Path,
    archive: &[(String, String)],
) -> Settings {
    let mut v = service_env(
        tg,
        s3,
        data,
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    );
    v.extend(archive.iter().cloned());
    settings_from(v)
}

/// A raw group update, as Telegram would send it, with an unknown field.
pub fn group_update(id: i64, chat: i64, date: i64, text: Option<&str>, from: bool) -> Value {
    let mut m = json!({"message_id": id * 10, "chat": {"id": chat, "type": "supergroup", "title": "Team"}, "date": date, "x_future_field": {"a": [1, 2]}});
    if let Some(t) = text {
        m["text"] = json!(t);
    } else {
        m["photo"] = json!([{"file_id": "p", "file_unique_id": "pu", "width": 1, "height": 1}]);
    }
    if from {
        m["from"] = json!({"id": id + 7, "is_bot": false, "first_name": format!("Name{id}"), "username": format!("user{id}")});
    }
    json!({"update_id": id, "message": m})
}

pub fn key_of(settings: &ArchiveSettings, update: &Value) -> String {
    let raw = serde_json::value::RawValue::from_string(update.to_string()).unwrap();
    archive_key(settings, &IncomingUpdate::parse(raw).unwrap()).unwrap()
}

pub fn etl_target(s3: &TestS3, b: &Buckets, data: &std::path::Path) -> EtlTarget {
    EtlTarget {
        raw: s3.target().with_bucket(&b.raw).bucket().unwrap(),
        enriched: s3.target().with_bucket(&b.enriched).bucket().unwrap(),
        prefix: "telegram".into(),
        tmp_dir: data.join("tmp"),
        rows_per_group: 1000,
        compression: tg_ingest::config::ParquetCompression::Zstd,
        list_page_keys: LIST_PAGE_KEYS,
        local: None,
    }
}

/// Puts raw updates straight into the raw bucket under their archive keys.
pub fn put_raw(s3: &TestS3, b: &Buckets, settings: &ArchiveSettings, updates: &[Value]) {
    let bucket = s3.target().with_bucket(&b.raw).bucket().unwrap();
    block_on(async {
        use futures_util::StreamExt;
        futures_util::stream::iter(updates)
            .for_each_concurrent(32, |u| {
                let bucket = &bucket;
                async move {
                    bucket
                        .put_object(key_of(settings, u), u.to_string().as_bytes())
                        .await
                        .unwrap();
                }
            })
            .await;
    });
}

pub fn read_parquet(bytes: Vec<u8>) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn i64s(batches: &[RecordBatch], col: &str) -> Vec<Option<i64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect()
}

pub fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i).to_string()))
        })
        .collect()
}

/// The raw bucket's objects with their bodies, by key.
pub fn raw_objects(s3: &TestS3, b: &Buckets) -> BTreeMap<String, Vec<u8>> {
    s3.keys_in(&b.raw)
        .into_iter()
        .map(|k| {
            let body = s3.get_in(&b.raw, &k).unwrap();
            (k, body)
        })
        .collect()
}

//! The daily ETL (capability C): one day of raw update JSON from the raw bucket becomes one
//! Parquet file in the enriched bucket, with a `_SUCCESS` marker beside it.
//!
//! Objects are listed page by page (rust-s3 follows continuation tokens), read in key order,
//! which is message time order because raw names start with the local timestamp, and fetched
//! a few at a time. Rows are deduplicated by `update_id` and written in row groups, so memory
//! stays bounded whatever the size of the day. A message without text, without `from` or with
//! unknown fields never fails the day; an object that is not an update is counted and skipped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures_util::stream::{self, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use s3::Bucket;
use serde_json::{json, Value};

use crate::clock::Day;
use crate::storage::StorageError;

/// Objects fetched from the raw bucket at once.
const FETCH_CONCURRENCY: usize = 64;

/// Why a day could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// Reading or writing S3 failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the Parquet file failed.
    #[error("writing Parquet for {day}: {detail}")]
    Parquet {
        /// The day.
        day: Day,
        /// The cause.
        detail: String,
    },
}

/// What one run did; also the content of the `_SUCCESS` marker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EtlReport {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Raw objects found.
    pub source_objects: u64,
    /// Rows written.
    pub rows: u64,
    /// Objects skipped as repeats of an `update_id`.
    pub duplicates: u64,
    /// Objects that were not a message update.
    pub skipped: u64,
    /// The Parquet object, if any rows were written.
    pub parquet_key: Option<String>,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// Where raw objects live and where Parquet goes.
pub struct EtlTarget {
    /// Raw bucket.
    pub raw: Box<Bucket>,
    /// Enriched bucket.
    pub enriched: Box<Bucket>,
    /// Key prefix in both (`telegram`).
    pub prefix: String,
    /// Directory for the Parquet file before upload.
    pub tmp_dir: PathBuf,
    /// Rows per Parquet row group.
    pub rows_per_group: usize,
}

/// `<prefix>/context_date=YYYY-MM-DD/`.
pub fn day_prefix(prefix: &str, day: Day) -> String {
    format!("{prefix}/context_date={day}/")
}

/// The day's Parquet object.
pub fn parquet_key(prefix: &str, day: Day) -> String {
    format!("{}messages-{day}.parquet", day_prefix(prefix, day))
}

/// The day's `_SUCCESS` marker.
pub fn marker_key(prefix: &str, day: Day) -> String {
    format!("{}_SUCCESS", day_prefix(prefix, day))
}

/// The Parquet schema: the original columns in their order, then extras.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("user_is_bot", DataType::Boolean, true),
        Field::new("user_first_name", DataType::Utf8, true),
        Field::new("chat_id", DataType::Int64, false),
        Field::new("chat_type", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("date", DataType::Int64, false),
        Field::new("update_id", DataType::Int64, false),
        Field::new("update_kind", DataType::Utf8, false),
        Field::new("username", DataType::Utf8, true),
        Field::new("edit_date", DataType::Int64, true),
        Field::new("has_document", DataType::Boolean, false),
        Field::new("has_photo", DataType::Boolean, false),
    ]))
}

/// One row of the output.
#[derive(Debug, Clone, PartialEq)]
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
    /// `from.username`.
    pub username: Option<String>,
    /// `edit_date`.
    pub edit_date: Option<i64>,
    /// Whether it carried a document.
    pub has_document: bool,
    /// Whether it carried a photo.
    pub has_photo: bool,
}

/// Reads a row from a raw update; `Err` says why the object is not a message update.
pub fn row_from_raw(raw: &[u8]) -> Result<Row, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
    let update_id = v["update_id"].as_i64().ok_or("no update_id")?;
    let (kind, m) = [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
    ]
    .into_iter()
    .find_map(|k| v.get(k).filter(|m| m.is_object()).map(|m| (k, m)))
    .ok_or("not a message update")?;
    let from = m.get("from").filter(|f| f.is_object());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
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
        username: text(from.and_then(|f| f.get("username"))),
        edit_date: m["edit_date"].as_i64(),
        has_document: m.get("document").is_some_and(Value::is_object),
        has_photo: m.get("photo").is_some_and(|p| !p.is_null()),
    })
}

/// Accumulates rows and writes them in row groups.
struct Batcher {
    writer: ArrowWriter<std::fs::File>,
    rows: Vec<Row>,
    per_group: usize,
}

impl Batcher {
    fn push(&mut self, row: Row) -> Result<(), parquet::errors::ParquetError> {
        self.rows.push(row);
        if self.rows.len() >= self.per_group {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), parquet::errors::ParquetError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_key(|r| (r.date, r.update_id));
        let batch = to_batch(&rows)?;
        self.writer.write(&batch)?;
        self.writer.flush()
    }
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch, parquet::errors::ParquetError> {
    let mut message_id = Int64Builder::new();
    let mut user_id = Int64Builder::new();
    let mut user_is_bot = BooleanBuilder::new();
    let mut first_name = StringBuilder::new();
    let mut chat_id = Int64Builder::new();
    let mut chat_type = StringBuilder::new();
    let mut text = StringBuilder::new();
    let mut date = Int64Builder::new();
    let mut update_id = Int64Builder::new();
    let mut kind = StringBuilder::new();
    let mut username = StringBuilder::new();
    let mut edit_date = Int64Builder::new();
    let mut has_document = BooleanBuilder::new();
    let mut has_photo = BooleanBuilder::new();
    for r in rows {
        message_id.append_value(r.message_id);
        user_id.append_option(r.user_id);
        user_is_bot.append_option(r.user_is_bot);
        first_name.append_option(r.user_first_name.as_deref());
        chat_id.append_value(r.chat_id);
        chat_type.append_value(&r.chat_type);
        text.append_option(r.text.as_deref());
        date.append_value(r.date);
        update_id.append_value(r.update_id);
        kind.append_value(&r.update_kind);
        username.append_option(r.username.as_deref());
        edit_date.append_option(r.edit_date);
        has_document.append_value(r.has_document);
        has_photo.append_value(r.has_photo);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(message_id.finish()),
        Arc::new(user_id.finish()),
        Arc::new(user_is_bot.finish()),
        Arc::new(first_name.finish()),
        Arc::new(chat_id.finish()),
        Arc::new(chat_type.finish()),
        Arc::new(text.finish()),
        Arc::new(date.finish()),
        Arc::new(update_id.finish()),
        Arc::new(kind.finish()),
        Arc::new(username.finish()),
        Arc::new(edit_date.finish()),
        Arc::new(has_document.finish()),
        Arc::new(has_photo.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// Keys of the day's raw objects, sorted (that is, by message time).
pub async fn list_day(raw: &Bucket, prefix: &str, day: Day) -> Result<Vec<String>, StorageError> {
    let day_prefix = day_prefix(prefix, day);
    let pages = raw
        .list(day_prefix.clone(), None)
        .await
        .map_err(|e| StorageError::from_s3("list", &day_prefix, e))?;
    let mut keys: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.contents.into_iter().map(|o| o.key))
        .filter(|k| k.ends_with(".json"))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Runs the ETL for one day; `progress(done, total)` is called as objects are read.
pub async fn run_day(
    target: &EtlTarget,
    day: Day,
    progress: &dyn Fn(u64, u64),
) -> Result<EtlReport, EtlError> {
    let started = Instant::now();
    let keys = list_day(&target.raw, &target.prefix, day).await?;
    let total = keys.len() as u64;
    log::info!(
        "ETL {day}: listed {total} raw objects in {} ms",
        started.elapsed().as_millis()
    );
    let pq_key = parquet_key(&target.prefix, day);
    let mut report = EtlReport {
        day: day.to_string(),
        source_objects: total,
        rows: 0,
        duplicates: 0,
        skipped: 0,
        parquet_key: None,
        millis: 0,
    };
    let parquet_err = |e: parquet::errors::ParquetError| EtlError::Parquet {
        day,
        detail: e.to_string(),
    };
    if keys.is_empty() {
        // A re-run of a day that lost its data must not leave an old file behind.
        let _ = target.enriched.delete_object(&pq_key).await;
        log::info!("ETL {day}: no messages; writing the marker with 0 rows and no Parquet file");
    } else {
        std::fs::create_dir_all(&target.tmp_dir).map_err(|e| EtlError::Parquet {
            day,
            detail: format!("temporary directory {}: {e}", target.tmp_dir.display()),
        })?;
        let tmp = target
            .tmp_dir
            .join(format!("etl-{day}-{}.parquet", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| EtlError::Parquet {
            day,
            detail: format!("{}: {e}", tmp.display()),
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(target.rows_per_group))
            .build();
        let writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(parquet_err)?;
        let mut batcher = Batcher {
            writer,
            rows: Vec::new(),
            per_group: target.rows_per_group,
        };
        let mut seen = HashSet::new();
        let raw = &target.raw;
        let mut bodies = stream::iter(keys.iter())
            .map(|key| async move {
                raw.get_object(key)
                    .await
                    .map(|r| (key, r.bytes().clone()))
                    .map_err(|e| StorageError::from_s3("get", key, e))
            })
            .buffered(FETCH_CONCURRENCY);
        let mut done = 0;
        while let Some(body) = bodies.next().await {
            let (key, bytes) = body?;
            done += 1;
            if done % 1000 == 0 || done == total {
                progress(done, total);
            }
            match row_from_raw(&bytes) {
                Ok(row) if !seen.insert(row.update_id) => report.duplicates += 1,
                Ok(row) => {
                    report.rows += 1;
                    batcher.push(row).map_err(parquet_err)?;
                }
                Err(why) => {
                    report.skipped += 1;
                    log::warn!("ETL {day}: {key} skipped: {why}");
                }
            }
        }
        batcher.flush().map_err(parquet_err)?;
        batcher.writer.close().map_err(parquet_err)?;
        if report.rows > 0 {
            upload_file(&target.enriched, &tmp, &pq_key).await?;
            report.parquet_key = Some(pq_key);
        } else {
            let _ = target.enriched.delete_object(&pq_key).await;
        }
        let _ = std::fs::remove_file(&tmp);
    }
    report.millis = started.elapsed().as_millis() as u64;
    let marker = marker_key(&target.prefix, day);
    let body = json!(report).to_string();
    target
        .enriched
        .put_object_with_content_type(&marker, body.as_bytes(), "application/json")
        .await
        .map_err(|e| StorageError::from_s3("put", &marker, e))?;
    log::info!(
        "ETL {day}: {} objects, {} rows, {} duplicates, {} skipped in {} ms",
        report.source_objects,
        report.rows,
        report.duplicates,
        report.skipped,
        report.millis
    );
    Ok(report)
}

async fn upload_file(bucket: &Bucket, path: &Path, key: &str) -> Result<(), StorageError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| StorageError::Request {
            op: "read",
            key: key.to_string(),
            status: None,
            detail: e.to_string(),
        })?;
    bucket
        .put_object_stream_with_content_type(&mut file, key, "application/vnd.apache.parquet")
        .await
        .map(drop)
        .map_err(|e| StorageError::from_s3("put", key, e))
}

/// Whether the day already has its `_SUCCESS` marker.
pub async fn has_marker(enriched: &Bucket, prefix: &str, day: Day) -> Result<bool, StorageError> {
    let key = marker_key(prefix, day);
    match enriched.head_object(&key).await {
        Ok((_, status)) => Ok(status == 200),
        Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(false),
        Err(e) => Err(StorageError::from_s3("head", &key, e)),
    }
}

/// Whether the day has any raw objects.
pub async fn has_raw_data(raw: &Bucket, prefix: &str, day: Day) -> Result<bool, StorageError> {
    let p = day_prefix(prefix, day);
    let (page, _) = raw
        .list_page(p.clone(), None, None, None, Some(1))
        .await
        .map_err(|e| StorageError::from_s3("list", &p, e))?;
    Ok(!page.contents.is_empty())
}

#[cfg(test)]
mod tests {
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
    fn keys_follow_the_hive_layout() {
        let day = Day::parse("2026-11-21").unwrap();
        assert_eq!(
            day_prefix("telegram", day),
            "telegram/context_date=2026-11-21/"
        );
        assert_eq!(
            parquet_key("telegram", day),
            "telegram/context_date=2026-11-21/messages-2026-11-21.parquet"
        );
        assert_eq!(
            marker_key("telegram", day),
            "telegram/context_date=2026-11-21/_SUCCESS"
        );
    }
}

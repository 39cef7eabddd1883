//! Rows of the daily Parquet file: the schema, reading a row from a raw update, and writing
//! rows in row groups.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

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

/// Accumulates rows and writes them to a Parquet file in row groups of `per_group` rows, each
/// sorted by message time.
pub struct Batcher {
    writer: ArrowWriter<std::fs::File>,
    rows: Vec<Row>,
    per_group: usize,
}

impl Batcher {
    /// A writer of Snappy-compressed Parquet into `file`.
    pub fn create(file: std::fs::File, per_group: usize) -> Result<Self, ParquetError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(per_group))
            .build();
        Ok(Self {
            writer: ArrowWriter::try_new(file, schema(), Some(props))?,
            rows: Vec::with_capacity(per_group.min(65_536)),
            per_group,
        })
    }

    /// Adds a row, writing a row group when enough have gathered.
    pub fn push(&mut self, row: Row) -> Result<(), ParquetError> {
        self.rows.push(row);
        if self.rows.len() >= self.per_group {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_key(|r| (r.date, r.update_id));
        let batch = to_batch(&rows)?;
        self.writer.write(&batch)?;
        self.writer.flush()
    }

    /// Writes the last row group and the file's footer.
    pub fn finish(mut self) -> Result<(), ParquetError> {
        self.flush()?;
        self.writer.close().map(drop)
    }
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch, ParquetError> {
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
}

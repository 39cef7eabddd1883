//! The daily Parquet file: its schema (v2) and a writer of rows in row groups.
//!
//! The first eight columns are the original pipeline's, in its order and with its types; the
//! rest follow. The file's key-value metadata carries `schema_version` and the version of the
//! service that wrote it.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::rows::{Media, Row};
use crate::config::ParquetCompression;

/// The schema's version, in each file's metadata (`schema_version`).
pub const SCHEMA_VERSION: &str = "2";

/// Column names, types and nullability, in file order.
const COLUMNS: [(&str, DataType, bool); 30] = [
    ("message_id", DataType::Int64, false),
    ("user_id", DataType::Int64, true),
    ("user_is_bot", DataType::Boolean, true),
    ("user_first_name", DataType::Utf8, true),
    ("chat_id", DataType::Int64, false),
    ("chat_type", DataType::Utf8, false),
    ("text", DataType::Utf8, true),
    ("date", DataType::Int64, false),
    ("update_id", DataType::Int64, false),
    ("update_kind", DataType::Utf8, false),
    ("edit_date", DataType::Int64, true),
    ("caption", DataType::Utf8, true),
    ("entities", DataType::Utf8, true),
    ("reply_to_message_id", DataType::Int64, true),
    ("message_thread_id", DataType::Int64, true),
    ("media_group_id", DataType::Utf8, true),
    ("forward_origin_type", DataType::Utf8, true),
    ("forward_from_chat_id", DataType::Int64, true),
    ("forward_from_user_id", DataType::Int64, true),
    ("forward_date", DataType::Int64, true),
    ("media_kind", DataType::Utf8, true),
    ("media_file_unique_id", DataType::Utf8, true),
    ("media_key", DataType::Utf8, true),
    ("media_bytes", DataType::Int64, true),
    ("media_mime", DataType::Utf8, true),
    ("media_skipped_reason", DataType::Utf8, true),
    ("source", DataType::Utf8, false),
    ("username", DataType::Utf8, true),
    ("has_document", DataType::Boolean, false),
    ("has_photo", DataType::Boolean, false),
];

/// The Parquet schema: the original columns in their order, then the rest.
pub fn schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|(name, kind, nullable)| Field::new(*name, kind.clone(), *nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The writer properties: compression, row-group size and the file's metadata.
fn properties(per_group: usize, compression: ParquetCompression) -> WriterProperties {
    let codec = match compression {
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCompression::Lz4 => Compression::LZ4_RAW,
        ParquetCompression::None => Compression::UNCOMPRESSED,
    };
    let metadata = vec![
        KeyValue::new("schema_version".into(), SCHEMA_VERSION.to_string()),
        KeyValue::new(
            "tg_ingest_version".into(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ];
    WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(per_group))
        .set_key_value_metadata(Some(metadata))
        .build()
}

/// Accumulates rows and writes them to a Parquet file in row groups of `per_group` rows, each
/// sorted by message time.
pub struct Batcher {
    writer: ArrowWriter<std::fs::File>,
    rows: Vec<Row>,
    per_group: usize,
}

impl Batcher {
    /// A writer of Parquet into `file`.
    pub fn create(
        file: std::fs::File,
        per_group: usize,
        compression: ParquetCompression,
    ) -> Result<Self, ParquetError> {
        let props = properties(per_group, compression);
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

fn ints(rows: &[Row], f: impl Fn(&Row) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Int64Array>())
}

fn strs<'r>(rows: &'r [Row], f: impl Fn(&'r Row) -> Option<&'r str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

fn bools(rows: &[Row], f: impl Fn(&Row) -> Option<bool>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<BooleanArray>())
}

fn media<'r, T>(r: &'r Row, f: impl Fn(&'r Media) -> Option<T>) -> Option<T> {
    r.media.as_ref().and_then(f)
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch, ParquetError> {
    let columns: Vec<ArrayRef> = vec![
        ints(rows, |r| Some(r.message_id)),
        ints(rows, |r| r.user_id),
        bools(rows, |r| r.user_is_bot),
        strs(rows, |r| r.user_first_name.as_deref()),
        ints(rows, |r| Some(r.chat_id)),
        strs(rows, |r| Some(&r.chat_type)),
        strs(rows, |r| r.text.as_deref()),
        ints(rows, |r| Some(r.date)),
        ints(rows, |r| Some(r.update_id)),
        strs(rows, |r| Some(&r.update_kind)),
        ints(rows, |r| r.edit_date),
        strs(rows, |r| r.caption.as_deref()),
        strs(rows, |r| r.entities.as_deref()),
        ints(rows, |r| r.reply_to_message_id),
        ints(rows, |r| r.message_thread_id),
        strs(rows, |r| r.media_group_id.as_deref()),
        strs(rows, |r| r.forward_origin_type.as_deref()),
        ints(rows, |r| r.forward_from_chat_id),
        ints(rows, |r| r.forward_from_user_id),
        ints(rows, |r| r.forward_date),
        strs(rows, |r| media(r, |m| Some(m.kind.as_str()))),
        strs(rows, |r| media(r, |m| m.file_unique_id.as_deref())),
        strs(rows, |r| media(r, |m| m.key.as_deref())),
        ints(rows, |r| media(r, |m| m.bytes)),
        strs(rows, |r| media(r, |m| m.mime.as_deref())),
        strs(rows, |r| media(r, |m| m.skipped_reason.as_deref())),
        strs(rows, |r| Some(&r.source)),
        strs(rows, |r| r.username.as_deref()),
        bools(rows, |r| Some(r.has_document)),
        bools(rows, |r| Some(r.has_photo)),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn the_file_says_its_schema_version_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut b = Batcher::create(
            std::fs::File::create(&path).unwrap(),
            2,
            ParquetCompression::Zstd,
        )
        .unwrap();
        for id in [3, 1, 2] {
            b.push(Row {
                update_id: id,
                date: 10 - id,
                source: "bot".into(),
                ..Row::default()
            })
            .unwrap();
        }
        b.finish().unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
        assert_eq!(get("schema_version").as_deref(), Some("2"));
        assert_eq!(
            get("tg_ingest_version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(meta.num_row_groups(), 2, "two rows per group");
        assert_eq!(
            meta.row_group(0).column(0).compression(),
            Compression::ZSTD(ZstdLevel::default())
        );
        assert_eq!(
            meta.file_metadata().schema_descr().num_columns(),
            COLUMNS.len()
        );
    }
}

//! `[archive]`: the archived group chats, their buckets and the daily ETL; and its checks.

use serde::Deserialize;

use super::{id_list, invalid, SecuritySettings, SettingsError};

/// The group archive and its daily ETL.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveSettings {
    /// Archived chat ids; empty means off.
    #[serde(default, deserialize_with = "id_list")]
    pub chats: Vec<i64>,
    /// Bucket for raw JSON.
    pub raw_bucket: String,
    /// Bucket for Parquet.
    pub enriched_bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// Time zone, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Local `HH:MM` of the daily ETL run.
    pub etl_at: String,
    /// Days looked back by the scheduler's passes.
    pub catch_up_days: u32,
    /// Seconds between the scheduler's passes.
    pub recheck_secs: u64,
    /// Rows per Parquet row group.
    pub rows_per_group: usize,
    /// Compression of the Parquet files.
    pub parquet_compression: ParquetCompression,
    /// How raw objects are laid out in the raw bucket.
    pub layout: ArchiveLayout,
    /// When segments are written, in the segments layout.
    pub segment: SegmentSettings,
    /// Most PUT requests a second to the raw bucket.
    pub max_puts_per_sec: u32,
    /// Days the JSON of delivered raw objects is kept in the store for the ETL; 0: not kept.
    pub local_copy_days: u32,
}

/// How raw objects are laid out in the raw bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveLayout {
    /// One JSON object per message (the original layout).
    Messages,
    /// Newline-delimited JSON of many messages of one chat and day per object, compressed.
    Segments,
}

/// When a segment is written (whichever comes first), and how it is compressed.
#[derive(Debug, Clone, Deserialize)]
pub struct SegmentSettings {
    /// Bytes of JSON lines that make a segment full.
    pub max_bytes: usize,
    /// Seconds the oldest queued message waits before its segment is written anyway.
    pub max_secs: u64,
    /// `zstd` or `gzip`.
    pub compression: SegmentCompression,
}

/// Compression of segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentCompression {
    /// Zstandard (`.ndjson.zst`).
    Zstd,
    /// Gzip (`.ndjson.gz`), for readers without zstd.
    Gzip,
}

/// Compression codec of the daily Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// Zstandard (level 1): small files, fast to read.
    Zstd,
    /// Snappy: what many older readers expect.
    Snappy,
    /// Gzip.
    Gzip,
    /// LZ4 (the `LZ4_RAW` codec).
    Lz4,
    /// Uncompressed.
    None,
}

impl ArchiveSettings {
    /// Whether any chat is archived.
    pub fn is_enabled(&self) -> bool {
        !self.chats.is_empty()
    }

    /// The ETL time as minutes after local midnight.
    pub fn etl_minute(&self) -> Option<u32> {
        let (h, m) = self.etl_at.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }
}

/// Checks the archive section (its chats must be served at all when chats are restricted).
pub(super) fn validate(
    ar: &ArchiveSettings,
    security: &SecuritySettings,
) -> Result<(), SettingsError> {
    if ar.etl_minute().is_none() {
        return invalid("archive.etl_at", "must be a time HH:MM");
    }
    if !(-14 * 60..=14 * 60).contains(&ar.utc_offset_minutes) {
        return invalid("archive.utc_offset_minutes", "must be between -840 and 840");
    }
    if ar.rows_per_group == 0 {
        return invalid("archive.rows_per_group", "must be at least 1");
    }
    if !(4096..=(512 << 20)).contains(&ar.segment.max_bytes) {
        return invalid(
            "archive.segment.max_bytes",
            "must be between 4096 and 536870912 (512 MiB)",
        );
    }
    if !(1..=86_400).contains(&ar.segment.max_secs) {
        return invalid("archive.segment.max_secs", "must be between 1 and 86400");
    }
    if ar.max_puts_per_sec == 0 {
        return invalid("archive.max_puts_per_sec", "must be at least 1");
    }
    if ar.local_copy_days > 366 {
        return invalid("archive.local_copy_days", "must be between 0 and 366");
    }
    if ar.prefix.is_empty() || ar.prefix.starts_with('/') || ar.prefix.ends_with('/') {
        return invalid(
            "archive.prefix",
            "must be non-empty without leading or trailing /",
        );
    }
    let allowed = &security.allowed_chat_ids;
    if !allowed.is_empty() && ar.chats.iter().any(|c| !allowed.contains(c)) {
        return invalid(
            "archive.chats",
            "must all be in security.allowed_chat_ids when that list is set (nothing of other chats is kept)",
        );
    }
    Ok(())
}

//! The daily ETL (capability C): one day of raw update JSON from the raw bucket becomes one
//! Parquet file in the enriched bucket, with a `_SUCCESS` marker beside it.
//!
//! The day is listed page by page and read in key order, which is message time order because
//! raw names start with the local timestamp ([`source`]). Rows are deduplicated by `update_id`
//! and written in row groups ([`rows`]), so memory stays bounded whatever the size of the day.
//! A message without text, without `from` or with unknown fields never fails the day; an
//! object that is not an update is counted and skipped.
//!
//! May import: `util`, `obs`, `config`, `clients`, `embedded_s3`, `domain`, `store`.

mod collect;
pub mod import;
pub mod marker;
pub mod parquet;
pub mod rows;
pub mod source;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix::Recipient;
use futures_util::StreamExt;
use s3::Bucket;
use serde_json::json;

use self::collect::{Rows, IMPORTED};
pub use self::marker::{marker_key, read_marker, Marker};
use self::parquet::Batcher;
pub use self::parquet::{schema, SCHEMA_VERSION};
pub use self::rows::{row_from_raw, Row};
use self::source::{list_day, DaySource, Listed, Origin, CHUNK};
use crate::clients::s3::StorageError;
use crate::config::ParquetCompression;
use crate::util::clock::Day;
pub use source::ReadOutboxPayloads;

/// Listing page size asked of S3 servers (AWS never returns more than 1,000 keys a page).
pub const LIST_PAGE_KEYS: usize = 1000;

/// Runs started by this process, so two runs of one day never share a scratch file.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A scratch file, removed when the run ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

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
    /// Of those, segments (many updates each).
    pub segments: u64,
    /// Updates skipped as repeats of an `update_id`.
    pub duplicates: u64,
    /// Objects (or lines of segments) that were not a message update.
    pub skipped: u64,
    /// Objects read from the archive's local copies (checked against their ETag).
    pub read_locally: u64,
    /// Objects fetched from the raw bucket.
    pub fetched: u64,
    /// The Parquet object, if any rows were written.
    pub parquet_key: Option<String>,
    /// SHA-256 of the keys and ETags of the raw objects read ([`marker::digest`]), so a later
    /// pass can tell whether the day's raw objects changed in the bucket.
    pub raw_digest: String,
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
    /// Compression of the Parquet file.
    pub compression: ParquetCompression,
    /// Keys asked for per listing page.
    pub list_page_keys: usize,
    /// The store's copies of archived objects, if this process can read them.
    pub local: Option<Recipient<ReadOutboxPayloads>>,
}

/// `<prefix>/context_date=YYYY-MM-DD/`.
pub fn day_prefix(prefix: &str, day: Day) -> String {
    format!("{prefix}/context_date={day}/")
}

/// The day's Parquet object.
pub fn parquet_key(prefix: &str, day: Day) -> String {
    format!("{}messages-{day}.parquet", day_prefix(prefix, day))
}

/// Runs the ETL for one day; `progress(done, total)` is called as objects are read.
pub async fn run_day(
    target: &EtlTarget,
    day: Day,
    progress: &dyn Fn(u64, u64),
) -> Result<EtlReport, EtlError> {
    let started = Instant::now();
    let listed = list_day(
        &target.raw,
        &day_prefix(&target.prefix, day),
        target.list_page_keys,
    )
    .await?;
    let total = listed.len() as u64;
    log::info!(
        "ETL {day}: listed {total} raw objects in {} ms",
        started.elapsed().as_millis()
    );
    let pq_key = parquet_key(&target.prefix, day);
    let mut report = EtlReport {
        day: day.to_string(),
        source_objects: total,
        rows: 0,
        segments: 0,
        duplicates: 0,
        skipped: 0,
        read_locally: 0,
        fetched: 0,
        parquet_key: None,
        raw_digest: marker::digest(&listed),
        millis: 0,
    };
    if listed.is_empty() {
        // A re-run of a day that lost its data must not leave an old file behind.
        let _ = target.enriched.delete_object(&pq_key).await;
        log::info!("ETL {day}: no messages; writing the marker with 0 rows and no Parquet file");
    } else {
        write_parquet(target, day, listed, &mut report, progress).await?;
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
        "ETL {day}: {} objects ({} read locally, {} fetched), {} rows, {} duplicates, {} skipped in {} ms",
        report.source_objects,
        report.read_locally,
        report.fetched,
        report.rows,
        report.duplicates,
        report.skipped,
        report.millis
    );
    Ok(report)
}

/// The day's objects the bot wrote, then those imported from exports: a message the bot saw
/// live is kept as the bot saw it.
fn live_then_imported(listed: Vec<Listed>) -> (Vec<Listed>, Vec<Listed>) {
    listed.into_iter().partition(|l| !l.key.contains(IMPORTED))
}

/// Reads the day's raw objects (local copies first), writes their rows (each update once) to a
/// temporary Parquet file and uploads it, or deletes the day's Parquet object when no row is
/// left; counts what it did in `report`.
async fn write_parquet(
    target: &EtlTarget,
    day: Day,
    listed: Vec<Listed>,
    report: &mut EtlReport,
    progress: &dyn Fn(u64, u64),
) -> Result<(), EtlError> {
    let total = listed.len() as u64;
    let pq_key = parquet_key(&target.prefix, day);
    let parquet_err = |e: ::parquet::errors::ParquetError| EtlError::Parquet {
        day,
        detail: e.to_string(),
    };
    let tmp_err = |what: &Path, e: std::io::Error| EtlError::Parquet {
        day,
        detail: format!("{}: {e}", what.display()),
    };
    std::fs::create_dir_all(&target.tmp_dir).map_err(|e| tmp_err(&target.tmp_dir, e))?;
    let tmp = TempFile(target.tmp_dir.join(format!(
        "etl-{day}-{}-{}.parquet",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )));
    let file = std::fs::File::create(&tmp.0).map_err(|e| tmp_err(&tmp.0, e))?;
    let batcher =
        Batcher::create(file, target.rows_per_group, target.compression).map_err(parquet_err)?;
    let (live, imported) = live_then_imported(listed);
    let mut rows = Rows {
        batcher,
        seen: HashSet::new(),
        live: (!imported.is_empty()).then(HashSet::new),
        report,
        day,
    };
    let source = DaySource {
        raw: &target.raw,
        local: target.local.as_ref(),
        day,
    };
    let mut stale_copies = 0;
    let mut done = 0;
    for chunk in live.chunks(CHUNK).chain(imported.chunks(CHUNK)) {
        let mut bodies = std::pin::pin!(source.chunk(chunk).await);
        while let Some(body) = bodies.next().await {
            let body = body?;
            done += 1;
            match body.origin {
                Origin::LocalCopy => rows.report.read_locally += 1,
                Origin::Fetched => rows.report.fetched += 1,
                Origin::FetchedOverStaleCopy => {
                    rows.report.fetched += 1;
                    stale_copies += 1;
                }
            }
            if done % 1000 == 0 || done == total {
                progress(done, total);
            }
            rows.add_object(&body.key, &body.bytes)
                .map_err(parquet_err)?;
        }
    }
    let Rows {
        batcher, report, ..
    } = rows;
    if stale_copies > 0 {
        log::warn!(
            "ETL {day}: {stale_copies} local copies differ from their objects in S3; those objects were fetched"
        );
    }
    batcher.finish().map_err(parquet_err)?;
    if report.rows > 0 {
        upload_file(&target.enriched, &tmp.0, &pq_key).await?;
        report.parquet_key = Some(pq_key);
    } else {
        let _ = target.enriched.delete_object(&pq_key).await;
    }
    Ok(())
}

async fn upload_file(bucket: &Bucket, path: &Path, key: &str) -> Result<(), StorageError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| StorageError::Request {
            op: "read",
            key: key.to_string(),
            status: None,
            transport: true,
            detail: e.to_string(),
        })?;
    bucket
        .put_object_stream_with_content_type(&mut file, key, "application/vnd.apache.parquet")
        .await
        .map(drop)
        .map_err(|e| StorageError::from_s3("put", key, e))
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

//! Writing imported messages into the raw bucket, in the archive's layout, under keys that follow
//! from the chat and message ids alone:
//!
//! - messages layout: `<prefix>/context_date=D/<YYYYmmddHHMMSS>_import_<chat>_<message id>.json`;
//! - segments layout: `<prefix>/context_date=D/<time of first>_import_<chat>_<first>-<last>.ndjson.zst`
//!   (consecutive messages of one chat and day, up to `archive.segment.max_bytes`).
//!
//! Before writing into a day, the day's imported objects are listed; an object already there
//! with the same bytes (its ETag is their MD5) is not written again.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt};
use s3::Bucket;

use super::ImportReport;
use crate::clients::s3::StorageError;
use crate::config::{ArchiveLayout, SegmentSettings};
use crate::domain::segment::{extension, folder_of, segment_bytes, Member};
use crate::etl::source::{list_day, matches_etag};
use crate::util::clock::{compact_local_time, Day};
use crate::util::pace::Pace;

/// Objects written at once.
const CONCURRENCY: usize = 16;
/// Objects gathered before they are written.
const BATCH: usize = 64;

/// Where and how imported messages are written.
pub struct ImportTarget {
    /// The raw bucket.
    pub raw: Box<Bucket>,
    /// Key prefix (`telegram`).
    pub prefix: String,
    /// The archive's time zone, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// The archive's layout.
    pub layout: ArchiveLayout,
    /// Segment size and compression (segments layout).
    pub segment: SegmentSettings,
    /// Most PUTs a second.
    pub max_puts_per_sec: u32,
    /// Keys asked for per listing page.
    pub list_page_keys: usize,
}

/// One converted message on its way to the bucket.
pub struct Imported {
    /// Its chat.
    pub chat: i64,
    /// Its id in the chat.
    pub message_id: i64,
    /// Its date, Unix seconds.
    pub date: i64,
    /// The update it became.
    pub payload: String,
}

/// Gathers converted messages into objects and writes those that are not there yet.
pub struct Writer<'t> {
    t: &'t ImportTarget,
    pace: Pace,
    report: ImportReport,
    /// The imported objects of the day folders written to, with their ETags (each folder is
    /// listed once, however the export's messages are ordered).
    listed: HashMap<String, HashMap<String, Option<String>>>,
    /// Segments layout: the messages of the segment being gathered, and its day.
    group: Vec<Imported>,
    group_day: Option<Day>,
    group_bytes: usize,
    batch: Vec<(String, Vec<u8>)>,
}

impl<'t> Writer<'t> {
    /// A writer into `t`.
    pub fn new(t: &'t ImportTarget) -> Self {
        Self {
            t,
            pace: Pace::new(t.max_puts_per_sec),
            report: ImportReport::default(),
            listed: HashMap::new(),
            group: Vec::new(),
            group_day: None,
            group_bytes: 0,
            batch: Vec::new(),
        }
    }

    /// Writes everything received, then answers what it did.
    pub async fn run(
        &mut self,
        mut rx: tokio::sync::mpsc::Receiver<Imported>,
    ) -> Result<ImportReport, String> {
        while let Some(item) = rx.recv().await {
            self.report.messages += 1;
            let day = Day::of(item.date, self.t.utc_offset_minutes);
            self.report.days.insert(day);
            match self.t.layout {
                ArchiveLayout::Messages => {
                    let key = self.key(day, &item, &format!("{:010}.json", item.message_id));
                    self.queue(key, item.payload.into_bytes()).await?;
                }
                ArchiveLayout::Segments => self.gather(day, item).await?,
            }
        }
        self.close_group().await?;
        self.flush().await?;
        Ok(std::mem::take(&mut self.report))
    }

    /// `<day folder><local time>_import_<chat>_<tail>`.
    fn key(&self, day: Day, item: &Imported, tail: &str) -> String {
        let time = compact_local_time(item.date, self.t.utc_offset_minutes);
        format!(
            "{}/context_date={day}/{time}_import_{}_{tail}",
            self.t.prefix, item.chat
        )
    }

    /// Adds a message to the segment being gathered, closing it first when the message
    /// belongs to another chat or day, or would not fit.
    async fn gather(&mut self, day: Day, item: Imported) -> Result<(), String> {
        let size = item.payload.len() + 1;
        let same =
            self.group_day == Some(day) && self.group.first().is_some_and(|g| g.chat == item.chat);
        if !self.group.is_empty() && (!same || self.group_bytes + size > self.t.segment.max_bytes) {
            self.close_group().await?;
        }
        self.group_day = Some(day);
        self.group_bytes += size;
        self.group.push(item);
        Ok(())
    }

    async fn close_group(&mut self) -> Result<(), String> {
        let (Some(day), Some(first), Some(last)) =
            (self.group_day, self.group.first(), self.group.last())
        else {
            return Ok(());
        };
        let compression = self.t.segment.compression;
        let tail = format!(
            "{}-{}{}",
            first.message_id,
            last.message_id,
            extension(compression)
        );
        let key = self.key(day, first, &tail);
        let members: Vec<Member> = self
            .group
            .iter()
            .map(|m| Member {
                id: m.message_id,
                key: &key,
                payload: &m.payload,
            })
            .collect();
        let bytes = segment_bytes(&members, compression).map_err(|e| format!("{key}: {e}"))?;
        self.group.clear();
        self.group_bytes = 0;
        self.queue(key, bytes).await
    }

    /// Writes `bytes` under `key` unless the object is there with the same bytes.
    async fn queue(&mut self, key: String, bytes: Vec<u8>) -> Result<(), String> {
        let folder = folder_of(&key).to_string();
        if !self.listed.contains_key(&folder) {
            let listed = list_day(&self.t.raw, &folder, self.t.list_page_keys)
                .await
                .map_err(|e| e.to_string())?;
            let imported = listed
                .into_iter()
                .filter(|l| l.key.contains("_import_"))
                .map(|l| (l.key, l.etag))
                .collect();
            self.listed.insert(folder.clone(), imported);
        }
        let there = self.listed.get(&folder).and_then(|keys| keys.get(&key));
        if there.is_some_and(|etag| matches_etag(&bytes, etag.as_deref())) {
            self.report.unchanged += 1;
            return Ok(());
        }
        self.batch.push((key, bytes));
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the gathered objects, a few at a time, each retried on a transient failure.
    async fn flush(&mut self) -> Result<(), String> {
        let batch = std::mem::take(&mut self.batch);
        let (bucket, pace) = (&self.t.raw, &self.pace);
        let results: Vec<Result<String, StorageError>> = stream::iter(batch)
            .map(|(key, bytes)| async move {
                let mut attempt = 0;
                loop {
                    pace.turn().await;
                    let put = bucket
                        .put_object_with_content_type(&key, &bytes, content_type(&key))
                        .await;
                    match put.map_err(|e| StorageError::from_s3("put", &key, e)) {
                        Ok(_) => return Ok(key),
                        Err(e) if e.is_retryable() && attempt < 4 => {
                            attempt += 1;
                            actix_rt::time::sleep(std::time::Duration::from_millis(250 << attempt))
                                .await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for result in results {
            let key = result.map_err(|e| e.to_string())?;
            self.report.written += 1;
            self.report.keys.push(key);
        }
        Ok(())
    }
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else {
        "application/x-ndjson"
    }
}

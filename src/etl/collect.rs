//! The rows of one day on their way into the Parquet file: each update once, the lines of
//! segments one by one, and a message imported from an export left out when the bot saw it live.

use std::collections::HashSet;

use super::parquet::Batcher;
use super::rows::{row_from_raw, Row};
use super::EtlReport;
use crate::domain::segment::{is_segment, segment_lines};
use crate::util::clock::Day;

/// What the names of imported raw objects contain.
pub(super) const IMPORTED: &str = "_import_";

/// Rows on their way into the Parquet file, each update once.
pub(super) struct Rows<'r> {
    pub(super) batcher: Batcher,
    pub(super) seen: HashSet<i64>,
    /// On a day with imported objects: the (chat, message) pairs the bot saw live, so the
    /// same message imported again is left out.
    pub(super) live: Option<HashSet<(i64, i64)>>,
    pub(super) report: &'r mut EtlReport,
    pub(super) day: Day,
}

impl Rows<'_> {
    /// Adds the rows of a raw object: one update, or a segment's lines. An object that cannot
    /// be read is counted as skipped and logged; it never fails the day.
    pub(super) fn add_object(
        &mut self,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), ::parquet::errors::ParquetError> {
        if !is_segment(key) {
            return self.add(key, bytes);
        }
        self.report.segments += 1;
        let lines = match segment_lines(key, bytes) {
            Ok(lines) => lines,
            Err(e) => {
                self.report.skipped += 1;
                log::warn!(
                    "ETL {}: {key} skipped: not a readable segment: {e}",
                    self.day
                );
                return Ok(());
            }
        };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.add(key, line)?;
        }
        Ok(())
    }

    /// Records a new message the bot saw; answers whether `row` is an imported message the
    /// bot saw already.
    fn seen_live(&mut self, row: &Row) -> bool {
        let Some(live) = self.live.as_mut() else {
            return false;
        };
        let first = matches!(row.update_kind.as_str(), "message" | "channel_post");
        match row.source.as_str() {
            "import" => live.contains(&(row.chat_id, row.message_id)),
            _ => {
                if first {
                    live.insert((row.chat_id, row.message_id));
                }
                false
            }
        }
    }

    fn add(&mut self, key: &str, raw: &[u8]) -> Result<(), ::parquet::errors::ParquetError> {
        match row_from_raw(raw) {
            Ok(row) if !self.seen.insert(row.update_id) => self.report.duplicates += 1,
            Ok(row) if self.seen_live(&row) => self.report.duplicates += 1,
            Ok(row) => {
                self.report.rows += 1;
                self.batcher.push(row)?;
            }
            Err(why) => {
                self.report.skipped += 1;
                log::warn!("ETL {}: {key} skipped: {why}", self.day);
            }
        }
        Ok(())
    }
}

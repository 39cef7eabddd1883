//! Multipart uploads in progress, recorded so that none is left open on the S3 server after a
//! crash or a shutdown, and the record of every saved file (who sent it, its size and SHA-256),
//! so anyone can verify an object later.

use rusqlite::{params, OptionalExtension};

use super::{now_secs, Store, StoreError};

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS open_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        started_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS saved_files (
        key TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        file_id TEXT NOT NULL,
        file_unique_id TEXT,
        saved_at INTEGER NOT NULL);";

/// A multipart upload started and not yet completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// The server's upload id.
    pub upload_id: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFile {
    /// Object key in the documents bucket.
    pub key: String,
    /// Chat platform, e.g. `telegram`.
    pub platform: String,
    /// Who sent it.
    pub user_id: i64,
    /// Where it was sent.
    pub chat_id: i64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The platform's file id.
    pub file_id: String,
    /// The platform's stable file id, if it has one.
    pub file_unique_id: Option<String>,
}

impl Store {
    /// Records a multipart upload that has just been started.
    pub fn upload_opened(&mut self, upload: &OpenUpload) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO open_uploads (upload_id, bucket, key, started_at) VALUES (?1, ?2, ?3, ?4)",
                params![upload.upload_id, upload.bucket, upload.key, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a multipart upload that was completed or aborted.
    pub fn upload_closed(&mut self, upload_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM open_uploads WHERE upload_id = ?1",
                params![upload_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Multipart uploads recorded as open, oldest first.
    pub fn open_uploads(&self) -> Result<Vec<OpenUpload>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT upload_id, bucket, key FROM open_uploads ORDER BY started_at, upload_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OpenUpload {
                    upload_id: r.get(0)?,
                    bucket: r.get(1)?,
                    key: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a saved document (replacing the record of an earlier object under its key).
    pub fn record_saved_file(&mut self, file: &SavedFile) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO saved_files
                 (key, platform, user_id, chat_id, bytes, sha256, file_id, file_unique_id, saved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    file.key,
                    file.platform,
                    file.user_id,
                    file.chat_id,
                    file.bytes as i64,
                    file.sha256,
                    file.file_id,
                    file.file_unique_id,
                    now_secs()
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The record of the document stored under `key`, if any.
    pub fn saved_file(&self, key: &str) -> Result<Option<SavedFile>, StoreError> {
        self.conn
            .query_row(
                "SELECT key, platform, user_id, chat_id, bytes, sha256, file_id, file_unique_id
                 FROM saved_files WHERE key = ?1",
                params![key],
                |r| {
                    Ok(SavedFile {
                        key: r.get(0)?,
                        platform: r.get(1)?,
                        user_id: r.get(2)?,
                        chat_id: r.get(3)?,
                        bytes: r.get::<_, i64>(4)? as u64,
                        sha256: r.get(5)?,
                        file_id: r.get(6)?,
                        file_unique_id: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;
    use super::*;

    #[test]
    fn open_uploads_are_recorded_until_closed() {
        let (mut s, _d) = store();
        let up = |id: &str| OpenUpload {
            upload_id: id.into(),
            bucket: "docs".into(),
            key: format!("{id}.bin"),
        };
        s.upload_opened(&up("a")).unwrap();
        s.upload_opened(&up("b")).unwrap();
        s.upload_closed("a").unwrap();
        assert_eq!(s.open_uploads().unwrap(), [up("b")]);
        s.upload_closed("b").unwrap();
        s.upload_closed("b").unwrap();
        assert!(s.open_uploads().unwrap().is_empty());
    }

    #[test]
    fn saved_files_are_recorded_by_key() {
        let (mut s, _d) = store();
        let mut f = SavedFile {
            key: "a.pdf".into(),
            platform: "telegram".into(),
            user_id: 7,
            chat_id: 7,
            bytes: 5_000_000_000,
            sha256: "ab".repeat(32),
            file_id: "F1".into(),
            file_unique_id: Some("U1".into()),
        };
        s.record_saved_file(&f).unwrap();
        assert_eq!(s.saved_file("a.pdf").unwrap(), Some(f.clone()));
        f.bytes = 3;
        s.record_saved_file(&f).unwrap();
        assert_eq!(s.saved_file("a.pdf").unwrap().unwrap().bytes, 3);
        assert_eq!(s.saved_file("b.pdf").unwrap(), None);
    }
}

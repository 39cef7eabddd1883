//! Multipart uploads in progress, recorded so that none is left open on the S3 server after a
//! crash or a shutdown.

use super::db::{vals, Sql};
use super::{now_secs, rows, Store, StoreError};

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS open_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        started_at INTEGER NOT NULL);";

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

impl Store {
    /// Records a multipart upload that has just been started.
    pub fn upload_opened(&mut self, upload: &OpenUpload) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO open_uploads (upload_id, bucket, key, started_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (upload_id) DO UPDATE SET bucket = excluded.bucket, key = excluded.key,
                     started_at = excluded.started_at",
                vals![&upload.upload_id, &upload.bucket, &upload.key, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a multipart upload that was completed or aborted.
    pub fn upload_closed(&mut self, upload_id: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "DELETE FROM open_uploads WHERE upload_id = $1",
                vals![upload_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Multipart uploads recorded as open, oldest first.
    pub fn open_uploads(&self) -> Result<Vec<OpenUpload>, StoreError> {
        self.db
            .query(
                "SELECT upload_id, bucket, key FROM open_uploads ORDER BY started_at, upload_id",
                &[],
            )
            .and_then(|r| {
                rows(r, |r| {
                    Ok(OpenUpload {
                        upload_id: r.text(0)?,
                        bucket: r.text(1)?,
                        key: r.text(2)?,
                    })
                })
            })
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
}

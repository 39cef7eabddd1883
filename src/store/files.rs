//! Multipart uploads (and multipart copies) in progress, recorded so that none is left open on
//! the S3 server after a crash, a shutdown or a failed abort.
//!
//! Each belongs to its owner: the replica (its name) and the incarnation (one start of one
//! uploader) that opened it. A process aborts only its own leftovers (of an earlier start, or
//! of an uploader instance that restarted) and those of replicas whose heartbeat ran out,
//! never an upload another live replica is still sending.
//!
//! The intent is recorded before the upload is created on the server (`upload_id` is then
//! `intent:<random>`): a kill between the creation and the record leaves an intent, and the
//! cleanup asks the server for the uploads open under that key.

use super::db::{vals, DbError, Sql};
use super::leases::now_ms;
use super::{now_secs, rows, Store, StoreError};

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS open_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        incarnation TEXT NOT NULL DEFAULT '',
        aborting INTEGER NOT NULL DEFAULT 0);";

/// Columns added to `open_uploads` after its first release (SQLite; PostgreSQL's migration 6).
const COLUMNS: &[(&str, &str)] = &[
    (
        "owner",
        "ALTER TABLE open_uploads ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
    ),
    (
        "incarnation",
        "ALTER TABLE open_uploads ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''",
    ),
    (
        "aborting",
        "ALTER TABLE open_uploads ADD COLUMN aborting INTEGER NOT NULL DEFAULT 0",
    ),
];

/// Adds the columns an older SQLite store lacks.
pub(super) fn migrate_sqlite(db: &super::db::Sqlite) -> Result<(), DbError> {
    super::add_missing_columns(db, "open_uploads", COLUMNS)
}

/// The prefix of the id an intent is recorded under until the server gives the upload's own.
pub const INTENT: &str = "intent:";

/// A multipart upload started and not yet completed or aborted (or an intent to start one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// The server's upload id, or `intent:<random>` before the server gave one.
    pub upload_id: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl OpenUpload {
    /// Whether this is only the intent to create an upload (its id unknown).
    pub fn is_intent(&self) -> bool {
        self.upload_id.starts_with(INTENT)
    }
}

/// Who opened a multipart upload: a replica, and one start of one of its uploaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOwner {
    /// The replica's name (`local` for a single process on SQLite).
    pub replica: String,
    /// One start of one uploader of that replica.
    pub incarnation: String,
}

impl Store {
    /// Records a multipart upload (or the intent to create one) of `owner`.
    pub fn upload_opened(
        &mut self,
        upload: &OpenUpload,
        owner: &UploadOwner,
    ) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO open_uploads (upload_id, bucket, key, started_at, owner, incarnation)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (upload_id) DO UPDATE SET bucket = excluded.bucket, key = excluded.key,
                     started_at = excluded.started_at, owner = excluded.owner,
                     incarnation = excluded.incarnation",
                vals![
                    &upload.upload_id,
                    &upload.bucket,
                    &upload.key,
                    now_secs(),
                    &owner.replica,
                    &owner.incarnation
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The server created the upload an intent was recorded for: the intent takes its id.
    pub fn upload_created(&mut self, intent: &str, upload_id: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "UPDATE open_uploads SET upload_id = $2 WHERE upload_id = $1",
                vals![intent, upload_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a multipart upload that was completed or aborted (or an intent given up).
    pub fn upload_closed(&mut self, upload_id: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "DELETE FROM open_uploads WHERE upload_id = $1",
                vals![upload_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// An abort of this upload failed: it stays recorded, marked to be aborted again soon.
    pub fn upload_abort_failed(&mut self, upload_id: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "UPDATE open_uploads SET aborting = 1 WHERE upload_id = $1",
                vals![upload_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Multipart uploads recorded as open, oldest first.
    pub fn open_uploads(&self) -> Result<Vec<OpenUpload>, StoreError> {
        self.select_uploads(
            "SELECT upload_id, bucket, key FROM open_uploads ORDER BY started_at, upload_id",
            &[],
        )
    }

    /// The uploads `owner` must abort now: those its abort failed for, those of its other
    /// incarnations (an earlier start, an uploader that restarted; with `mine_too`, its own
    /// current ones as well, at shutdown), and those of replicas whose heartbeat ran out.
    pub fn uploads_to_abort(
        &self,
        owner: &UploadOwner,
        mine_too: bool,
    ) -> Result<Vec<OpenUpload>, StoreError> {
        let now = now_ms(self.db.engine());
        self.select_uploads(
            &format!(
                "SELECT upload_id, bucket, key FROM open_uploads u
                 WHERE (owner = $1 AND (incarnation <> $2 OR aborting = 1 OR $3 = 1))
                    OR (owner <> $1 AND NOT EXISTS (
                        SELECT 1 FROM leases
                        WHERE name = 'replica:' || u.owner AND expires_at > {now}))
                 ORDER BY started_at, upload_id"
            ),
            vals![&owner.replica, &owner.incarnation, mine_too],
        )
    }

    /// The uploads a query selects (`upload_id, bucket, key`).
    fn select_uploads(
        &self,
        sql: &str,
        params: &[super::db::Val],
    ) -> Result<Vec<OpenUpload>, StoreError> {
        self.db
            .query(sql, params)
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

    fn up(id: &str) -> OpenUpload {
        OpenUpload {
            upload_id: id.into(),
            bucket: "docs".into(),
            key: format!("{id}.bin"),
        }
    }

    fn owner(replica: &str, incarnation: &str) -> UploadOwner {
        UploadOwner {
            replica: replica.into(),
            incarnation: incarnation.into(),
        }
    }

    #[test]
    fn open_uploads_are_recorded_until_closed() {
        let (mut s, _d) = store();
        let me = owner("local", "1");
        s.upload_opened(&up("a"), &me).unwrap();
        s.upload_opened(&up("b"), &me).unwrap();
        s.upload_closed("a").unwrap();
        assert_eq!(s.open_uploads().unwrap(), [up("b")]);
        s.upload_closed("b").unwrap();
        s.upload_closed("b").unwrap();
        assert!(s.open_uploads().unwrap().is_empty());
    }

    #[test]
    fn an_intent_takes_the_id_the_server_gives() {
        let (mut s, _d) = store();
        let me = owner("local", "1");
        let intent = up("intent:x");
        assert!(intent.is_intent());
        s.upload_opened(&intent, &me).unwrap();
        s.upload_created("intent:x", "real").unwrap();
        let open = s.open_uploads().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].upload_id, "real");
        assert!(!open[0].is_intent());
    }

    #[test]
    fn only_leftovers_and_uploads_of_dead_replicas_are_aborted() {
        let (mut s, _d) = store();
        let (me, my_last_start) = (owner("a", "2"), owner("a", "1"));
        let (live, dead) = (owner("b", "1"), owner("c", "1"));
        s.upload_opened(&up("mine-now"), &me).unwrap();
        s.upload_opened(&up("mine-before"), &my_last_start).unwrap();
        s.upload_opened(&up("live"), &live).unwrap();
        s.upload_opened(&up("dead"), &dead).unwrap();
        // b's heartbeat runs; c never had one (or it ran out).
        s.renew_claims("b", 60_000).unwrap();
        let ids = |v: Vec<OpenUpload>| -> Vec<String> {
            let mut ids: Vec<String> = v.into_iter().map(|u| u.upload_id).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(s.uploads_to_abort(&me, false).unwrap()),
            ["dead", "mine-before"]
        );
        assert_eq!(
            ids(s.uploads_to_abort(&me, true).unwrap()),
            ["dead", "mine-before", "mine-now"],
            "at shutdown its own current uploads too"
        );
        // A failed abort of its own current upload is tried again.
        s.upload_closed("dead").unwrap();
        s.upload_closed("mine-before").unwrap();
        s.upload_abort_failed("mine-now").unwrap();
        assert_eq!(ids(s.uploads_to_abort(&me, false).unwrap()), ["mine-now"]);
        // The live replica's upload is never among them, whoever asks.
        assert!(!ids(s.uploads_to_abort(&dead, true).unwrap()).contains(&"live".to_string()));
    }
}

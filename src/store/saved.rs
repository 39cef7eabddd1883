//! Who owns which object: every document saved through the service is recorded with its
//! owner (platform and user), size, SHA-256 and the platform's file id. A key is claimed for a
//! document before its upload starts, so two people sending the same name at once get two
//! objects; the claim names the event, so a replayed event lands on the same key.

use super::db::{vals, DbError, Sql, Sqlite};

use super::{now_secs, Store, StoreError};
use crate::domain::keys::numbered;

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        platform TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        bytes INTEGER,
        sha256 TEXT,
        file_id TEXT,
        file_unique_id TEXT,
        saved_at INTEGER,
        claimed_by TEXT,
        claimed_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS files_by_owner
        ON files (platform, user_id, saved_at DESC, id DESC) WHERE saved_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS files_by_claim ON files (claimed_by) WHERE claimed_by IS NOT NULL;";

/// Who holds `key`: a file's owner, or the owner of a file being renamed to it.
pub(super) fn holder_of(db: &impl Sql, key: &str) -> Result<Option<(String, i64)>, DbError> {
    db.first(
        "SELECT platform, user_id FROM files WHERE key = $1
         UNION ALL
         SELECT f.platform, f.user_id FROM moves m JOIN files f ON f.id = m.file
         WHERE m.to_key = $1 AND m.done_at IS NULL
         LIMIT 1",
        vals![key],
    )?
    .map(|r| Ok((r.text(0)?, r.i64(1)?)))
    .transpose()
}

/// Holds the name `key` until the transaction ends, so a check that it is free and its
/// reservation (a new document's key, a rename's target) are one step on every replica.
/// SQLite's write transaction already serialises them; PostgreSQL takes a transaction-level
/// advisory lock on the name's hash.
pub(super) fn lock_name(db: &impl Sql, key: &str) -> Result<(), DbError> {
    if db.engine() == super::db::Engine::Postgres {
        db.query(
            "SELECT pg_advisory_xact_lock(7466, hashtext($1))::TEXT",
            vals![key],
        )?;
    }
    Ok(())
}

/// The owner recorded for an object found in the bucket that no one sent through the service.
pub const FOREIGN: &str = "bucket";

/// Most numbered candidates tried for one name.
const MAX_CANDIDATES: u32 = 10_000;

/// Moves the records of an older version's `saved_files` table into `files`.
pub(super) fn migrate(db: &Sqlite) -> Result<(), DbError> {
    let old = db.exists(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'saved_files'",
        &[],
    )?;
    if old {
        db.batch(
            "BEGIN;
             INSERT OR IGNORE INTO files (key, platform, user_id, chat_id, bytes, sha256,
                 file_id, file_unique_id, saved_at, claimed_at)
                 SELECT key, platform, user_id, chat_id, bytes, sha256, file_id, file_unique_id,
                     saved_at, saved_at
                 FROM saved_files;
             DROP TABLE saved_files;
             COMMIT;",
        )?;
    }
    Ok(())
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

/// A request for a key for one document.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    /// The event the document came with (stable across replays).
    pub event: String,
    /// Sender's platform.
    pub platform: String,
    /// Sender.
    pub user_id: i64,
    /// Chat it was sent in.
    pub chat_id: i64,
    /// The key its name asks for.
    pub wanted: String,
    /// Longest key allowed.
    pub max_bytes: usize,
}

/// The key given to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    /// The key.
    pub key: String,
    /// The store knew nothing under this key: the bucket may still hold an object someone
    /// else put there, which the caller checks (and reports with [`Store::mark_foreign`]).
    pub unknown: bool,
}

impl Store {
    /// Whether `key` is held: by a file record or as the target of a rename under way.
    fn key_holder(&self, key: &str) -> Result<Option<(String, i64)>, StoreError> {
        holder_of(&self.db, key).map_err(|e| self.err(e))
    }

    /// Whether anything holds `key` (for a rename's target).
    pub fn key_is_taken(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.key_holder(key)?.is_some())
    }

    /// Gives a document its key: the one this event was given before (a replay), else the
    /// wanted key when it is free or the sender's own, else the first free `name (n).ext`.
    pub fn claim_key(&mut self, claim: &KeyClaim) -> Result<ClaimedKey, StoreError> {
        let before = self
            .db
            .first(
                "SELECT key FROM files WHERE claimed_by = $1",
                vals![&claim.event],
            )
            .and_then(|r| r.map(|r| r.text(0)).transpose())
            .map_err(|e| self.err(e))?;
        if let Some(key) = before {
            return Ok(ClaimedKey {
                key,
                unknown: false,
            });
        }
        for n in 1..=MAX_CANDIDATES {
            let key = numbered(&claim.wanted, n, claim.max_bytes);
            // The check and the reservation are one step: no rename (of any replica) can take
            // the name between them.
            let claimed = self
                .db
                .transaction(|db| {
                    lock_name(db, &key)?;
                    let holder = holder_of(db, &key)?;
                    fail::fail_point!("store.name_checked");
                    match holder {
                        None => {
                            db.exec(
                                "INSERT INTO files (key, platform, user_id, chat_id, claimed_by, claimed_at)
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                                vals![&key, &claim.platform, claim.user_id, claim.chat_id, &claim.event, now_secs()],
                            )?;
                            Ok(Some(true))
                        }
                        Some((platform, user))
                            if platform == claim.platform && user == claim.user_id =>
                        {
                            db.exec(
                                "UPDATE files SET claimed_by = $2, claimed_at = $3 WHERE key = $1",
                                vals![&key, &claim.event, now_secs()],
                            )?;
                            Ok(Some(false))
                        }
                        Some(_) => Ok(None),
                    }
                })
                .map_err(|e| self.err(e))?;
            if let Some(unknown) = claimed {
                return Ok(ClaimedKey { key, unknown });
            }
        }
        Err(self.err(DbError::Type {
            column: 0,
            expected: "a free key",
            found: format!(
                "none for {:?} among {MAX_CANDIDATES} numbered names",
                claim.wanted
            ),
        }))
    }

    /// Records that the bucket already holds an object under a key this event claimed as
    /// unknown: the key becomes someone else's, and the next claim moves on.
    pub fn mark_foreign(&mut self, key: &str, event: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "UPDATE files SET platform = $3, user_id = 0, claimed_by = NULL
                 WHERE key = $1 AND claimed_by = $2 AND saved_at IS NULL",
                vals![key, event, FOREIGN],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Gives up the key an event claimed for a document that was not stored.
    pub fn release_claim(&mut self, event: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "DELETE FROM files WHERE claimed_by = $1 AND saved_at IS NULL",
                vals![event],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a saved document under its key (replacing the record of an earlier object
    /// there, which was the same owner's); answers the file's id.
    pub fn record_saved_file(&mut self, file: &SavedFile) -> Result<i64, StoreError> {
        let now = now_secs();
        self.db
            .first(
                "INSERT INTO files (key, platform, user_id, chat_id, bytes, sha256, file_id,
                     file_unique_id, saved_at, claimed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (key) DO UPDATE SET platform = excluded.platform,
                     user_id = excluded.user_id, chat_id = excluded.chat_id,
                     bytes = excluded.bytes, sha256 = excluded.sha256, file_id = excluded.file_id,
                     file_unique_id = excluded.file_unique_id, saved_at = excluded.saved_at
                 RETURNING id",
                vals![
                    &file.key,
                    &file.platform,
                    file.user_id,
                    file.chat_id,
                    file.bytes,
                    &file.sha256,
                    &file.file_id,
                    file.file_unique_id.as_deref(),
                    now
                ],
            )
            .and_then(|r| r.map_or(Ok(0), |r| r.i64(0)))
            .map_err(|e| self.err(e))
    }

    /// The record of the document stored under `key`, if any.
    pub fn saved_file(&self, key: &str) -> Result<Option<SavedFile>, StoreError> {
        self.db
            .first(
                "SELECT key, platform, user_id, chat_id, bytes, sha256, file_id, file_unique_id
                 FROM files WHERE key = $1 AND saved_at IS NOT NULL",
                vals![key],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(SavedFile {
                        key: r.text(0)?,
                        platform: r.text(1)?,
                        user_id: r.i64(2)?,
                        chat_id: r.i64(3)?,
                        bytes: r.u64(4)?,
                        sha256: r.text(5)?,
                        file_id: r.text(6)?,
                        file_unique_id: r.opt_text(7)?,
                    })
                })
                .transpose()
            })
            .map_err(|e| self.err(e))
    }

    /// Frees the keys of documents whose updates never finished (moved to the poison list) by
    /// `before`: claims without a stored file, and renames that never completed.
    pub fn prune_stale_claims(&mut self, before: i64) -> Result<(), StoreError> {
        self.db
            .exec(
                "DELETE FROM files WHERE saved_at IS NULL AND claimed_by IS NOT NULL AND claimed_at < $1",
                vals![before],
            )
            .and_then(|_| {
                self.db.exec(
                    "DELETE FROM moves WHERE done_at IS NULL AND started_at < $1",
                    vals![before],
                )
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests;

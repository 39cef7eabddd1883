//! The embedded durable store (SQLite in WAL mode, in the data directory).
//!
//! It holds the update journal (every update Telegram handed over, until its handling
//! finished), the ids of recently finished updates (so a re-delivered update is not handled
//! twice), updates moved aside as poison, per-user conversation state, and outboxes: items
//! (Airtable rows, archive objects) kept until an actor has delivered them. Only the
//! `StoreActor` uses it; the functions here are plain and synchronous so they can be unit-tested.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

mod admin;
mod days;
pub mod db;
mod files;
mod outbox;
pub mod pg_schema;
#[cfg(test)]
mod powerloss;
mod renames;
mod saved;
mod vk;

pub use admin::{PoisonItem, Status, REJECTED_IDS};
pub use days::{day_of_key, DayState};
pub use files::OpenUpload;
pub use renames::{Move, MoveStart};
pub use saved::{ClaimedKey, FileEntry, KeyClaim, SavedFile, FOREIGN};

/// How long finished update ids are remembered (Telegram keeps updates for 24 h).
const DONE_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    /// Database file.
    pub path: String,
    /// SQLite's error.
    #[source]
    pub source: rusqlite::Error,
}

/// One journaled update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// `update_id`.
    pub update_id: i64,
    /// The raw update JSON.
    pub raw: String,
    /// Handling attempts so far (replays after a crash count too).
    pub attempts: u32,
}

/// An update moved aside after failing too often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonEntry {
    /// `update_id`.
    pub update_id: i64,
    /// Why it was moved aside.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

/// One item waiting in an outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Row id, increasing in the order items were put.
    pub id: i64,
    /// Idempotency key, unique per outbox.
    pub key: String,
    /// What to deliver (JSON).
    pub payload: String,
    /// Failed deliveries so far.
    pub attempts: u32,
}

/// The database.
pub struct Store {
    conn: Connection,
    path: String,
}

/// Wraps SQLite errors with the database path; usable while a transaction borrows the store.
fn error_for(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError {
        path: path.to_string(),
        source,
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Moves an older version's greetings (Telegram users only) into `greeted_people`.
fn migrate_greeted(conn: &Connection) -> rusqlite::Result<()> {
    let old = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'greeted'")?
        .exists([])?;
    if old {
        conn.execute_batch(
            "BEGIN;
         INSERT OR IGNORE INTO greeted_people (platform, user_id, at)
             SELECT 'telegram', user_id, at FROM greeted;
         DROP TABLE greeted;
         COMMIT;",
        )?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_vfs(path, None)
    }

    /// As [`Store::open`], through the named SQLite VFS (tests use one that simulates power loss).
    fn open_with_vfs(path: &Path, vfs: Option<&str>) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError {
            path: name.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let conn = match vfs {
            None => Connection::open(path),
            Some(vfs) => Connection::open_with_flags_and_vfs(path, Default::default(), vfs),
        }
        .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS journal (
                 update_id INTEGER PRIMARY KEY,
                 raw TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 received_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS done (
                 update_id INTEGER PRIMARY KEY,
                 finished_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS poison (
                 update_id INTEGER PRIMARY KEY,
                 raw TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 attempts INTEGER NOT NULL,
                 moved_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS greeted_people (
                 platform TEXT NOT NULL,
                 user_id INTEGER NOT NULL,
                 at INTEGER NOT NULL,
                 PRIMARY KEY (platform, user_id));
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind TEXT NOT NULL,
                 key TEXT NOT NULL,
                 payload TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 last_error TEXT,
                 dead_reason TEXT,
                 created_at INTEGER NOT NULL,
                 delivered_at INTEGER,
                 UNIQUE (kind, key));",
        )
        .map_err(err)?;
        conn.execute_batch(outbox::INDEXES).map_err(err)?;
        conn.execute_batch(files::SCHEMA).map_err(err)?;
        conn.execute_batch(saved::SCHEMA).map_err(err)?;
        conn.execute_batch(renames::SCHEMA).map_err(err)?;
        conn.execute_batch(vk::SCHEMA).map_err(err)?;
        saved::migrate(&conn).map_err(err)?;
        migrate_greeted(&conn).map_err(err)?;
        conn.execute_batch(days::SCHEMA).map_err(err)?;
        conn.execute_batch(admin::SCHEMA).map_err(err)?;
        days::migrate(&conn).map_err(err)?;
        let mut store = Self { conn, path: name };
        store.prune_done()?;
        Ok(store)
    }

    /// Forgets finished update ids older than a week (Telegram keeps updates for 24 h); run at
    /// start-up and every hour, so the table stays the size of a week of traffic.
    pub fn prune_done(&mut self) -> Result<usize, StoreError> {
        let pruned = self
            .conn
            .execute(
                "DELETE FROM done WHERE finished_at < ?1",
                params![now_secs() - DONE_RETENTION_SECS],
            )
            .map_err(|e| self.err(e))?;
        self.prune_stale_claims(now_secs() - DONE_RETENTION_SECS)?;
        self.prune_vk_events(now_secs() - DONE_RETENTION_SECS)?;
        Ok(pruned)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Journals the updates that are neither journaled nor finished yet; returns their ids.
    pub fn journal(&mut self, updates: &[(i64, &str)]) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<_> = updates
            .iter()
            .map(|&(id, raw)| (id, raw, None, None))
            .collect();
        self.journal_dated(&rows)
    }

    /// As [`Store::journal`], with each update's chat and message date (Unix seconds), so the
    /// ETL can tell whether a day still has updates on their way.
    ///
    /// This commit alone is synced to disk before it returns (`synchronous = FULL` for this
    /// transaction), because the poller confirms the batch to Telegram right after, and Telegram
    /// never sends a confirmed update again. The sync covers every earlier commit too (the WAL
    /// is one file, recovered as a prefix); later ones are synced by the next batch or
    /// checkpoint, and losing them only means some updates are handled once more.
    pub fn journal_dated(
        &mut self,
        updates: &[(i64, &str, Option<i64>, Option<i64>)],
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        self.conn
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(err)?;
        let tx = self.conn.transaction().map_err(err)?;
        let mut fresh = Vec::with_capacity(updates.len());
        {
            // Finished or set aside: a repeated delivery is not handled again.
            let mut seen = tx
                .prepare_cached(
                    "SELECT 1 FROM done WHERE update_id = ?1
                     UNION ALL SELECT 1 FROM poison WHERE update_id = ?1",
                )
                .map_err(err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO journal (update_id, raw, attempts, received_at, chat_id, msg_date)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for (id, raw, chat, date) in updates {
                if seen.exists(params![id]).map_err(err)? {
                    continue;
                }
                if insert
                    .execute(params![id, raw, now, chat, date])
                    .map_err(err)?
                    == 1
                {
                    fresh.push(*id);
                }
            }
        }
        tx.commit().map_err(err)?;
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(err)?;
        Ok(fresh)
    }

    /// Marks updates as finished: they leave the journal and are remembered as done.
    pub fn finish(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM journal WHERE update_id = ?1")
                .map_err(err)?;
            let mut done = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO done (update_id, finished_at) VALUES (?1, ?2)",
                )
                .map_err(err)?;
            for id in ids {
                delete.execute(params![id]).map_err(err)?;
                done.execute(params![id, now]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Records one more failed attempt of a journaled update.
    pub fn record_attempt(&mut self, update_id: i64) -> Result<u32, StoreError> {
        self.conn
            .execute(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id = ?1",
                params![update_id],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .query_row(
                "SELECT attempts FROM journal WHERE update_id = ?1",
                params![update_id],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Moves an update from the journal to the poison list.
    pub fn poison(
        &mut self,
        update_id: i64,
        reason: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let err = error_for(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO poison (update_id, raw, reason, attempts, moved_at)
             SELECT update_id, raw, ?2, ?3, ?4 FROM journal WHERE update_id = ?1",
            params![update_id, reason, attempts, now_secs()],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM journal WHERE update_id = ?1",
            params![update_id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Starts the replay at start-up (called once per start). A chat's updates are handled one
    /// at a time, oldest first, so only the oldest journaled update of each chat can have been
    /// cut short by the end of the previous run: it alone is charged one more attempt. Updates
    /// that were only waiting behind it are not, so restarts during a backlog poison nothing.
    pub fn charge_replay(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id IN
                 (SELECT MIN(update_id) FROM journal GROUP BY COALESCE(chat_id, 0))",
                [],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` journaled updates after `after`, in update order: the replay reads the
    /// journal a page at a time, so a long backlog is never in memory at once.
    pub fn journal_page(&self, after: i64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT update_id, raw, attempts FROM journal WHERE update_id > ?1
                 ORDER BY update_id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(JournalEntry {
                    update_id: r.get(0)?,
                    raw: r.get(1)?,
                    attempts: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The whole journal for a replay: [`Store::charge_replay`], then every page.
    #[cfg(test)]
    pub fn take_for_replay(&mut self) -> Result<Vec<JournalEntry>, StoreError> {
        self.charge_replay()?;
        let mut all = Vec::new();
        loop {
            let page = self.journal_page(
                all.last().map_or(i64::MIN, |e: &JournalEntry| e.update_id),
                2,
            )?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Number of updates in the journal.
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The poison list.
    pub fn poisoned(&self) -> Result<Vec<PoisonEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT update_id, reason, attempts FROM poison ORDER BY update_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PoisonEntry {
                    update_id: r.get(0)?,
                    reason: r.get(1)?,
                    attempts: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Whether the person (a platform's user) was greeted already.
    pub fn is_greeted(&self, platform: &str, user_id: i64) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM greeted_people WHERE platform = ?1 AND user_id = ?2")
            .and_then(|mut s| s.exists(params![platform, user_id]))
            .map_err(|e| self.err(e))
    }

    /// Remembers that the person was greeted.
    pub fn set_greeted(&mut self, platform: &str, user_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO greeted_people (platform, user_id, at) VALUES (?1, ?2, ?3)",
                params![platform, user_id, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// A store in a fresh temporary directory, for unit tests.
#[cfg(test)]
fn test_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Store::open(&dir.path().join("state.db")).unwrap(), dir)
}

#[cfg(test)]
mod tests {
    use super::test_store as store;
    use super::*;

    #[test]
    fn journal_then_finish_then_redelivery_is_ignored() {
        let (mut s, _d) = store();
        assert_eq!(s.journal(&[(1, "{}"), (2, "{}")]).unwrap(), [1, 2]);
        assert_eq!(
            s.journal(&[(2, "{}"), (3, "{}")]).unwrap(),
            [3],
            "journaled once"
        );
        s.finish(&[1, 2]).unwrap();
        assert_eq!(s.journal_len().unwrap(), 1);
        assert!(
            s.journal(&[(1, "{}")]).unwrap().is_empty(),
            "finished is not journaled again"
        );
    }

    #[test]
    fn a_journaled_batch_survives_power_loss_right_after_it_returns() {
        super::powerloss::register();
        let (dir, after) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut s = Store::open_with_vfs(&dir.path().join("state.db"), Some(super::powerloss::VFS))
            .unwrap();
        s.set_greeted("telegram", 1).unwrap();
        s.journal_dated(&[(10, "{}", Some(5), Some(1)), (11, "{}", Some(5), Some(1))])
            .unwrap();
        s.set_greeted("telegram", 2).unwrap();
        // The power goes out: nothing is closed, only what reached the disk is left.
        super::powerloss::survivors(dir.path(), after.path());
        std::mem::forget(s);
        let mut s = Store::open(&after.path().join("state.db")).unwrap();
        assert_eq!(
            s.take_for_replay()
                .unwrap()
                .iter()
                .map(|e| e.update_id)
                .collect::<Vec<_>>(),
            [10, 11],
            "the batch confirmed to Telegram next is on disk"
        );
        assert!(
            s.is_greeted("telegram", 1).unwrap(),
            "what was committed before the batch is on disk too"
        );
        assert!(
            !s.is_greeted("telegram", 2).unwrap(),
            "a later commit that was never synced is lost (the simulation is real)"
        );
    }

    #[test]
    fn replays_charge_only_the_oldest_update_of_each_chat() {
        let (mut s, dir) = store();
        let rows = [(1, -5), (2, 7), (3, -5), (4, 7), (5, -5)];
        let rows: Vec<_> = rows
            .iter()
            .map(|&(id, chat)| (id, "{}", Some(chat), Some(1)))
            .collect();
        s.journal_dated(&rows).unwrap();
        drop(s);
        let mut last = Vec::new();
        for _ in 0..10 {
            let mut s = Store::open(&dir.path().join("state.db")).unwrap();
            last = s
                .take_for_replay()
                .unwrap()
                .iter()
                .map(|e| (e.update_id, e.attempts))
                .collect();
        }
        assert_eq!(
            last,
            [(1, 10), (2, 10), (3, 0), (4, 0), (5, 0)],
            "ten restarts charge each chat's oldest update, never the ones waiting behind it"
        );
    }

    #[test]
    fn replay_returns_unfinished_in_order_and_counts_attempts() {
        let (mut s, dir) = store();
        s.journal(&[(5, "{\"a\":5}"), (4, "{\"a\":4}")]).unwrap();
        s.finish(&[5]).unwrap();
        drop(s);
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let replay = s.take_for_replay().unwrap();
        assert_eq!(
            replay,
            [JournalEntry {
                update_id: 4,
                raw: "{\"a\":4}".into(),
                attempts: 1
            }]
        );
        assert_eq!(s.record_attempt(4).unwrap(), 2);
    }

    #[test]
    fn poison_moves_an_update_aside() {
        let (mut s, _d) = store();
        s.journal(&[(9, "{}")]).unwrap();
        s.poison(9, "panicked: boom", 3).unwrap();
        assert_eq!(s.journal_len().unwrap(), 0);
        let p = s.poisoned().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].update_id, p[0].attempts), (9, 3));
        assert!(p[0].reason.contains("boom"));
    }

    #[test]
    fn greeted_users_are_remembered_across_opens() {
        let (mut s, dir) = store();
        assert!(!s.is_greeted("telegram", 7).unwrap());
        s.set_greeted("telegram", 7).unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        assert!(s.is_greeted("telegram", 7).unwrap());
        assert!(!s.is_greeted("telegram", 8).unwrap());
        assert!(!s.is_greeted("vk", 7).unwrap(), "another platform's user 7");
    }

    #[test]
    fn an_older_stores_greetings_and_saved_files_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE greeted (user_id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
             INSERT INTO greeted VALUES (7, 1);
             CREATE TABLE saved_files (key TEXT PRIMARY KEY, platform TEXT NOT NULL,
                 user_id INTEGER NOT NULL, chat_id INTEGER NOT NULL, bytes INTEGER NOT NULL,
                 sha256 TEXT NOT NULL, file_id TEXT NOT NULL, file_unique_id TEXT,
                 saved_at INTEGER NOT NULL);
             INSERT INTO saved_files VALUES ('a.pdf', 'telegram', 7, 7, 3, 'ab', 'F', NULL, 5);",
        )
        .unwrap();
        drop(old);
        let s = Store::open(&path).unwrap();
        assert!(s.is_greeted("telegram", 7).unwrap());
        let file = s.latest_file("telegram", 7).unwrap().unwrap();
        assert_eq!(
            (file.key.as_str(), file.bytes, file.saved_at),
            ("a.pdf", 3, 5)
        );
        drop(s);
        // Opening again changes nothing.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.files_page(None, 0, 10).unwrap().1, 1);
    }
}

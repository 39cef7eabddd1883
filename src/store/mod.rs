//! The durable store: SQLite in WAL mode in the data directory (the default), or a PostgreSQL
//! server shared by replicas (`store.url`).
//!
//! It holds the update journal (every update Telegram handed over, until its handling
//! finished), the ids of recently finished updates (so a re-delivered update is not handled
//! twice), updates moved aside as poison, per-user conversation state, and outboxes: items
//! (Airtable rows, archive objects) kept until an actor has delivered them. Only the
//! `StoreActor` uses it; the functions here are plain and synchronous so they can be unit-tested.
//! Every statement is written once for both engines ([`db`]).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub use self::claims::JOURNAL_CHANNEL;
use self::db::{vals, DbError, Engine, Postgres, Row, Sql, Sqlite, Val};
pub use crate::config::urls::{redact_url, url_passwords};

mod acks;
mod admin;
mod claims;
mod days;
pub mod db;
mod files;
mod leases;
mod outbox;
pub mod pg_schema;
#[cfg(test)]
mod powerloss;
mod renames;
mod saved;
mod vk;

pub use admin::{PoisonItem, Status, REJECTED_IDS};
pub use days::{day_of_key, DayState};
pub use files::{OpenUpload, UploadOwner, INTENT};
pub use leases::LeaseState;
pub use renames::{Move, MoveStart};
pub use saved::{ClaimedKey, FileEntry, KeyClaim, SavedFile, FOREIGN};

/// How long finished update ids are remembered (Telegram keeps updates for 24 h).
const DONE_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    /// The database file, or the PostgreSQL server (without its password).
    pub path: String,
    /// The engine's error.
    #[source]
    pub source: DbError,
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

/// The connection of either engine.
enum Conn {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

impl Sql for Conn {
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        match self {
            Conn::Sqlite(c) => c.exec(sql, params),
            Conn::Postgres(c) => c.exec(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        match self {
            Conn::Sqlite(c) => c.query(sql, params),
            Conn::Postgres(c) => c.query(sql, params),
        }
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(c) => c.batch(sql),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }
}

/// The database.
pub struct Store {
    db: Conn,
    path: String,
}

/// Wraps engine errors with the database's name; usable while a transaction borrows the store.
fn error_for(path: &str) -> impl Fn(DbError) -> StoreError + Copy + '_ {
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

/// A journal entry of a row of `update_id, raw, attempts`.
fn journal_entry(r: &Row) -> Result<JournalEntry, DbError> {
    Ok(JournalEntry {
        update_id: r.i64(0)?,
        raw: r.text(1)?,
        attempts: r.u32(2)?,
    })
}

/// Reads every row of a result with `f`.
fn rows<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
    rows.iter().map(f).collect()
}

/// Adds to `table` each of `columns` (name, `ALTER TABLE` statement) an older SQLite
/// database lacks.
fn add_missing_columns(db: &Sqlite, table: &str, columns: &[(&str, &str)]) -> Result<(), DbError> {
    let present: Vec<String> = rows(
        db.query(
            &format!("SELECT name FROM pragma_table_info('{table}')"),
            &[],
        )?,
        |r| r.text(0),
    )?;
    for (name, sql) in columns {
        if !present.iter().any(|c| c == name) {
            db.batch(sql)?;
        }
    }
    Ok(())
}

/// Moves an older version's greetings (Telegram users only) into `greeted_people`.
fn migrate_greeted(db: &Sqlite) -> Result<(), DbError> {
    let old = db.exists(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'greeted'",
        &[],
    )?;
    if old {
        db.batch(
            "BEGIN;
         INSERT OR IGNORE INTO greeted_people (platform, user_id, at)
             SELECT 'telegram', user_id, at FROM greeted;
         DROP TABLE greeted;
         COMMIT;",
        )?;
    }
    Ok(())
}

/// The SQLite schema (created when missing; older databases are migrated at open).
const SQLITE_SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
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
        UNIQUE (kind, key));";

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_vfs(path, None)
    }

    /// Connects to the PostgreSQL server at `url` and applies the schema migrations it lacks
    /// (under a lock, so replicas starting together apply each once).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, db::PgLimits::default())
    }

    /// As [`Store::connect`], with the given bounds on every call to the server.
    /// The store `settings` name: PostgreSQL at `store.url` (with its call bounds), or the
    /// SQLite file in the data directory.
    pub fn open_configured(settings: &crate::config::Settings) -> Result<Self, StoreError> {
        if settings.store.is_postgres() {
            Self::connect_with(
                settings.store.url.expose(),
                db::PgLimits::from_settings(&settings.store),
            )
        } else {
            Self::open(&settings.store_path())
        }
    }

    pub fn connect_with(url: &str, limits: db::PgLimits) -> Result<Self, StoreError> {
        let name = redact_url(url);
        let err = error_for(&name);
        let db = Postgres::connect_with(url, limits).map_err(err)?;
        pg_schema::migrate(&db).map_err(err)?;
        let mut store = Self {
            db: Conn::Postgres(db),
            path: name,
        };
        store.prune_done()?;
        Ok(store)
    }

    /// As [`Store::open`], through the named SQLite VFS (tests use one that simulates power loss).
    fn open_with_vfs(path: &Path, vfs: Option<&str>) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let err = error_for(&name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        }
        let conn = match vfs {
            None => rusqlite::Connection::open(path),
            Some(vfs) => {
                rusqlite::Connection::open_with_flags_and_vfs(path, Default::default(), vfs)
            }
        }
        .map_err(|e| err(e.into()))?;
        let db = Sqlite(conn);
        let schema = [
            SQLITE_SCHEMA,
            outbox::INDEXES,
            files::SCHEMA,
            acks::SCHEMA,
            saved::SCHEMA,
            renames::SCHEMA,
            vk::SCHEMA,
            leases::SCHEMA,
            leases::RATE_SCHEMA,
        ];
        for sql in schema {
            db.batch(sql).map_err(err)?;
        }
        saved::migrate(&db).map_err(err)?;
        migrate_greeted(&db).map_err(err)?;
        db.batch(days::SCHEMA).map_err(err)?;
        db.batch(admin::SCHEMA).map_err(err)?;
        days::migrate(&db).map_err(err)?;
        claims::migrate_sqlite(&db).map_err(err)?;
        files::migrate_sqlite(&db).map_err(err)?;
        db.batch(claims::SCHEMA).map_err(err)?;
        let mut store = Self {
            db: Conn::Sqlite(db),
            path: name,
        };
        store.prune_done()?;
        Ok(store)
    }

    /// The SQLite connection, for tests of SQLite itself.
    #[cfg(test)]
    fn sqlite(&self) -> &rusqlite::Connection {
        match &self.db {
            Conn::Sqlite(db) => &db.0,
            Conn::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    /// Which engine holds the data.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// Forgets finished update ids older than a week (Telegram keeps updates for 24 h); run at
    /// start-up and every hour, so the table stays the size of a week of traffic.
    pub fn prune_done(&mut self) -> Result<usize, StoreError> {
        let pruned = self
            .db
            .exec(
                "DELETE FROM done WHERE finished_at < $1",
                vals![now_secs() - DONE_RETENTION_SECS],
            )
            .map_err(|e| self.err(e))?;
        self.prune_stale_claims(now_secs() - DONE_RETENTION_SECS)?;
        self.prune_vk_events(now_secs() - DONE_RETENTION_SECS)?;
        self.prune_acks(now_secs() - DONE_RETENTION_SECS)?;
        Ok(pruned as usize)
    }

    fn err(&self, source: impl Into<DbError>) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source: source.into(),
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
    /// This commit is durable before it returns, because the poller confirms the batch to
    /// Telegram right after, and Telegram never sends a confirmed update again. On SQLite this
    /// commit alone is synced to disk (`synchronous = FULL` for this transaction); the sync
    /// covers every earlier commit too (the WAL is one file, recovered as a prefix), later ones
    /// are synced by the next batch or checkpoint, and losing them only means some updates are
    /// handled once more. PostgreSQL syncs every commit.
    pub fn journal_dated(
        &mut self,
        updates: &[(i64, &str, Option<i64>, Option<i64>)],
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        let sqlite = self.db.engine() == Engine::Sqlite;
        if sqlite {
            self.db.batch("PRAGMA synchronous = FULL;").map_err(err)?;
        }
        // One statement per 100 updates: a row each, except for those journaled, finished or
        // set aside before (a repeated delivery is not handled again).
        const CHUNK: usize = 100;
        let fresh = self.db.transaction(|db| {
            let mut inserted = std::collections::HashSet::new();
            for chunk in updates.chunks(CHUNK) {
                let rows = (0..chunk.len())
                    .map(|i| {
                        let p = 4 * i + 2;
                        format!(
                            "(CAST(${p} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
                            p + 1,
                            p + 2,
                            p + 3
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut params = vec![Val::from(now)];
                for (id, raw, chat, date) in chunk {
                    params.extend([Val::from(*id), Val::from(*raw), Val::from(*chat), Val::from(*date)]);
                }
                let sql = format!(
                    "WITH v (update_id, raw, chat_id, msg_date) AS (VALUES {rows})
                     INSERT INTO journal (update_id, raw, attempts, received_at, chat_id, msg_date)
                     SELECT v.update_id, v.raw, 0, $1, v.chat_id, v.msg_date FROM v
                     WHERE NOT EXISTS (SELECT 1 FROM done d WHERE d.update_id = v.update_id)
                       AND NOT EXISTS (SELECT 1 FROM poison p WHERE p.update_id = v.update_id)
                     ON CONFLICT DO NOTHING
                     RETURNING update_id"
                );
                for row in db.query(&sql, &params)? {
                    inserted.insert(row.i64(0)?);
                }
            }
            // Replicas listening hear of the new rows when this commits.
            if !inserted.is_empty() && db.engine() == Engine::Postgres {
                db.exec(
                    "SELECT pg_notify($1, '')",
                    vals![JOURNAL_CHANNEL],
                )?;
            }
            // In the order they came, each once.
            Ok(updates
                .iter()
                .map(|u| u.0)
                .filter(|id| inserted.remove(id))
                .collect::<Vec<i64>>())
        });
        if sqlite {
            self.db.batch("PRAGMA synchronous = NORMAL;").map_err(err)?;
        }
        fresh.map_err(err)
    }

    /// Marks updates as finished: they leave the journal and are remembered as done. Two
    /// statements per 100 updates, in one transaction.
    pub fn finish(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        const CHUNK: usize = 100;
        let now = now_secs();
        let err = error_for(&self.path);
        // One row may be changed once per statement (PostgreSQL refuses more).
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        self.db
            .transaction(|db| {
                for chunk in ids.chunks(CHUNK) {
                    let n = chunk.len();
                    let list = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                    let params: Vec<Val> = chunk.iter().map(|id| Val::from(*id)).collect();
                    db.exec(
                        &format!("DELETE FROM journal WHERE update_id IN ({list})"),
                        &params,
                    )?;
                    let rows = (1..=n)
                        .map(|i| format!("(${i}, ${})", n + 1))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let mut with_time = params;
                    with_time.push(Val::from(now));
                    db.exec(
                        &format!(
                            "INSERT INTO done (update_id, finished_at) VALUES {rows}
                             ON CONFLICT (update_id) DO UPDATE SET finished_at = excluded.finished_at"
                        ),
                        &with_time,
                    )?;
                }
                Ok(())
            })
            .map_err(err)
    }

    /// Records one more failed attempt of a journaled update.
    pub fn record_attempt(&mut self, update_id: i64) -> Result<u32, StoreError> {
        let row = self
            .db
            .first(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id = $1 RETURNING attempts",
                vals![update_id],
            )
            .map_err(|e| self.err(e))?;
        match row {
            Some(row) => row.u32(0).map_err(|e| self.err(e)),
            None => Ok(0),
        }
    }

    /// Moves an update from the journal to the poison list.
    pub fn poison(
        &mut self,
        update_id: i64,
        reason: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                db.exec(
                    "INSERT INTO poison (update_id, raw, reason, attempts, moved_at)
                     SELECT update_id, raw, $2, $3, $4 FROM journal WHERE update_id = $1
                     ON CONFLICT (update_id) DO UPDATE SET raw = excluded.raw,
                         reason = excluded.reason, attempts = excluded.attempts,
                         moved_at = excluded.moved_at",
                    vals![update_id, reason, attempts, now_secs()],
                )?;
                db.exec("DELETE FROM journal WHERE update_id = $1", vals![update_id])
            })
            .map(drop)
            .map_err(err)
    }

    /// Starts the replay at start-up (called once per start). A chat's updates are handled one
    /// at a time, oldest first, so only the oldest journaled update of each chat can have been
    /// cut short by the end of the previous run: it alone is charged one more attempt. Updates
    /// that were only waiting behind it are not, so restarts during a backlog poison nothing.
    pub fn charge_replay(&mut self) -> Result<(), StoreError> {
        self.db
            .exec(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id IN
                 (SELECT MIN(update_id) FROM journal GROUP BY COALESCE(chat_id, 0))",
                &[],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` journaled updates after `after`, in update order: the replay reads the
    /// journal a page at a time, so a long backlog is never in memory at once.
    pub fn journal_page(&self, after: i64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        self.db
            .query(
                "SELECT update_id, raw, attempts FROM journal WHERE update_id > $1
                 ORDER BY update_id LIMIT $2",
                vals![after, limit],
            )
            .and_then(|r| rows(r, journal_entry))
            .map_err(|e| self.err(e))
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
        self.count("SELECT COUNT(*) FROM journal", &[])
    }

    /// The first column of the first row, an integer (a count).
    fn count(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        self.db
            .first(sql, params)
            .and_then(|row| row.map_or(Ok(0), |r| r.i64(0)))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// The poison list.
    pub fn poisoned(&self) -> Result<Vec<PoisonEntry>, StoreError> {
        self.db
            .query(
                "SELECT update_id, reason, attempts FROM poison ORDER BY update_id",
                &[],
            )
            .and_then(|r| {
                rows(r, |r| {
                    Ok(PoisonEntry {
                        update_id: r.i64(0)?,
                        reason: r.text(1)?,
                        attempts: r.u32(2)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Whether the person (a platform's user) was greeted already.
    pub fn is_greeted(&self, platform: &str, user_id: i64) -> Result<bool, StoreError> {
        self.db
            .exists(
                "SELECT 1 FROM greeted_people WHERE platform = $1 AND user_id = $2",
                vals![platform, user_id],
            )
            .map_err(|e| self.err(e))
    }

    /// Remembers that the person was greeted.
    pub fn set_greeted(&mut self, platform: &str, user_id: i64) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO greeted_people (platform, user_id, at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                vals![platform, user_id, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// Where a unit test's store lives, to open it again: a temporary directory for SQLite, or a
/// schema of its own on the PostgreSQL server `TG_INGEST_TEST_STORE_URL` names (so the same
/// suite runs on both engines).
#[cfg(test)]
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    url: Option<String>,
}

#[cfg(test)]
impl TestDb {
    /// Opens the test's store again.
    pub(crate) fn open(&self) -> Store {
        match &self.url {
            Some(url) => Store::connect(url).unwrap(),
            None => Store::open(&self.dir.path().join("state.db")).unwrap(),
        }
    }
}

/// A fresh store for a unit test, on the engine the environment chooses.
#[cfg(test)]
fn test_store() -> (Store, TestDb) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("TG_INGEST_TEST_STORE_URL").ok().map(|base| {
        let schema = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = Postgres::connect(&base).unwrap();
        admin.batch(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{schema}")
    });
    let db = TestDb { dir, url };
    (db.open(), db)
}

#[cfg(test)]
mod tests;

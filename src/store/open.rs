//! Opening the store: the SQLite file (its schema created and migrated in place) or the
//! PostgreSQL server (its numbered migrations, [`super::pg_schema`]).

use std::path::Path;

use super::db::{self, DbError, Postgres, Sql, Sqlite};
use super::{
    acks, admin, claims, days, error_for, files, leases, outbox, pg_schema, redact_url, renames,
    rows, saved, segments, vk, Conn, Store, StoreError,
};

/// Adds to `table` each of `columns` (name, `ALTER TABLE` statement) an older SQLite
/// database lacks.
pub(super) fn add_missing_columns(
    db: &Sqlite,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), DbError> {
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

    /// As [`Store::connect`], with the given bounds on every call to the server.
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
    pub(super) fn open_with_vfs(path: &Path, vfs: Option<&str>) -> Result<Self, StoreError> {
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
        segments::migrate_sqlite(&db).map_err(err)?;
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
    pub(super) fn sqlite(&self) -> &rusqlite::Connection {
        match &self.db {
            Conn::Sqlite(db) => &db.0,
            Conn::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}

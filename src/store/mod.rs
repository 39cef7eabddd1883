//! The durable store: SQLite in WAL mode in the data directory (the default), or a PostgreSQL
//! server shared by replicas (`store.url`).
//!
//! It holds the update journal (every update Telegram handed over, until its handling
//! finished), the ids of recently finished updates (so a re-delivered update is not handled
//! twice), updates moved aside as poison, per-user conversation state, and outboxes: items
//! (Airtable rows, archive objects) kept until an actor has delivered them. Only the
//! `StoreActor` uses it; the functions here are plain and synchronous so they can be unit-tested.
//! Every statement is written once for both engines ([`db`]).
//!
//! May import: `util`, `obs`, `config`, `clients`, `embedded_s3`, `domain`.

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
mod journal;
mod leases;
mod listing;
mod open;
use self::journal::journal_entry;
use self::open::add_missing_columns;
mod outbox;
pub mod pg_schema;
#[cfg(test)]
mod powerloss;
mod renames;
mod saved;
mod segments;
#[cfg(test)]
mod testing;
mod vk;

pub use admin::{PoisonItem, Status, REJECTED_IDS};
pub use days::{day_of_key, DayState};
pub use files::{OpenUpload, UploadOwner, INTENT};
pub use leases::LeaseState;
pub use listing::FileEntry;
pub use renames::{Move, MoveStart};
pub use saved::{ClaimedKey, KeyClaim, SavedFile, FOREIGN};

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
    /// The segment it was sealed into (archive outbox, segments layout).
    pub segment: Option<String>,
    /// When it was queued, Unix seconds.
    pub created_at: i64,
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

/// Reads every row of a result with `f`.
fn rows<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
    rows.iter().map(f).collect()
}

impl Store {
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

#[cfg(test)]
use self::testing::test_store;
#[cfg(test)]
mod tests;

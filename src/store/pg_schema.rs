//! The PostgreSQL schema: numbered migrations embedded in the binary, applied at start under a
//! session advisory lock, so replicas starting together apply each one exactly once.
//!
//! The tables are those of the SQLite store, with BIGINT for every integer (ids, Unix times,
//! counters), identity columns where SQLite has `AUTOINCREMENT`, and the byte order of SQLite
//! (`COLLATE "C"`) for the keys read in ranges (outbox keys, archive days).

use super::db::{vals, DbError, Postgres, Sql};

/// The advisory lock key held while migrating ("tgingest" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x7467_696e_6765_7374;

/// The migrations, in order. A released migration is never changed: a change is a new one.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE journal (
         update_id BIGINT PRIMARY KEY,
         raw TEXT NOT NULL,
         attempts BIGINT NOT NULL DEFAULT 0,
         received_at BIGINT NOT NULL,
         chat_id BIGINT,
         msg_date BIGINT);
     CREATE INDEX journal_by_date ON journal (msg_date) WHERE msg_date IS NOT NULL;
     CREATE TABLE done (
         update_id BIGINT PRIMARY KEY,
         finished_at BIGINT NOT NULL);
     CREATE TABLE poison (
         update_id BIGINT PRIMARY KEY,
         raw TEXT NOT NULL,
         reason TEXT NOT NULL,
         attempts BIGINT NOT NULL,
         moved_at BIGINT NOT NULL);
     CREATE TABLE greeted_people (
         platform TEXT NOT NULL,
         user_id BIGINT NOT NULL,
         at BIGINT NOT NULL,
         PRIMARY KEY (platform, user_id));
     CREATE TABLE outbox (
         id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         kind TEXT NOT NULL,
         key TEXT COLLATE \"C\" NOT NULL,
         payload TEXT NOT NULL,
         attempts BIGINT NOT NULL DEFAULT 0,
         last_error TEXT,
         dead_reason TEXT,
         created_at BIGINT NOT NULL,
         delivered_at BIGINT,
         UNIQUE (kind, key));
     CREATE INDEX outbox_pending ON outbox (kind, id)
         WHERE delivered_at IS NULL AND dead_reason IS NULL;
     CREATE INDEX outbox_pending_keys ON outbox (kind, key)
         WHERE delivered_at IS NULL AND dead_reason IS NULL;
     CREATE INDEX outbox_delivered ON outbox (kind, delivered_at)
         WHERE delivered_at IS NOT NULL;
     CREATE TABLE open_uploads (
         upload_id TEXT PRIMARY KEY,
         bucket TEXT NOT NULL,
         key TEXT NOT NULL,
         started_at BIGINT NOT NULL);
     CREATE TABLE files (
         id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         key TEXT NOT NULL UNIQUE,
         platform TEXT NOT NULL,
         user_id BIGINT NOT NULL,
         chat_id BIGINT NOT NULL,
         bytes BIGINT,
         sha256 TEXT,
         file_id TEXT,
         file_unique_id TEXT,
         saved_at BIGINT,
         claimed_by TEXT,
         claimed_at BIGINT NOT NULL);
     CREATE INDEX files_by_owner
         ON files (platform, user_id, saved_at DESC, id DESC) WHERE saved_at IS NOT NULL;
     CREATE INDEX files_by_claim ON files (claimed_by) WHERE claimed_by IS NOT NULL;
     CREATE TABLE pending_renames (
         platform TEXT NOT NULL,
         user_id BIGINT NOT NULL,
         file BIGINT NOT NULL,
         chat_id BIGINT NOT NULL,
         since BIGINT NOT NULL,
         PRIMARY KEY (platform, user_id));
     CREATE TABLE moves (
         event TEXT PRIMARY KEY,
         file BIGINT NOT NULL,
         from_key TEXT NOT NULL,
         to_key TEXT NOT NULL,
         started_at BIGINT NOT NULL,
         done_at BIGINT);
     CREATE INDEX moves_under_way ON moves (to_key) WHERE done_at IS NULL;
     CREATE TABLE vk_events (
         seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         event_id TEXT NOT NULL UNIQUE,
         at BIGINT NOT NULL);
     CREATE TABLE vk_state (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL);
     CREATE TABLE archive_days (
         day TEXT COLLATE \"C\" PRIMARY KEY,
         touched_at BIGINT,
         compacted_at BIGINT);
     CREATE TABLE intake_seen (
         source TEXT PRIMARY KEY,
         at BIGINT NOT NULL);",
    ),
    (2, super::leases::SCHEMA),
    (
        3,
        concat!(
            "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
             ALTER TABLE outbox ADD COLUMN claim_until BIGINT;",
            // The chat claims (`store::claims::SCHEMA`, written out: a released migration
            // never changes).
            "CREATE TABLE chat_claims (
                 chat_id BIGINT PRIMARY KEY,
                 holder TEXT NOT NULL,
                 token BIGINT NOT NULL,
                 expires_at BIGINT NOT NULL);
             CREATE INDEX chat_claims_by_holder ON chat_claims (holder);
             CREATE INDEX journal_by_chat ON journal ((COALESCE(chat_id, 0)), update_id);"
        ),
    ),
    (
        4,
        // The shared request rates (`store::leases::RATE_SCHEMA`, written out).
        "CREATE TABLE rate_turns (
             name TEXT PRIMARY KEY,
             next_at BIGINT NOT NULL);",
    ),
    (
        5,
        // The acknowledgements sent (`store::acks::SCHEMA`, written out).
        "CREATE TABLE acks (
             event TEXT PRIMARY KEY,
             message_id BIGINT NOT NULL,
             sent_at BIGINT NOT NULL);
         CREATE INDEX acks_by_age ON acks (sent_at);",
    ),
    (
        6,
        // The owners of open multipart uploads (`store::files`).
        "ALTER TABLE open_uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
         ALTER TABLE open_uploads ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
         ALTER TABLE open_uploads ADD COLUMN aborting BIGINT NOT NULL DEFAULT 0;",
    ),
    // The segments of the archive outbox.
    (7, super::segments::PG_MIGRATION),
];

/// Applies the migrations this database lacks, holding the migration lock; answers the
/// versions applied now.
pub fn migrate(db: &Postgres) -> Result<Vec<i64>, DbError> {
    db.batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let applied = apply(db);
    let unlocked = db.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

fn apply(db: &Postgres) -> Result<Vec<i64>, DbError> {
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL)",
    )?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        if db.exists(
            "SELECT 1 FROM schema_migrations WHERE version = $1",
            vals![*version],
        )? {
            continue;
        }
        db.transaction(|db| {
            db.batch(sql)?;
            db.exec(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                vals![*version, super::now_secs()],
            )
        })?;
        log::info!("store: PostgreSQL schema migration {version} applied");
        applied.push(*version);
    }
    Ok(applied)
}

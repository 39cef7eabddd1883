//! Claims: how replicas sharing one store split the work of the journal and the outboxes.
//!
//! A replica works a chat's journaled updates only while it holds that chat's claim: a row
//! with the holder and an expiry, renewed while the replica lives and deleted once the chat
//! has nothing left in the journal. So one chat's updates are handled by one replica at a
//! time, oldest first, and different chats go to different replicas. The claim of a replica
//! that died runs out and another replica takes the chat over; the oldest journaled update of
//! a chat taken over so is charged one attempt (it may be the one that killed the replica), so
//! an update that crashes every replica ends on the poison list instead of going round.
//!
//! Outbox items are claimed one by one in the same way ([`Store::outbox_claim`]): an item is
//! delivered by the replica that claimed it, and offered to another only once that claim ran
//! out. Times come from the database's clock.

use super::db::{vals, Engine, Sql, Val};
use super::leases::now_ms;
use super::{error_for, rows, JournalEntry, Store, StoreError};

/// The table and indexes of this module on SQLite (the outbox columns are added by
/// [`migrate_sqlite`]); PostgreSQL gets the same from its migration 3.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS chat_claims (
        chat_id BIGINT PRIMARY KEY,
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at BIGINT NOT NULL);
    CREATE INDEX IF NOT EXISTS chat_claims_by_holder ON chat_claims (holder);
    CREATE INDEX IF NOT EXISTS journal_by_chat ON journal ((COALESCE(chat_id, 0)), update_id);";

/// The outbox columns of per-item claims.
pub(super) const OUTBOX_COLUMNS: [(&str, &str); 2] = [
    (
        "claimed_by",
        "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
    ),
    (
        "claim_until",
        "ALTER TABLE outbox ADD COLUMN claim_until BIGINT",
    ),
];

/// Adds the outbox claim columns to a SQLite database that predates them.
pub(super) fn migrate_sqlite(db: &super::db::Sqlite) -> Result<(), super::db::DbError> {
    super::add_missing_columns(db, "outbox", &OUTBOX_COLUMNS)
}

/// The PostgreSQL channel on which journal writes (and claims given up) are announced to the
/// replicas.
pub const JOURNAL_CHANNEL: &str = "tg_ingest_journal";

/// Most chats with journaled updates a claim walks through (in chat order) to find those no
/// live replica holds.
const CHATS_WALKED: usize = 10_000;
/// Most journaled updates of one chat a round lists: a chat is worked by one worker in order,
/// so more would only wait in its queue.
pub const PER_CHAT: usize = 100;

/// Locks the rows a subquery selects, in its order (PostgreSQL; SQLite has one writer).
fn row_locks(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "",
        Engine::Postgres => "FOR UPDATE",
    }
}

/// A `$first, $first+1, …` list of `n` parameters.
fn params_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Claims up to `limit` chats that have journaled updates and no live claim (never
    /// claimed, released, or run out), oldest waiting update first; answers the chats taken.
    /// The chats with journaled updates are walked one index step each (up to
    /// [`CHATS_WALKED`]), never row by row: a chat with a backlog of any length costs a claim
    /// what a chat with one update costs. A replica takes at most its share: the chats with
    /// work (claimed or waiting) divided by the live replicas ([`Store::renew_claims`] keeps this
    /// one counted), less those it holds, so the first replica to look does not take them all.
    /// A chat taken over from a claim that ran out has its oldest journaled update charged one
    /// attempt. Replicas claiming together never get the same chat.
    pub fn claim_chats(
        &mut self,
        holder: &str,
        ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms(self.db.engine());
        // `chats` walks the distinct chats of the journal through the index on
        // (chat, update_id): each step asks for the next chat after the last one.
        // `WHERE TRUE` lets SQLite tell the upsert's ON from a join's. Rows are locked in chat
        // order, so replicas claiming together wait for each other instead of deadlocking.
        let sql = format!(
            "WITH RECURSIVE chats (chat, n) AS (
                 SELECT MIN(COALESCE(chat_id, 0)), 1 FROM journal
                 UNION ALL
                 SELECT (SELECT MIN(COALESCE(j.chat_id, 0)) FROM journal j
                         WHERE COALESCE(j.chat_id, 0) > c.chat), c.n + 1
                 FROM chats c WHERE c.chat IS NOT NULL AND c.n < {CHATS_WALKED}),
             free AS (
                 SELECT c.chat,
                        (SELECT MIN(j.update_id) FROM journal j
                         WHERE COALESCE(j.chat_id, 0) = c.chat) AS oldest
                 FROM chats c
                 WHERE c.chat IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chat_claims k
                     WHERE k.chat_id = c.chat AND k.expires_at >= {now})),
             live AS (
                 SELECT CASE WHEN COUNT(*) > 0 THEN COUNT(*) ELSE 1 END AS n FROM leases
                 WHERE name LIKE 'replica:%' AND expires_at >= {now}),
             held AS (
                 SELECT COUNT(*) AS total,
                        COUNT(*) FILTER (WHERE holder = $1) AS mine
                 FROM chat_claims WHERE expires_at >= {now}),
             share AS (
                 SELECT ((SELECT COUNT(*) FROM free) + (SELECT total FROM held)
                         + (SELECT n FROM live) - 1) / (SELECT n FROM live)
                        - (SELECT mine FROM held) AS n),
             pick AS (
                 SELECT chat FROM free ORDER BY oldest
                 LIMIT (SELECT CASE WHEN n < 0 THEN 0 WHEN n < $3 THEN n ELSE $3 END FROM share))
             INSERT INTO chat_claims (chat_id, holder, token, expires_at)
             SELECT chat, $1, 1, {now} + $2 FROM pick WHERE TRUE ORDER BY chat
             ON CONFLICT (chat_id) DO UPDATE SET holder = excluded.holder,
                 token = chat_claims.token + 1, expires_at = excluded.expires_at
             WHERE chat_claims.expires_at < {now}
             RETURNING chat_id, token"
        );
        let err = error_for(&self.path);
        let taken = self
            .db
            .query(&sql, vals![holder, ttl_ms, limit])
            .and_then(|r| rows(r, |r| Ok((r.i64(0)?, r.i64(1)?))))
            .map_err(err)?;
        let over: Vec<Val> = taken
            .iter()
            .filter(|(_, token)| *token > 1)
            .map(|(chat, _)| Val::from(*chat))
            .collect();
        if !over.is_empty() {
            let sql = format!(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id IN
                 (SELECT MIN(update_id) FROM journal WHERE COALESCE(chat_id, 0) IN ({})
                  GROUP BY COALESCE(chat_id, 0))",
                params_list(1, over.len())
            );
            self.db.exec(&sql, &over).map_err(err)?;
        }
        Ok(taken.into_iter().map(|(chat, _)| chat).collect())
    }

    /// Extends every claim `holder` still holds (chats and outbox items) by `ttl_ms`, and
    /// counts it among the live replicas as long; answers how many chats it holds.
    pub fn renew_claims(&mut self, holder: &str, ttl_ms: i64) -> Result<u64, StoreError> {
        self.renew_claims_listed(holder, ttl_ms)
            .map(|chats| chats.len() as u64)
    }

    /// As [`Store::renew_claims`], answering the chats this replica holds now (a chat another
    /// replica took over after its claim ran out is not among them: this one lost it).
    pub fn renew_claims_listed(
        &mut self,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_ms(self.db.engine());
        let err = error_for(&self.path);
        // Three statements, each its own transaction, and the chat rows locked in chat order
        // as a claim locks them: a renewal never deadlocks with another replica's claim.
        self.db
            .exec(
                &format!(
                    "INSERT INTO leases (name, holder, token, expires_at)
                     VALUES ('replica:' || $1, $1, 1, {now} + $2)
                     ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                vals![holder, ttl_ms],
            )
            .map_err(err)?;
        let chats = self
            .db
            .query(
                &format!(
                    "UPDATE chat_claims SET expires_at = {now} + $2 WHERE chat_id IN
                     (SELECT chat_id FROM chat_claims WHERE holder = $1 ORDER BY chat_id {})
                     RETURNING chat_id",
                    row_locks(self.db.engine())
                ),
                vals![holder, ttl_ms],
            )
            .and_then(|r| rows(r, |r| r.i64(0)))
            .map_err(err)?;
        self.db
            .exec(
                &format!(
                    "UPDATE outbox SET claim_until = {now} + $2
                     WHERE claimed_by = $1 AND delivered_at IS NULL AND dead_reason IS NULL"
                ),
                vals![holder, ttl_ms],
            )
            .map_err(err)?;
        Ok(chats)
    }

    /// At the start of a process that goes by the name of an earlier one: the chats it still
    /// holds may have updates that process was handling when it ended, so the oldest
    /// journaled update of each is charged one attempt (as a replay at start-up does).
    /// Answers how many chats it holds.
    pub fn adopt_claims(&mut self, holder: &str) -> Result<u64, StoreError> {
        let err = error_for(&self.path);
        self.db
            .exec(
                "UPDATE journal SET attempts = attempts + 1 WHERE update_id IN
                 (SELECT MIN(j.update_id) FROM journal j
                  JOIN chat_claims k ON k.chat_id = COALESCE(j.chat_id, 0)
                  WHERE k.holder = $1 GROUP BY k.chat_id)",
                vals![holder],
            )
            .map_err(err)?;
        self.db
            .first(
                "SELECT COUNT(*) FROM chat_claims WHERE holder = $1",
                vals![holder],
            )
            .and_then(|r| r.map_or(Ok(0), |r| r.u64(0)))
            .map_err(err)
    }

    /// Gives up `holder`'s claims on chats that have nothing left in the journal, so their
    /// next updates may go to any replica; answers how many.
    pub fn release_idle_claims(&mut self, holder: &str) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM chat_claims WHERE chat_id IN
             (SELECT chat_id FROM chat_claims k WHERE holder = $1 AND NOT EXISTS
                 (SELECT 1 FROM journal j WHERE COALESCE(j.chat_id, 0) = k.chat_id)
              ORDER BY chat_id {})",
            row_locks(self.db.engine())
        );
        self.db.exec(&sql, vals![holder]).map_err(|e| self.err(e))
    }

    /// Gives up every claim of `holder` (a clean stop): chats and outbox items go to other
    /// replicas at once.
    pub fn release_claims(&mut self, holder: &str) -> Result<(), StoreError> {
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                db.exec("DELETE FROM chat_claims WHERE holder = $1", vals![holder])?;
                db.exec(
                    "DELETE FROM leases WHERE name = 'replica:' || $1",
                    vals![holder],
                )?;
                db.exec(
                    "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1",
                    vals![holder],
                )?;
                // Its chats with work left are claimed by the others at once.
                if db.engine() == Engine::Postgres {
                    db.exec("SELECT pg_notify($1, '')", vals![JOURNAL_CHANNEL])?;
                }
                Ok(())
            })
            .map(drop)
            .map_err(err)
    }

    /// Up to `limit` journaled updates of the chats `holder` holds (`update_id` and chat), in
    /// order, at most [`PER_CHAT`] of each chat (its oldest). Each chat's rows are read through
    /// the index on (chat, update_id), so a long backlog in one chat costs no more than
    /// [`PER_CHAT`] rows. Updates already finished (journaled again by a repeated delivery)
    /// are left out.
    pub fn claimed_updates(
        &self,
        holder: &str,
        limit: usize,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .listed_claims(holder, limit)?
            .into_iter()
            .filter(|(_, _, done)| !done)
            .map(|(id, chat, _)| (id, chat))
            .collect())
    }

    /// As [`Store::claimed_updates`], each update with whether it is finished already.
    fn listed_claims(
        &self,
        holder: &str,
        limit: usize,
    ) -> Result<Vec<(i64, i64, bool)>, StoreError> {
        let sql = match self.db.engine() {
            Engine::Postgres => format!(
                "SELECT x.update_id, k.chat_id,
                        EXISTS (SELECT 1 FROM done d WHERE d.update_id = x.update_id)
                 FROM chat_claims k CROSS JOIN LATERAL
                     (SELECT j.update_id FROM journal j WHERE COALESCE(j.chat_id, 0) = k.chat_id
                      ORDER BY j.update_id LIMIT {PER_CHAT}) x
                 WHERE k.holder = $1 ORDER BY x.update_id LIMIT $2"
            ),
            Engine::Sqlite => format!(
                "SELECT update_id, chat,
                        EXISTS (SELECT 1 FROM done d WHERE d.update_id = w.update_id)
                 FROM (SELECT j.update_id, k.chat_id AS chat, ROW_NUMBER() OVER
                           (PARTITION BY k.chat_id ORDER BY j.update_id) AS n
                       FROM journal j JOIN chat_claims k ON k.chat_id = COALESCE(j.chat_id, 0)
                       WHERE k.holder = $1) w
                 WHERE n <= {PER_CHAT} ORDER BY update_id LIMIT $2"
            ),
        };
        self.db
            .query(&sql, vals![holder, limit])
            .and_then(|r| rows(r, |r| Ok((r.i64(0)?, r.i64(1)?, r.i64(2)? != 0))))
            .map_err(|e| self.err(e))
    }

    /// A round's work: [`Store::claimed_updates`], dropping from the journal the updates found
    /// finished already; answers them and how many were dropped. On PostgreSQL a repeated
    /// delivery can journal an update again while another transaction finishes it (the insert
    /// checked `done` before that commit, and the row it conflicted with was then deleted);
    /// such a row is not work.
    pub fn claimed_work(
        &mut self,
        holder: &str,
        limit: usize,
    ) -> Result<(Vec<(i64, i64)>, u64), StoreError> {
        let listed = self.listed_claims(holder, limit)?;
        let finished: Vec<Val> = listed
            .iter()
            .filter(|(_, _, done)| *done)
            .map(|(id, _, _)| Val::from(*id))
            .collect();
        let mut dropped = 0;
        if !finished.is_empty() {
            let sql = format!(
                "DELETE FROM journal WHERE update_id IN ({})
                 AND EXISTS (SELECT 1 FROM done d WHERE d.update_id = journal.update_id)",
                params_list(1, finished.len())
            );
            dropped = self.db.exec(&sql, &finished).map_err(|e| self.err(e))?;
        }
        let work = listed
            .into_iter()
            .filter(|(_, _, done)| !done)
            .map(|(id, chat, _)| (id, chat))
            .collect();
        Ok((work, dropped))
    }

    /// The journaled updates among `ids`, in order (those finished meanwhile are left out).
    pub fn journal_entries(&self, ids: &[i64]) -> Result<Vec<JournalEntry>, StoreError> {
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let sql = format!(
                "SELECT update_id, raw, attempts FROM journal WHERE update_id IN ({})",
                params_list(1, chunk.len())
            );
            let params: Vec<Val> = chunk.iter().map(|id| Val::from(*id)).collect();
            let found = self
                .db
                .query(&sql, &params)
                .and_then(|r| rows(r, super::journal_entry))
                .map_err(|e| self.err(e))?;
            all.extend(found);
        }
        all.sort_by_key(|e| e.update_id);
        Ok(all)
    }
}

#[cfg(test)]
mod tests;

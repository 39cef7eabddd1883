//! The update journal: updates kept from intake until their handling finished, the ids of
//! finished ones, attempts, and the poison list.

use super::db::{vals, DbError, Engine, Row, Sql, Val};
use super::{
    error_for, now_secs, rows, JournalEntry, PoisonEntry, Store, StoreError, JOURNAL_CHANNEL,
};
use crate::domain::archive::ARCHIVE_OUTBOX;

/// A journal entry of a row of `update_id, raw, attempts`.
pub(super) fn journal_entry(r: &Row) -> Result<JournalEntry, DbError> {
    Ok(JournalEntry {
        update_id: r.i64(0)?,
        raw: r.text(1)?,
        attempts: r.u32(2)?,
    })
}

impl Store {
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
        self.journal_archiving(updates, &[])
    }

    /// As [`Store::journal_dated`], and in the same durable commit, `archived` updates
    /// (`update_id`, archive key, raw update) that need nothing but the archive: each is queued
    /// in the archive outbox and remembered as done, without a journal row, so no worker
    /// handles it. A repeated delivery queues nothing new.
    pub fn journal_archiving(
        &mut self,
        updates: &[(i64, &str, Option<i64>, Option<i64>)],
        archived: &[(i64, &str, &str)],
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
        if updates.is_empty() && archived.is_empty() {
            return Ok(Vec::new());
        }
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
            for (update_id, key, raw) in archived {
                db.exec(
                    "INSERT INTO outbox (kind, key, payload, attempts, created_at)
                     VALUES ($1, $2, $3, 0, $4) ON CONFLICT DO NOTHING",
                    vals![ARCHIVE_OUTBOX, *key, *raw, now],
                )?;
                db.exec(
                    "INSERT INTO done (update_id, finished_at) VALUES ($1, $2)
                     ON CONFLICT (update_id) DO NOTHING",
                    vals![*update_id, now],
                )?;
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
    pub(super) fn count(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
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
}

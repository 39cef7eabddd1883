//! What the admin CLI reads and changes: a summary of the store, the poison list and the dead
//! letters of the outboxes. Each change is one transaction, so it is safe while the service
//! runs (SQLite's WAL lets the service and the CLI share the file).

use super::db::{vals, Engine, Sql};

/// The table of this module: when each intake last succeeded (for `tg-ingest status`).
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS intake_seen (
        source TEXT PRIMARY KEY,
        at INTEGER NOT NULL);";

use super::{error_for, now_secs, rows, Store, StoreError};
use crate::domain::inbound::IncomingUpdate;

/// A summary of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Updates journaled and not finished.
    pub journal: u64,
    /// Updates on the poison list.
    pub poison: u64,
    /// Per outbox kind: (kind, pending, dead letters).
    pub outboxes: Vec<(String, u64, u64)>,
    /// Unix time the last update finished, if any did this week.
    pub last_finished_at: Option<i64>,
    /// Unix time an update was last journaled (received), if one is waiting.
    pub last_received_at: Option<i64>,
    /// The last day compacted by the ETL and when (milliseconds), if any.
    pub last_etl: Option<(String, i64)>,
    /// Per intake (`telegram_polling`, `telegram_webhook`, `vk`): Unix time it last succeeded.
    pub intakes: Vec<(String, i64)>,
}

/// One poisoned update, with its raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonItem {
    /// Journal id.
    pub update_id: i64,
    /// Why it was set aside.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// Unix time it was set aside.
    pub moved_at: i64,
    /// The update as received.
    pub raw: String,
}

/// Poison list ids of bodies that were not updates start below this and go down (VK's journal
/// ids start at it and go up; Telegram's are never negative).
pub const REJECTED_IDS: i64 = -(1 << 62);

impl Store {
    /// Records that `source` fetched or received updates successfully now.
    pub fn note_intake(&mut self, source: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO intake_seen (source, at) VALUES ($1, $2)
                 ON CONFLICT (source) DO UPDATE SET at = excluded.at",
                vals![source, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Keeps a delivered body that is not an update on the poison list, with its reason;
    /// answers its id there.
    pub fn poison_rejected(&mut self, raw: &str, reason: &str) -> Result<i64, StoreError> {
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                let lowest = db
                    .first(
                        "SELECT MIN(update_id) FROM poison WHERE update_id < $1",
                        vals![REJECTED_IDS],
                    )?
                    .map_or(Ok(None), |r| r.opt_i64(0))?;
                let id = lowest.unwrap_or(REJECTED_IDS) - 1;
                db.exec(
                    "INSERT INTO poison (update_id, raw, reason, attempts, moved_at)
                     VALUES ($1, $2, $3, 0, $4)",
                    vals![id, raw, reason, now_secs()],
                )?;
                Ok(id)
            })
            .map_err(err)
    }

    /// Whether the store can take a write now (a write transaction begun and rolled back).
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        let probe = match self.db.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE; ROLLBACK;",
            // A read-only server (a standby, or one out of disk in read-only mode) refuses it.
            Engine::Postgres => {
                "BEGIN READ WRITE; CREATE TEMP TABLE probe_writable (x BIGINT); ROLLBACK;"
            }
        };
        self.db.batch(probe).map_err(|e| self.err(e))
    }

    /// A summary of the journal, the poison list, the outboxes and the ETL.
    pub fn status(&self) -> Result<Status, StoreError> {
        let err = |e| self.err(e);
        let outboxes = self
            .db
            .query(
                "SELECT kind,
                        COUNT(*) FILTER (WHERE delivered_at IS NULL AND dead_reason IS NULL),
                        COUNT(*) FILTER (WHERE dead_reason IS NOT NULL)
                 FROM outbox GROUP BY kind ORDER BY kind",
                &[],
            )
            .and_then(|r| rows(r, |r| Ok((r.text(0)?, r.u64(1)?, r.u64(2)?))))
            .map_err(err)?;
        let optional = |sql: &str| -> Result<Option<i64>, StoreError> {
            self.db
                .first(sql, &[])
                .and_then(|r| r.map_or(Ok(None), |r| r.opt_i64(0)))
                .map_err(err)
        };
        let last_etl = self
            .db
            .first(
                "SELECT day, compacted_at FROM archive_days WHERE compacted_at IS NOT NULL
                 ORDER BY day DESC LIMIT 1",
                &[],
            )
            .and_then(|r| r.map(|r| Ok((r.text(0)?, r.i64(1)?))).transpose())
            .map_err(err)?;
        let intakes = self
            .db
            .query("SELECT source, at FROM intake_seen ORDER BY source", &[])
            .and_then(|r| rows(r, |r| Ok((r.text(0)?, r.i64(1)?))))
            .map_err(err)?;
        Ok(Status {
            intakes,
            journal: self.count("SELECT COUNT(*) FROM journal", &[])?,
            poison: self.count("SELECT COUNT(*) FROM poison", &[])?,
            outboxes,
            last_finished_at: optional("SELECT MAX(finished_at) FROM done")?,
            last_received_at: optional("SELECT MAX(received_at) FROM journal")?,
            last_etl,
        })
    }

    /// The poison list with each update's raw JSON.
    pub fn poison_items(&self) -> Result<Vec<PoisonItem>, StoreError> {
        self.db
            .query(
                "SELECT update_id, reason, attempts, moved_at, raw FROM poison ORDER BY update_id",
                &[],
            )
            .and_then(|r| {
                rows(r, |r| {
                    Ok(PoisonItem {
                        update_id: r.i64(0)?,
                        reason: r.text(1)?,
                        attempts: r.u32(2)?,
                        moved_at: r.i64(3)?,
                        raw: r.text(4)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Puts poisoned updates (all, or those in `ids`) back into the journal with no attempts;
    /// the service replays them at its next start. Delivered bodies that were not updates
    /// stay (there is nothing to handle; drop them). Answers how many were moved.
    pub fn poison_retry(&mut self, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        let chosen: Vec<PoisonItem> = self
            .poison_items()?
            .into_iter()
            .filter(|p| p.update_id >= REJECTED_IDS)
            .filter(|p| ids.is_none_or(|ids| ids.contains(&p.update_id)))
            .collect();
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                for item in &chosen {
                    let (chat, date) = serde_json::value::RawValue::from_string(item.raw.clone())
                        .ok()
                        .and_then(|raw| IncomingUpdate::parse(raw).ok())
                        .map_or((None, None), |u| {
                            (u.chat_id(), u.update.any_message().map(|m| m.date))
                        });
                    db.exec(
                        "INSERT INTO journal (update_id, raw, attempts, received_at, chat_id, msg_date)
                         VALUES ($1, $2, 0, $3, $4, $5)
                         ON CONFLICT (update_id) DO UPDATE SET raw = excluded.raw, attempts = 0,
                             received_at = excluded.received_at, chat_id = excluded.chat_id,
                             msg_date = excluded.msg_date",
                        vals![item.update_id, &item.raw, now_secs(), chat, date],
                    )?;
                    db.exec("DELETE FROM done WHERE update_id = $1", vals![item.update_id])?;
                    db.exec("DELETE FROM poison WHERE update_id = $1", vals![item.update_id])?;
                }
                Ok(())
            })
            .map_err(err)?;
        Ok(chosen.len())
    }

    /// Deletes poisoned updates (all, or those in `ids`) for good. Answers how many.
    pub fn poison_drop(&mut self, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        let chosen: Vec<i64> = self
            .poison_items()?
            .into_iter()
            .map(|p| p.update_id)
            .filter(|id| ids.is_none_or(|ids| ids.contains(id)))
            .collect();
        for id in &chosen {
            self.db
                .exec("DELETE FROM poison WHERE update_id = $1", vals![*id])
                .map_err(|e| self.err(e))?;
        }
        Ok(chosen.len())
    }

    /// Makes dead letters of `kind` (all, or those with ids in `ids`) pending again, with no
    /// attempts: the outbox's actor delivers them on its next pass. Answers how many.
    pub fn dead_retry(&mut self, kind: &str, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        self.dead_change(
            kind,
            ids,
            "UPDATE outbox SET dead_reason = NULL, last_error = NULL, attempts = 0 WHERE id = $1",
        )
    }

    /// Deletes dead letters of `kind` (all, or those with ids in `ids`). Answers how many.
    pub fn dead_drop(&mut self, kind: &str, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        self.dead_change(kind, ids, "DELETE FROM outbox WHERE id = $1")
    }

    fn dead_change(
        &mut self,
        kind: &str,
        ids: Option<&[i64]>,
        sql: &str,
    ) -> Result<usize, StoreError> {
        let chosen: Vec<i64> = self
            .outbox_dead(kind)?
            .into_iter()
            .map(|(item, _)| item.id)
            .filter(|id| ids.is_none_or(|ids| ids.contains(id)))
            .collect();
        for id in &chosen {
            self.db.exec(sql, vals![*id]).map_err(|e| self.err(e))?;
        }
        Ok(chosen.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;

    #[test]
    fn poison_goes_back_to_the_journal_and_dead_letters_back_to_their_outbox() {
        let (mut s, _d) = store();
        let raw = r#"{"update_id":9,"message":{"message_id":1,"date":5,"chat":{"id":7,"type":"private"},"text":"x"}}"#;
        s.journal_dated(&[(9, raw, Some(7), Some(5)), (10, "{}", None, None)])
            .unwrap();
        s.poison(9, "panicked: boom", 5).unwrap();
        s.poison(10, "failed", 5).unwrap();
        assert_eq!(s.status().unwrap().poison, 2);
        assert_eq!(s.poison_retry(Some(&[9])).unwrap(), 1);
        assert_eq!(s.journal_len().unwrap(), 1);
        let page = s.journal_page(i64::MIN, 10).unwrap();
        assert_eq!((page[0].update_id, page[0].attempts), (9, 0));
        assert_eq!(s.poison_drop(None).unwrap(), 1);
        assert!(s.poison_items().unwrap().is_empty());

        s.outbox_put("airtable", "a", "{}").unwrap();
        s.outbox_put("airtable", "b", "{}").unwrap();
        let items = s.outbox_pending("airtable", 10).unwrap();
        s.outbox_failed(items[0].id, "422 INVALID_VALUE_FOR_COLUMN", true)
            .unwrap();
        s.outbox_failed(items[1].id, "422 INVALID_VALUE_FOR_COLUMN", true)
            .unwrap();
        let status = s.status().unwrap();
        assert_eq!(status.outboxes, [("airtable".to_string(), 0, 2)]);
        assert_eq!(s.dead_retry("airtable", Some(&[items[0].id])).unwrap(), 1);
        assert_eq!(s.outbox_pending("airtable", 10).unwrap().len(), 1);
        assert_eq!(s.dead_drop("airtable", None).unwrap(), 1);
        assert_eq!(
            s.status().unwrap().outboxes,
            [("airtable".to_string(), 1, 0)]
        );
        assert_eq!(s.dead_retry("archive", None).unwrap(), 0);
    }

    #[test]
    fn rejected_bodies_are_kept_apart_and_a_poisoned_update_is_not_journaled_again() {
        let (mut s, _d) = store();
        let first = s.poison_rejected("not json", "not an update").unwrap();
        let second = s.poison_rejected("{}", "no update_id").unwrap();
        assert!(second < first && first < super::REJECTED_IDS);
        let raw = r#"{"update_id":9,"message":{"message_id":1,"date":5,"chat":{"id":7,"type":"private"},"text":"x"}}"#;
        s.journal_dated(&[(9, raw, Some(7), Some(5))]).unwrap();
        s.poison(9, "failed", 5).unwrap();
        // Delivered again (a webhook retry): neither journaled nor handed over.
        assert!(s
            .journal_dated(&[(9, raw, Some(7), Some(5))])
            .unwrap()
            .is_empty());
        assert_eq!(s.journal_len().unwrap(), 0);
        // Retrying all moves the update, not the bodies that were never updates.
        assert_eq!(s.poison_retry(None).unwrap(), 1);
        let left: Vec<i64> = s
            .poison_items()
            .unwrap()
            .iter()
            .map(|p| p.update_id)
            .collect();
        assert_eq!(left, [second, first]);
        assert_eq!(s.poison_drop(None).unwrap(), 2);
    }
}

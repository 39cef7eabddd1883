//! The VK intake's state: a journal id for every VK event (so an event VK delivers twice is
//! journaled once, and the journal orders VK events as they arrived) and the long-poll `ts`
//! to resume from after a restart.

use super::db::{vals, Sql};

use super::{error_for, now_secs, Store, StoreError};
use crate::domain::inbound::VK_IDS;

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS vk_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS vk_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL);";

impl Store {
    /// The journal id of each VK event, by its `event_id`: the one it had if it came before,
    /// else the next in arrival order.
    pub fn vk_ids(&mut self, event_ids: &[String]) -> Result<Vec<i64>, StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                let mut ids = Vec::with_capacity(event_ids.len());
                for event in event_ids {
                    db.exec(
                        "INSERT INTO vk_events (event_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        vals![event, now],
                    )?;
                    let seq = db
                        .first("SELECT seq FROM vk_events WHERE event_id = $1", vals![event])?
                        .map_or(Ok(0), |r| r.i64(0))?;
                    ids.push(VK_IDS + seq);
                }
                Ok(ids)
            })
            .map_err(err)
    }

    /// The long-poll `ts` saved after the last journaled batch.
    pub fn vk_ts(&self) -> Result<Option<String>, StoreError> {
        self.db
            .first("SELECT value FROM vk_state WHERE key = 'ts'", &[])
            .and_then(|r| r.map(|r| r.text(0)).transpose())
            .map_err(|e| self.err(e))
    }

    /// Saves the long-poll `ts` to resume from.
    pub fn set_vk_ts(&mut self, ts: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO vk_state (key, value) VALUES ('ts', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vals![ts],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets the ids of VK events older than `before` (VK does not deliver them again).
    pub(super) fn prune_vk_events(&mut self, before: i64) -> Result<(), StoreError> {
        self.db
            .exec("DELETE FROM vk_events WHERE at < $1", vals![before])
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;
    use super::*;

    #[test]
    fn an_event_keeps_its_id_and_ids_follow_arrival() {
        let (mut s, _d) = store();
        let first = s.vk_ids(&["a".into(), "b".into()]).unwrap();
        assert_eq!(first, [VK_IDS + 1, VK_IDS + 2]);
        let again = s.vk_ids(&["b".into(), "c".into()]).unwrap();
        assert_eq!(again[0], VK_IDS + 2, "a repeated event keeps its id");
        assert!(again[1] > again[0], "a new one comes after: {again:?}");
        assert!(again.iter().all(|id| *id < 0), "never a Telegram update_id");
        assert_eq!(s.vk_ts().unwrap(), None);
        s.set_vk_ts("41").unwrap();
        s.set_vk_ts("42").unwrap();
        assert_eq!(s.vk_ts().unwrap().as_deref(), Some("42"));
        s.prune_vk_events(now_secs() + 1).unwrap();
        let renewed = s.vk_ids(&["a".into()]).unwrap();
        assert!(renewed[0] > again[1], "pruned: a new id");
    }
}

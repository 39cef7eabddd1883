//! The acknowledgements already sent, by the event they answer: the `[document]` message goes
//! out before anything that may wait (the key's check in the bucket, the upload), so a retry of
//! the same event finds it here and keeps showing progress in it instead of sending another.

use super::db::{vals, Sql};
use super::{now_secs, Store, StoreError};

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS acks (
        event TEXT PRIMARY KEY,
        message_id INTEGER NOT NULL,
        sent_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS acks_by_age ON acks (sent_at);";

impl Store {
    /// The message that acknowledged `event`, if one was sent.
    pub fn ack_of(&self, event: &str) -> Result<Option<i64>, StoreError> {
        self.db
            .first("SELECT message_id FROM acks WHERE event = $1", vals![event])
            .and_then(|r| r.map(|r| r.i64(0)).transpose())
            .map_err(|e| self.err(e))
    }

    /// Remembers the message that acknowledged `event` (the first one recorded stays).
    pub fn record_ack(&mut self, event: &str, message_id: i64) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO acks (event, message_id, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (event) DO NOTHING",
                vals![event, message_id, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets acknowledgements sent before `before` (Unix seconds).
    pub(super) fn prune_acks(&mut self, before: i64) -> Result<(), StoreError> {
        self.db
            .exec("DELETE FROM acks WHERE sent_at < $1", vals![before])
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;

    #[test]
    fn an_acknowledgement_is_found_again_after_a_reopen() {
        let (mut s, dir) = store();
        assert_eq!(s.ack_of("telegram:5").unwrap(), None);
        s.record_ack("telegram:5", 77).unwrap();
        s.record_ack("telegram:5", 78).unwrap();
        drop(s);
        let mut s = dir.open();
        assert_eq!(
            s.ack_of("telegram:5").unwrap(),
            Some(77),
            "the first one stays"
        );
        s.prune_acks(super::now_secs() + 1).unwrap();
        assert_eq!(s.ack_of("telegram:5").unwrap(), None);
    }
}

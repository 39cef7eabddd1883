//! Archive segments in the outbox: the raw updates sealed into one segment are marked with its
//! key in one transaction before the segment is written, so whoever writes it (this process
//! after a crash, or another replica) builds it from the same members.

use super::db::{vals, DbError, Engine, Sql, Sqlite};
use super::outbox::item;
use super::{error_for, rows, OutboxItem, Store, StoreError};

/// The outbox column of sealed items.
const COLUMNS: [(&str, &str); 1] = [("segment", "ALTER TABLE outbox ADD COLUMN segment TEXT")];

/// The index that finds a segment's members.
pub(super) const INDEX: &str = "
    CREATE INDEX IF NOT EXISTS outbox_segments ON outbox (kind, segment)
        WHERE segment IS NOT NULL;";

/// The PostgreSQL migration of this module (applied as version 7).
pub(super) const PG_MIGRATION: &str = "
    ALTER TABLE outbox ADD COLUMN segment TEXT COLLATE \"C\";
    CREATE INDEX outbox_segments ON outbox (kind, segment) WHERE segment IS NOT NULL;";

/// Adds the segment column to a SQLite database that predates it, and its index.
pub(super) fn migrate_sqlite(db: &Sqlite) -> Result<(), DbError> {
    super::add_missing_columns(db, "outbox", &COLUMNS)?;
    db.batch(INDEX)
}

impl Store {
    /// Seals the pending, unsealed items `ids` of an outbox into `segment`; answers how many
    /// it sealed (fewer when some were sealed, delivered or dead already).
    pub fn outbox_seal(
        &mut self,
        kind: &str,
        ids: &[i64],
        segment: &str,
    ) -> Result<usize, StoreError> {
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                let mut sealed = 0;
                for id in ids {
                    sealed += db.exec(
                        "UPDATE outbox SET segment = $3 WHERE kind = $1 AND id = $2
                         AND segment IS NULL AND delivered_at IS NULL AND dead_reason IS NULL",
                        vals![kind, *id, segment],
                    )?;
                }
                Ok(sealed as usize)
            })
            .map_err(err)
    }

    /// The members of a segment in id order, or none when any of them was delivered (the
    /// segment was written, and delivered payloads may have been cleared) or died.
    pub fn outbox_segment(&self, kind: &str, segment: &str) -> Result<Vec<OutboxItem>, StoreError> {
        let hint = match self.db.engine() {
            Engine::Sqlite => "INDEXED BY outbox_segments",
            Engine::Postgres => "",
        };
        let sql = format!(
            "SELECT id, key, payload, attempts, segment, created_at, delivered_at, dead_reason
             FROM outbox {hint} WHERE kind = $1 AND segment = $2 ORDER BY id"
        );
        let found = self
            .db
            .query(&sql, vals![kind, segment])
            .and_then(|r| {
                rows(r, |r| {
                    let done = r.opt_i64(6)?.is_some() || r.opt_text(7)?.is_some();
                    Ok((item(r)?, done))
                })
            })
            .map_err(|e| self.err(e))?;
        if found.iter().any(|(_, done)| *done) {
            return Ok(Vec::new());
        }
        Ok(found.into_iter().map(|(item, _)| item).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;

    #[test]
    fn sealed_members_are_fixed_and_read_back_until_delivered() {
        let (mut s, dir) = store();
        for i in 0..4 {
            s.outbox_put("archive", &format!("d/{i}"), &format!("p{i}"))
                .unwrap();
        }
        let ids: Vec<i64> = s
            .outbox_pending("archive", 10)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(s.outbox_seal("archive", &ids[..3], "seg-a").unwrap(), 3);
        assert_eq!(
            s.outbox_seal("archive", &ids[1..], "seg-b").unwrap(),
            1,
            "sealed items stay in their segment"
        );
        drop(s);
        let mut s = dir.open();
        let pending = s.outbox_pending("archive", 10).unwrap();
        assert_eq!(pending[0].segment.as_deref(), Some("seg-a"));
        assert_eq!(pending[3].segment.as_deref(), Some("seg-b"));
        let members = s.outbox_segment("archive", "seg-a").unwrap();
        assert_eq!(
            members
                .iter()
                .map(|m| m.payload.as_str())
                .collect::<Vec<_>>(),
            ["p0", "p1", "p2"]
        );
        assert!(s.outbox_segment("airtable", "seg-a").unwrap().is_empty());
        s.outbox_delivered(&ids[..1], false).unwrap();
        assert!(
            s.outbox_segment("archive", "seg-a").unwrap().is_empty(),
            "a segment being marked written is not rebuilt from cleared payloads"
        );
    }
}

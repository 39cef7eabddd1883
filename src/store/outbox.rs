//! Outboxes: items (Airtable rows, raw archive objects) kept in the store until an actor has
//! delivered them, keyed so that putting the same item twice keeps one.

use super::db::{vals, DbError, Engine, Row, Sql};
use super::leases::now_ms;
use super::{error_for, now_secs, rows, OutboxItem, Store, StoreError};

/// Indexes for the hot queries: pending items in order (read every second by each sink), pending
/// items by key (is a day still on its way?), and delivered items by age (the pruning). The
/// partial ones hold only the few rows they serve, however many delivered rows are kept.
pub(super) const INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (kind, id)
        WHERE delivered_at IS NULL AND dead_reason IS NULL;
    CREATE INDEX IF NOT EXISTS outbox_pending_keys ON outbox (kind, key)
        WHERE delivered_at IS NULL AND dead_reason IS NULL;
    CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (kind, delivered_at)
        WHERE delivered_at IS NOT NULL;";

/// An outbox item of a row.
pub(super) fn item(r: &Row) -> Result<OutboxItem, DbError> {
    Ok(OutboxItem {
        id: r.i64(0)?,
        key: r.text(1)?,
        payload: r.text(2)?,
        attempts: r.u32(3)?,
        segment: r.opt_text(4)?,
        created_at: r.i64(5)?,
    })
}

impl Store {
    /// Queues an item for delivery by a later actor (`kind` names the outbox, e.g. `airtable`).
    /// `key` makes it idempotent: putting the same key twice keeps one item. Returns whether
    /// it was new.
    pub fn outbox_put(&mut self, kind: &str, key: &str, payload: &str) -> Result<bool, StoreError> {
        self.db
            .exec(
                "INSERT INTO outbox (kind, key, payload, attempts, created_at) VALUES ($1, $2, $3, 0, $4)
                 ON CONFLICT DO NOTHING",
                vals![kind, key, payload, now_secs()],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` pending items of an outbox, oldest first.
    pub fn outbox_pending(&self, kind: &str, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = match self.db.engine() {
            Engine::Sqlite => {
                "SELECT id, key, payload, attempts, segment, created_at FROM outbox INDEXED BY outbox_pending
                 WHERE kind = $1 AND dead_reason IS NULL AND delivered_at IS NULL ORDER BY id LIMIT $2"
            }
            Engine::Postgres => {
                "SELECT id, key, payload, attempts, segment, created_at FROM outbox
                 WHERE kind = $1 AND dead_reason IS NULL AND delivered_at IS NULL ORDER BY id LIMIT $2"
            }
        };
        self.db
            .query(sql, vals![kind, limit])
            .and_then(|r| rows(r, item))
            .map_err(|e| self.err(e))
    }

    /// Marks items delivered. They stay (their keys keep later puts idempotent) but are not
    /// offered again. With `keep_payload` their payload stays too, readable with
    /// [`Store::outbox_payloads`] until [`Store::outbox_forget_delivered`] drops it.
    pub fn outbox_delivered(&mut self, ids: &[i64], keep_payload: bool) -> Result<(), StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        let sql = if keep_payload {
            "UPDATE outbox SET delivered_at = $2 WHERE id = $1"
        } else {
            "UPDATE outbox SET delivered_at = $2, payload = '' WHERE id = $1"
        };
        self.db
            .transaction(|db| {
                for id in ids {
                    db.exec(sql, vals![*id, now])?;
                }
                Ok(())
            })
            .map_err(err)
    }

    /// The non-empty payloads of an outbox whose keys lie in `first..=last`, in key order,
    /// delivered or not.
    pub fn outbox_payloads(
        &self,
        kind: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .query(
                "SELECT key, payload FROM outbox
                 WHERE kind = $1 AND key >= $2 AND key <= $3 AND payload <> '' ORDER BY key",
                vals![kind, first, last],
            )
            .and_then(|r| rows(r, |r| Ok((r.text(0)?, r.text(1)?))))
            .map_err(|e| self.err(e))
    }

    /// Deletes up to `limit` items of an outbox delivered more than `age_secs` ago; returns how
    /// many. Callers repeat while a whole chunk went, so one call never holds the database for
    /// long. Only for outboxes whose keys are not needed after delivery (the archive's keys are
    /// deterministic object keys, so a repeated put just writes the same object again).
    pub fn outbox_forget_delivered(
        &mut self,
        kind: &str,
        age_secs: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let sql = match self.db.engine() {
            Engine::Sqlite => {
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY outbox_delivered
                 WHERE kind = $1 AND delivered_at IS NOT NULL AND delivered_at <= $2 LIMIT $3)"
            }
            Engine::Postgres => {
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                 WHERE kind = $1 AND delivered_at IS NOT NULL AND delivered_at <= $2 LIMIT $3)"
            }
        };
        self.db
            .exec(sql, vals![kind, now_secs() - age_secs, limit])
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Records a failed delivery; with `dead` the item is kept as a dead letter and no longer
    /// offered for delivery.
    pub fn outbox_failed(&mut self, id: i64, reason: &str, dead: bool) -> Result<(), StoreError> {
        let sql = if dead {
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_reason = $2 WHERE id = $1"
        } else {
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1"
        };
        self.db
            .exec(sql, vals![id, reason])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Dead letters of an outbox with their reasons.
    pub fn outbox_dead(&self, kind: &str) -> Result<Vec<(OutboxItem, String)>, StoreError> {
        self.db
            .query(
                "SELECT id, key, payload, attempts, segment, created_at, dead_reason FROM outbox
                 WHERE kind = $1 AND dead_reason IS NOT NULL ORDER BY id",
                vals![kind],
            )
            .and_then(|r| rows(r, |r| Ok((item(r)?, r.text(6)?))))
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` pending items of an outbox that no other replica has claimed (or whose
    /// claim ran out), oldest first, claimed for `holder` for `ttl_ms`. Items `holder` claimed
    /// before and has not delivered are offered again. On PostgreSQL, replicas claiming
    /// together skip each other's rows.
    pub fn outbox_claim(
        &mut self,
        kind: &str,
        limit: usize,
        (holder, ttl_ms): (&str, i64),
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let engine = self.db.engine();
        let now = now_ms(engine);
        let (hint, lock) = match engine {
            Engine::Sqlite => ("INDEXED BY outbox_pending", ""),
            Engine::Postgres => ("", "FOR UPDATE SKIP LOCKED"),
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $3, claim_until = {now} + $4 WHERE id IN (
                 SELECT id FROM outbox {hint}
                 WHERE kind = $1 AND dead_reason IS NULL AND delivered_at IS NULL
                   AND (claimed_by IS NULL OR claimed_by = $3 OR claim_until < {now})
                 ORDER BY id LIMIT $2 {lock})
             RETURNING id, key, payload, attempts, segment, created_at"
        );
        let mut items = self
            .db
            .query(&sql, vals![kind, limit, holder, ttl_ms])
            .and_then(|r| rows(r, item))
            .map_err(|e| self.err(e))?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;
    use super::*;
    use std::time::{Duration, Instant};

    /// The median time of `runs` calls of `f` (the median, so a test run beside others on a
    /// busy machine measures the query, not the scheduler).
    fn median(runs: usize, mut f: impl FnMut()) -> Duration {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        times.sort_unstable();
        times[runs / 2]
    }

    #[test]
    fn a_million_delivered_rows_keep_the_hot_queries_fast() {
        // SQLite's planner and speed: on its own file whatever engine the suite runs on.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        // Eight days of a busy archive (125,000 messages a day), delivered and kept.
        s.sqlite()
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
                 INSERT INTO outbox (kind, key, payload, attempts, created_at, delivered_at)
                 SELECT 'archive', 'telegram/context_date=2026-11-1' || (i % 8) || '/m_' || i,
                        '{}', 0, 0, 1000 FROM n;",
            )
            .unwrap();
        for i in 0..50 {
            s.outbox_put(
                "archive",
                &format!("telegram/context_date=2026-11-19/new_{i}"),
                "{}",
            )
            .unwrap();
        }
        let plan: Vec<String> = s
            .sqlite()
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE kind = 'archive'
                 AND dead_reason IS NULL AND delivered_at IS NULL ORDER BY id LIMIT 256",
            )
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("outbox_pending")),
            "pending items are found through the partial index: {plan:?}"
        );
        let mut pending = 0;
        let pending_took = median(21, || {
            pending = s.outbox_pending("archive", 256).unwrap().len();
        });
        assert_eq!(pending, 50);
        let day = "telegram/context_date=2026-11-13/";
        let day_took = median(21, || {
            assert!(!s.day_pending("archive", day, 0, 1, &[]).unwrap());
        });
        let mut next = 1;
        let commit_took = median(21, || {
            let batch: Vec<_> = (next..next + 100)
                .map(|id| (id, "{\"message\":{}}", Some(-5), Some(1)))
                .collect();
            next += 100;
            s.journal_dated(&batch).unwrap();
        });
        assert!(
            pending_took < Duration::from_millis(5),
            "outbox_pending took {pending_took:?} beside 1,000,000 delivered rows"
        );
        assert!(
            day_took < Duration::from_millis(5),
            "day_pending took {day_took:?} beside 1,000,000 delivered rows"
        );
        assert!(
            commit_took < Duration::from_millis(20),
            "a journal commit of 100 updates took {commit_took:?}"
        );
        let chunk_took = median(11, || {
            assert_eq!(
                s.outbox_forget_delivered("archive", 0, 1_000).unwrap(),
                1_000
            );
        });
        assert_eq!(s.outbox_pending("archive", 256).unwrap().len(), 50);
        eprintln!(
            "1,000,000 delivered rows: outbox_pending {pending_took:?}, day_pending {day_took:?}, \
             journal commit of 100 updates {commit_took:?}, pruning 1,000 rows {chunk_took:?}"
        );
    }

    #[test]
    fn outbox_items_are_idempotent_ordered_and_can_die() {
        let (mut s, dir) = store();
        assert!(s.outbox_put("airtable", "chat1:msg1", "{\"a\":1}").unwrap());
        assert!(
            !s.outbox_put("airtable", "chat1:msg1", "{\"a\":2}").unwrap(),
            "same key kept once"
        );
        assert!(s.outbox_put("airtable", "chat1:msg2", "{}").unwrap());
        assert!(
            s.outbox_put("archive", "chat1:msg1", "{}").unwrap(),
            "keys are per outbox"
        );
        let pending = s.outbox_pending("airtable", 10).unwrap();
        assert_eq!(
            pending.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
            ["chat1:msg1", "chat1:msg2"]
        );
        assert_eq!(pending[0].payload, "{\"a\":1}");
        s.outbox_failed(pending[0].id, "timeout", false).unwrap();
        s.outbox_failed(pending[1].id, "INVALID_VALUE_FOR_COLUMN: bad date", true)
            .unwrap();
        drop(s);
        let mut s = dir.open();
        let pending = s.outbox_pending("airtable", 10).unwrap();
        assert_eq!(pending.len(), 1, "dead letters are not offered again");
        assert_eq!(pending[0].attempts, 1);
        let dead = s.outbox_dead("airtable").unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].1.contains("INVALID_VALUE_FOR_COLUMN"));
        s.outbox_delivered(&[pending[0].id], false).unwrap();
        assert!(s.outbox_pending("airtable", 10).unwrap().is_empty());
        assert!(
            !s.outbox_put("airtable", "chat1:msg1", "{}").unwrap(),
            "delivered keys stay known"
        );
        assert_eq!(s.outbox_pending("archive", 10).unwrap().len(), 1);
    }

    #[test]
    fn delivered_payloads_are_kept_on_request_then_forgotten() {
        let (mut s, _d) = store();
        for (k, p) in [
            ("d/1", "one"),
            ("d/2", "two"),
            ("d/3", "three"),
            ("e/1", "other day"),
        ] {
            s.outbox_put("archive", k, p).unwrap();
        }
        s.outbox_put("airtable", "d/2", "a row").unwrap();
        let ids: Vec<i64> = s
            .outbox_pending("archive", 10)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        s.outbox_delivered(&ids[..2], true).unwrap();
        s.outbox_delivered(&ids[2..3], false).unwrap();
        assert_eq!(
            s.outbox_payloads("archive", "d/", "d/\u{10ffff}").unwrap(),
            [
                ("d/1".to_string(), "one".to_string()),
                ("d/2".into(), "two".into())
            ],
            "kept payloads of the range only, in key order; a cleared one is gone"
        );
        assert_eq!(s.outbox_payloads("archive", "d/2", "d/2").unwrap().len(), 1);
        assert_eq!(
            s.outbox_forget_delivered("archive", 60, 100).unwrap(),
            0,
            "too young"
        );
        assert_eq!(
            s.outbox_forget_delivered("archive", -1, 2).unwrap(),
            2,
            "one chunk at a time"
        );
        assert_eq!(s.outbox_forget_delivered("archive", -1, 2).unwrap(), 1);
        assert!(s
            .outbox_payloads("archive", "d/", "d/\u{10ffff}")
            .unwrap()
            .is_empty());
        assert_eq!(
            s.outbox_pending("archive", 10).unwrap().len(),
            1,
            "undelivered stay"
        );
        assert_eq!(
            s.outbox_pending("airtable", 10).unwrap().len(),
            1,
            "other outboxes stay"
        );
    }
}

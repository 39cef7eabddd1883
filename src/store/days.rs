//! What the ETL scheduler needs to know about archive days: whether anything for a day is still
//! on its way (journaled updates of archived chats dated that day, or raw objects waiting in the
//! archive outbox), and whether a day got raw objects after its last compaction (stale).

use super::db::{vals, DbError, Engine, Sql, Sqlite};
use super::{rows, Store, StoreError};

/// The tables and columns of this module (`journal.chat_id` and `journal.msg_date` are added to
/// older databases by [`migrate`]).
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS archive_days (
        day TEXT PRIMARY KEY,
        touched_at INTEGER,
        compacted_at INTEGER);";

/// Adds the journal columns this module reads, when the database predates them.
pub(super) fn migrate(db: &Sqlite) -> Result<(), DbError> {
    let columns: Vec<String> = rows(
        db.query("SELECT name FROM pragma_table_info('journal')", &[])?,
        |r| r.text(0),
    )?;
    for (name, sql) in [
        ("chat_id", "ALTER TABLE journal ADD COLUMN chat_id INTEGER"),
        (
            "msg_date",
            "ALTER TABLE journal ADD COLUMN msg_date INTEGER",
        ),
    ] {
        if !columns.iter().any(|c| c == name) {
            db.batch(sql)?;
        }
    }
    db.batch(
        "CREATE INDEX IF NOT EXISTS journal_by_date ON journal (msg_date) WHERE msg_date IS NOT NULL;",
    )
}

/// When a day last got raw objects and when it was last compacted (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayState {
    /// Last time raw objects of the day were stored.
    pub touched_at: Option<i64>,
    /// Start of the listing of the last successful compaction.
    pub compacted_at: Option<i64>,
}

impl DayState {
    /// Whether the day got raw objects since (or while) it was last compacted.
    pub fn is_stale(&self) -> bool {
        match (self.touched_at, self.compacted_at) {
            (Some(t), Some(c)) => t >= c,
            _ => false,
        }
    }
}

/// The `YYYY-MM-DD` of a raw object key (`<prefix>/context_date=YYYY-MM-DD/<name>`).
pub fn day_of_key(key: &str) -> Option<&str> {
    let rest = key.split("context_date=").nth(1)?;
    let day = rest.split('/').next()?;
    (day.len() == 10).then_some(day)
}

impl Store {
    /// Records that raw objects with these keys were stored now.
    pub fn days_touched(&mut self, keys: &[String], now_millis: i64) -> Result<(), StoreError> {
        let mut days: Vec<&str> = keys.iter().filter_map(|k| day_of_key(k)).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            self.db
                .exec(
                    "INSERT INTO archive_days (day, touched_at) VALUES ($1, $2)
                     ON CONFLICT (day) DO UPDATE SET touched_at = CASE
                         WHEN COALESCE(archive_days.touched_at, 0) > excluded.touched_at
                         THEN archive_days.touched_at ELSE excluded.touched_at END",
                    vals![day, now_millis],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Records a successful compaction whose listing started at `started_millis`.
    pub fn day_compacted(&mut self, day: &str, started_millis: i64) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO archive_days (day, compacted_at) VALUES ($1, $2)
                 ON CONFLICT (day) DO UPDATE SET compacted_at = excluded.compacted_at",
                vals![day, started_millis],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// What is known of a day.
    pub fn day_state(&self, day: &str) -> Result<DayState, StoreError> {
        self.db
            .first(
                "SELECT touched_at, compacted_at FROM archive_days WHERE day = $1",
                vals![day],
            )
            .and_then(|r| {
                r.map_or(Ok(DayState::default()), |r| {
                    Ok(DayState {
                        touched_at: r.opt_i64(0)?,
                        compacted_at: r.opt_i64(1)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Days that got raw objects after their last compaction, or were never compacted (an
    /// import of old history, a delivery after a long outage), oldest first.
    pub fn stale_days(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT day FROM archive_days WHERE touched_at IS NOT NULL
                 AND (compacted_at IS NULL OR touched_at >= compacted_at) ORDER BY day",
                &[],
            )
            .and_then(|r| rows(r, |r| r.text(0)))
            .map_err(|e| self.err(e))
    }

    /// Whether anything for a day is still on its way to the raw bucket: an unfinished journaled
    /// update of one of `chats` whose message is dated in `[start, end)` (Unix seconds), or a
    /// pending archive outbox item under `day_prefix`.
    pub fn day_pending(
        &self,
        outbox: &str,
        day_prefix: &str,
        start: i64,
        end: i64,
        chats: &[i64],
    ) -> Result<bool, StoreError> {
        let dated = self
            .db
            .query(
                "SELECT chat_id FROM journal WHERE msg_date >= $1 AND msg_date < $2",
                vals![start, end],
            )
            .and_then(|r| rows(r, |r| r.opt_i64(0)))
            .map_err(|e| self.err(e))?;
        if dated.iter().any(|c| c.is_some_and(|c| chats.contains(&c))) {
            return Ok(true);
        }
        let upper = format!("{day_prefix}\u{10FFFF}");
        let sql = match self.db.engine() {
            Engine::Sqlite => {
                "SELECT 1 FROM outbox INDEXED BY outbox_pending_keys WHERE kind = $1 AND key >= $2
                 AND key < $3 AND delivered_at IS NULL AND dead_reason IS NULL LIMIT 1"
            }
            Engine::Postgres => {
                "SELECT 1 FROM outbox WHERE kind = $1 AND key >= $2
                 AND key < $3 AND delivered_at IS NULL AND dead_reason IS NULL LIMIT 1"
            }
        };
        self.db
            .exists(sql, vals![outbox, day_prefix, upper])
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;
    use super::*;

    #[test]
    fn a_day_touched_after_its_compaction_is_stale() {
        let (mut s, _d) = store();
        let key = |day: &str| format!("telegram/context_date={day}/x_000000000001.json");
        s.days_touched(&[key("2026-11-20"), key("2026-11-21")], 100)
            .unwrap();
        assert_eq!(
            s.stale_days().unwrap(),
            ["2026-11-20", "2026-11-21"],
            "never compacted: due, however old"
        );
        s.day_compacted("2026-11-20", 150).unwrap();
        s.day_compacted("2026-11-21", 90).unwrap();
        assert_eq!(s.stale_days().unwrap(), ["2026-11-21"]);
        s.days_touched(&[key("2026-11-20")], 200).unwrap();
        assert_eq!(s.stale_days().unwrap(), ["2026-11-20", "2026-11-21"]);
        assert!(s.day_state("2026-11-20").unwrap().is_stale());
        s.day_compacted("2026-11-20", 201).unwrap();
        assert!(!s.day_state("2026-11-20").unwrap().is_stale());
        assert_eq!(s.day_state("2026-01-01").unwrap(), DayState::default());
        assert_eq!(
            day_of_key("telegram/context_date=2026-11-21/a.json"),
            Some("2026-11-21")
        );
        assert_eq!(day_of_key("nothing"), None);
    }

    #[test]
    fn journaled_updates_and_outbox_items_keep_a_day_pending() {
        let (mut s, _d) = store();
        let day = "telegram/context_date=2026-11-21/";
        assert!(!s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap());
        s.journal_dated(&[(1, "{}", Some(-7), Some(1500))]).unwrap();
        assert!(
            !s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap(),
            "another chat"
        );
        s.journal_dated(&[(2, "{}", Some(-5), Some(2500))]).unwrap();
        assert!(
            !s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap(),
            "another day"
        );
        s.journal_dated(&[(3, "{}", Some(-5), Some(1999))]).unwrap();
        assert!(s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap());
        s.finish(&[3]).unwrap();
        assert!(!s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap());
        s.outbox_put("archive", &format!("{day}x.json"), "{}")
            .unwrap();
        s.outbox_put("archive", "telegram/context_date=2026-11-22/y.json", "{}")
            .unwrap();
        assert!(s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap());
        let id = s.outbox_pending("archive", 10).unwrap()[0].id;
        s.outbox_delivered(&[id], false).unwrap();
        assert!(!s.day_pending("archive", day, 1000, 2000, &[-5]).unwrap());
    }
}

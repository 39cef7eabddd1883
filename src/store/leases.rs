//! Leases: a duty only one process may do at a time (polling Telegram), held by one replica
//! until it expires, and the poller's offset, kept beside it so the next holder resumes there.
//!
//! A lease has a fencing token that grows with every new holder (and with every new term of
//! the same holder after its lease ran out). Times come from the database's own clock, so
//! replicas on machines with skewed clocks still agree on who holds what.

use super::db::{vals, Engine, Sql};
use super::{Store, StoreError};

/// The tables of this module (both engines).
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS poller_state (
        name TEXT PRIMARY KEY,
        next_offset BIGINT NOT NULL);";

/// The request rates shared by every process on the store: the next free turn of each.
pub(super) const RATE_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS rate_turns (
        name TEXT PRIMARY KEY,
        next_at BIGINT NOT NULL);";

/// The database's clock in Unix milliseconds, as SQL.
pub(super) fn now_ms(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        Engine::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// The larger of two values, as SQL.
fn greatest(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "MAX",
        Engine::Postgres => "GREATEST",
    }
}

/// A lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its fencing token.
    pub token: i64,
    /// Milliseconds until it expires (negative: expired).
    pub remaining_ms: i64,
}

impl Store {
    /// Takes the lease `name` for `holder` for `ttl_ms`, or renews it when `holder` holds it:
    /// answers its fencing token, or `None` while another holder's lease runs. A renewal keeps
    /// the token; taking it anew (after it expired, whoever held it) gives the next token.
    pub fn lease_take(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms(self.db.engine());
        let sql = format!(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, {now} + $3)
             ON CONFLICT (name) DO UPDATE SET
                 token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at >= {now}
                              THEN leases.token ELSE leases.token + 1 END,
                 holder = excluded.holder,
                 expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < {now}
             RETURNING token"
        );
        self.db
            .first(&sql, vals![name, holder, ttl_ms])
            .and_then(|r| r.map(|r| r.i64(0)).transpose())
            .map_err(|e| self.err(e))
    }

    /// Ends `holder`'s lease at once (a clean stop), so another replica takes over without
    /// waiting for it to expire.
    pub fn lease_release(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.db
            .exec(
                "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2",
                vals![name, holder],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The lease `name`, if anyone ever held it.
    pub fn lease(&self, name: &str) -> Result<Option<LeaseState>, StoreError> {
        let sql = format!(
            "SELECT holder, token, expires_at - {} FROM leases WHERE name = $1",
            now_ms(self.db.engine())
        );
        self.db
            .first(&sql, vals![name])
            .and_then(|r| {
                r.map(|r| {
                    Ok(LeaseState {
                        holder: r.text(0)?,
                        token: r.i64(1)?,
                        remaining_ms: r.i64(2)?,
                    })
                })
                .transpose()
            })
            .map_err(|e| self.err(e))
    }

    /// Takes the next turn of the request rate `name`, one turn every `interval_ms` counted
    /// over every process on this store (replicas share an API's per-account limit this way):
    /// answers the milliseconds until the turn (0: now).
    pub fn rate_turn(&mut self, name: &str, interval_ms: i64) -> Result<i64, StoreError> {
        let engine = self.db.engine();
        let now = now_ms(engine);
        let later = greatest(engine);
        let sql = format!(
            "INSERT INTO rate_turns (name, next_at) VALUES ($1, {now} + $2)
             ON CONFLICT (name) DO UPDATE SET next_at = {later}(rate_turns.next_at, {now}) + $2
             RETURNING next_at - $2 - {now}"
        );
        self.db
            .first(&sql, vals![name, interval_ms])
            .and_then(|r| r.map(|r| r.i64(0)).transpose())
            .map(|wait| wait.unwrap_or(0).max(0))
            .map_err(|e| self.err(e))
    }

    /// Gives no turn of the rate `name` for `ms` from now, to anyone (the API asked for a
    /// pause).
    pub fn rate_hold(&mut self, name: &str, ms: i64) -> Result<(), StoreError> {
        let engine = self.db.engine();
        let sql = format!(
            "INSERT INTO rate_turns (name, next_at) VALUES ($1, {} + $2)
             ON CONFLICT (name) DO UPDATE SET next_at = {}(rate_turns.next_at, excluded.next_at)",
            now_ms(engine),
            greatest(engine)
        );
        self.db
            .exec(&sql, vals![name, ms])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The offset saved by the poller `name`, if any.
    pub fn poller_offset(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.db
            .first(
                "SELECT next_offset FROM poller_state WHERE name = $1",
                vals![name],
            )
            .and_then(|r| r.map(|r| r.i64(0)).transpose())
            .map_err(|e| self.err(e))
    }

    /// Saves the poller's offset, only while `holder` holds the lease `name` with `token`
    /// (fencing: a replica that lost the lease cannot move the offset). Answers whether it
    /// was saved.
    pub fn set_poller_offset(
        &mut self,
        name: &str,
        offset: i64,
        (holder, token): (&str, i64),
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO poller_state (name, next_offset)
             SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM leases WHERE name = $1 AND holder = $3
                 AND token = $4 AND expires_at >= {})
             ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset",
            now_ms(self.db.engine())
        );
        self.db
            .exec(&sql, vals![name, offset, holder, token])
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;

    #[test]
    fn one_holder_at_a_time_with_a_growing_token() {
        let (mut s, _d) = store();
        assert_eq!(s.lease("poller").unwrap(), None);
        assert_eq!(s.lease_take("poller", "a", 60_000).unwrap(), Some(1));
        assert_eq!(
            s.lease_take("poller", "b", 60_000).unwrap(),
            None,
            "a holds it"
        );
        assert_eq!(
            s.lease_take("poller", "a", 60_000).unwrap(),
            Some(1),
            "renewed"
        );
        let held = s.lease("poller").unwrap().unwrap();
        assert_eq!((held.holder.as_str(), held.token), ("a", 1));
        assert!(held.remaining_ms > 50_000, "{held:?}");
        assert!(s.set_poller_offset("poller", 100, ("a", 1)).unwrap());
        assert!(
            !s.set_poller_offset("poller", 200, ("b", 1)).unwrap(),
            "b holds nothing"
        );
        assert_eq!(s.poller_offset("poller").unwrap(), Some(100));

        // A clean stop hands it over at once; the new holder gets the next token and the
        // old one can no longer move the offset.
        s.lease_release("poller", "a").unwrap();
        assert_eq!(s.lease_take("poller", "b", 60_000).unwrap(), Some(2));
        assert!(!s.set_poller_offset("poller", 300, ("a", 1)).unwrap());
        assert!(s.set_poller_offset("poller", 300, ("b", 2)).unwrap());
        assert_eq!(s.poller_offset("poller").unwrap(), Some(300));

        // An expired lease is free to take, even for its old holder, with a new token.
        assert_eq!(s.lease_take("poller", "b", -1).unwrap(), Some(2));
        assert!(s.lease("poller").unwrap().unwrap().remaining_ms < 0);
        assert!(
            !s.set_poller_offset("poller", 400, ("b", 2)).unwrap(),
            "expired"
        );
        assert_eq!(s.lease_take("poller", "a", 60_000).unwrap(), Some(3));
        assert_eq!(
            s.lease_take("other", "b", 60_000).unwrap(),
            Some(1),
            "per name"
        );
    }

    #[test]
    fn a_shared_rate_gives_each_turn_once_spaced_by_its_interval() {
        let (mut s, _d) = store();
        // Turns taken together queue up one interval apart, whoever takes them.
        let waits: Vec<i64> = (0..4).map(|_| s.rate_turn("api", 1_000).unwrap()).collect();
        assert!(waits[0] <= 50, "{waits:?}");
        for pair in waits.windows(2) {
            let step = pair[1] - pair[0];
            assert!((900..=1_050).contains(&step), "{waits:?}");
        }
        assert!(s.rate_turn("other", 1_000).unwrap() <= 50, "per name");

        // A hold pushes every later turn past it; a shorter hold changes nothing.
        s.rate_hold("held", 30_000).unwrap();
        let wait = s.rate_turn("held", 100).unwrap();
        assert!((29_000..=30_000).contains(&wait), "{wait}");
        s.rate_hold("held", 1_000).unwrap();
        let wait = s.rate_turn("held", 100).unwrap();
        assert!((29_000..=30_100).contains(&wait), "{wait}");

        // A turn long past is not owed: the next one is now.
        s.rate_turn("past", -60_000).unwrap();
        assert!(s.rate_turn("past", 1_000).unwrap() <= 50);
    }
}

//! Renames: the rename a person started and whose new name the bot waits for (it survives a
//! restart), and each rename under way (`moves`): begun before the server-side copy, finished
//! after the old object is deleted. A move is keyed by the event that asked for it, so a
//! replay after a crash between copy and delete finds it and completes it.

use super::db::{vals, Sql};

use super::listing::FileEntry;
use super::saved::{holder_of, lock_name};
use super::{error_for, now_secs, Store, StoreError};

/// The tables of this module.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS pending_renames (
        platform TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        file INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        since INTEGER NOT NULL,
        PRIMARY KEY (platform, user_id));
    CREATE TABLE IF NOT EXISTS moves (
        event TEXT PRIMARY KEY,
        file INTEGER NOT NULL,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        done_at INTEGER);
    CREATE INDEX IF NOT EXISTS moves_under_way ON moves (to_key) WHERE done_at IS NULL;";

/// Finished moves are kept this long (replays of their events come within a day).
const MOVE_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// A rename of one file by the event that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The event.
    pub event: String,
    /// The file's id.
    pub file: i64,
    /// Key before.
    pub from_key: String,
    /// Key after.
    pub to_key: String,
    /// Whether the copy and the deletion are both done.
    pub done: bool,
}

/// What beginning a move found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStart {
    /// A new move, recorded: go on with the copy.
    Begun(Move),
    /// This event began a move before (a replay): complete it.
    Resumed(Move),
    /// Another object holds the new key.
    Taken,
    /// The file is not the person's, or no longer exists.
    NotTheirs,
}

impl Store {
    /// Remembers that a person wants to rename `file`: their next text is its new name.
    pub fn set_pending_rename(
        &mut self,
        platform: &str,
        user: i64,
        file: i64,
        chat: i64,
    ) -> Result<(), StoreError> {
        self.db
            .exec(
                "INSERT INTO pending_renames (platform, user_id, file, chat_id, since)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (platform, user_id) DO UPDATE SET file = excluded.file,
                     chat_id = excluded.chat_id, since = excluded.since",
                vals![platform, user, file, chat, now_secs()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The file whose new name the bot waits for from this person, if any (a rename whose
    /// file is gone is dropped).
    pub fn pending_rename(
        &mut self,
        platform: &str,
        user: i64,
    ) -> Result<Option<FileEntry>, StoreError> {
        let file: Option<i64> = self
            .db
            .first(
                "SELECT file FROM pending_renames WHERE platform = $1 AND user_id = $2",
                vals![platform, user],
            )
            .and_then(|r| r.map(|r| r.i64(0)).transpose())
            .map_err(|e| self.err(e))?;
        let Some(file) = file else {
            return Ok(None);
        };
        let entry = self.file_by_id(file)?;
        if entry.is_none() {
            self.clear_pending_rename(platform, user)?;
        }
        Ok(entry)
    }

    /// Ends a person's pending rename; whether there was one.
    pub fn clear_pending_rename(&mut self, platform: &str, user: i64) -> Result<bool, StoreError> {
        self.db
            .exec(
                "DELETE FROM pending_renames WHERE platform = $1 AND user_id = $2",
                vals![platform, user],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The move an event began, if any.
    pub fn move_of(&self, event: &str) -> Result<Option<Move>, StoreError> {
        self.db
            .first(
                "SELECT event, file, from_key, to_key, done_at FROM moves WHERE event = $1",
                vals![event],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(Move {
                        event: r.text(0)?,
                        file: r.i64(1)?,
                        from_key: r.text(2)?,
                        to_key: r.text(3)?,
                        done: r.opt_i64(4)?.is_some(),
                    })
                })
                .transpose()
            })
            .map_err(|e| self.err(e))
    }

    /// Begins moving `file` (the person's) to `to_key`, which nothing may hold.
    pub fn begin_move(
        &mut self,
        event: &str,
        owner: (&str, i64),
        file: i64,
        to_key: &str,
    ) -> Result<MoveStart, StoreError> {
        if let Some(m) = self.move_of(event)? {
            return Ok(MoveStart::Resumed(m));
        }
        let entry = self.file_by_id(file)?;
        let Some(entry) = entry.filter(|f| f.platform == owner.0 && f.user_id == owner.1) else {
            return Ok(MoveStart::NotTheirs);
        };
        // The check and the reservation of the new name are one step (see `lock_name`).
        let begun = self
            .db
            .transaction(|db| {
                lock_name(db, to_key)?;
                if holder_of(db, to_key)?.is_some() {
                    return Ok(false);
                }
                fail::fail_point!("store.name_checked");
                db.exec(
                    "INSERT INTO moves (event, file, from_key, to_key, started_at) VALUES ($1, $2, $3, $4, $5)",
                    vals![event, file, &entry.key, to_key, now_secs()],
                )?;
                Ok(true)
            })
            .map_err(|e| self.err(e))?;
        if !begun {
            return Ok(MoveStart::Taken);
        }
        Ok(MoveStart::Begun(Move {
            event: event.to_string(),
            file,
            from_key: entry.key,
            to_key: to_key.to_string(),
            done: false,
        }))
    }

    /// Completes a move whose object is under its new key and gone from the old one: the file
    /// takes the new key and its owner's pending rename ends.
    pub fn finish_move(&mut self, event: &str) -> Result<(), StoreError> {
        let now = now_secs();
        let err = error_for(&self.path);
        self.db
            .transaction(|db| {
                db.exec(
                    "UPDATE files SET key = (SELECT to_key FROM moves WHERE event = $1)
                     WHERE id = (SELECT file FROM moves WHERE event = $1 AND done_at IS NULL)",
                    vals![event],
                )?;
                db.exec(
                    "DELETE FROM pending_renames WHERE file = (SELECT file FROM moves WHERE event = $1)",
                    vals![event],
                )?;
                db.exec(
                    "UPDATE moves SET done_at = $2 WHERE event = $1 AND done_at IS NULL",
                    vals![event, now],
                )?;
                db.exec(
                    "DELETE FROM moves WHERE done_at < $1",
                    vals![now - MOVE_RETENTION_SECS],
                )?;
                Ok(())
            })
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store as store;
    use super::super::SavedFile;
    use super::*;

    fn save(s: &mut Store, key: &str, user: i64) -> i64 {
        s.record_saved_file(&SavedFile {
            key: key.into(),
            platform: "telegram".into(),
            user_id: user,
            chat_id: user,
            bytes: 10,
            sha256: "00".repeat(32),
            file_id: "F".into(),
            file_unique_id: None,
        })
        .unwrap();
        s.latest_file("telegram", user).unwrap().unwrap().id
    }

    #[test]
    fn a_pending_rename_survives_a_reopen_and_ends_with_the_move() {
        let (mut s, dir) = store();
        let id = save(&mut s, "a.pdf", 1);
        s.set_pending_rename("telegram", 1, id, 1).unwrap();
        drop(s);
        let mut s = dir.open();
        assert_eq!(s.pending_rename("telegram", 1).unwrap().unwrap().id, id);
        assert_eq!(s.pending_rename("telegram", 2).unwrap(), None);
        let begun = s.begin_move("t:5", ("telegram", 1), id, "b.pdf").unwrap();
        assert!(matches!(begun, MoveStart::Begun(ref m) if m.from_key == "a.pdf"));
        // While the move is under way, the new key is held.
        assert!(s.key_is_taken("b.pdf").unwrap());
        let again = s.begin_move("t:5", ("telegram", 1), id, "b.pdf").unwrap();
        assert!(matches!(again, MoveStart::Resumed(ref m) if !m.done));
        s.finish_move("t:5").unwrap();
        assert_eq!(s.file_by_id(id).unwrap().unwrap().key, "b.pdf");
        assert_eq!(s.pending_rename("telegram", 1).unwrap(), None);
        assert!(s.move_of("t:5").unwrap().unwrap().done);
        assert!(!s.key_is_taken("a.pdf").unwrap());
    }

    #[test]
    fn only_the_owner_moves_and_only_to_a_free_key() {
        let (mut s, _d) = store();
        let mine = save(&mut s, "mine.pdf", 1);
        save(&mut s, "theirs.pdf", 2);
        assert_eq!(
            s.begin_move("t:1", ("telegram", 2), mine, "x.pdf").unwrap(),
            MoveStart::NotTheirs
        );
        assert_eq!(
            s.begin_move("t:2", ("telegram", 1), mine, "theirs.pdf")
                .unwrap(),
            MoveStart::Taken
        );
        assert_eq!(
            s.begin_move("t:3", ("vk", 1), mine, "x.pdf").unwrap(),
            MoveStart::NotTheirs,
            "the same number on another platform is another person"
        );
    }
}

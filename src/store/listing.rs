//! The saved files as `/files` lists them: by id, an owner's latest, pages newest first; and
//! forgetting one whose object is gone.

use super::db::{vals, DbError, Row, Sql, Val};
use super::{rows, Store, StoreError};

/// One saved file, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Row id (stable across renames).
    pub id: i64,
    /// Current object key.
    pub key: String,
    /// Owner's platform.
    pub platform: String,
    /// Owner.
    pub user_id: i64,
    /// Size in bytes.
    pub bytes: u64,
    /// Unix time it was saved.
    pub saved_at: i64,
}

const ENTRY_COLUMNS: &str = "id, key, platform, user_id, COALESCE(bytes, 0), COALESCE(saved_at, 0)";

fn entry(r: &Row) -> Result<FileEntry, DbError> {
    Ok(FileEntry {
        id: r.i64(0)?,
        key: r.text(1)?,
        platform: r.text(2)?,
        user_id: r.i64(3)?,
        bytes: r.u64(4)?,
        saved_at: r.i64(5)?,
    })
}

impl Store {
    /// A saved file by its id.
    pub fn file_by_id(&self, id: i64) -> Result<Option<FileEntry>, StoreError> {
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM files WHERE id = $1 AND saved_at IS NOT NULL");
        self.db
            .first(&sql, vals![id])
            .and_then(|r| r.as_ref().map(entry).transpose())
            .map_err(|e| self.err(e))
    }

    /// The owner's most recently saved file.
    pub fn latest_file(&self, platform: &str, user: i64) -> Result<Option<FileEntry>, StoreError> {
        Ok(self.files_page(Some((platform, user)), 0, 1)?.0.pop())
    }

    /// A page of saved files, newest first: the owner's, or everyone's for `None`; with the
    /// number of files in all pages.
    pub fn files_page(
        &self,
        owner: Option<(&str, i64)>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<FileEntry>, u64), StoreError> {
        let (filter, mut params) = match owner {
            Some((p, u)) => (
                "platform = $1 AND user_id = $2 AND",
                vec![Val::from(p), u.into()],
            ),
            None => ("platform != 'bucket' AND", Vec::new()),
        };
        let total = self.count(
            &format!("SELECT COUNT(*) FROM files WHERE {filter} saved_at IS NOT NULL"),
            &params,
        )?;
        let (l, o) = (params.len() + 1, params.len() + 2);
        params.extend([Val::from(limit), Val::from(offset)]);
        let page_sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM files WHERE {filter} saved_at IS NOT NULL
             ORDER BY saved_at DESC, id DESC LIMIT ${l} OFFSET ${o}"
        );
        let page = self
            .db
            .query(&page_sql, &params)
            .and_then(|r| rows(r, entry))
            .map_err(|e| self.err(e))?;
        Ok((page, total))
    }

    /// Forgets a file whose object is no longer in the bucket.
    pub fn forget_file(&mut self, id: i64) -> Result<(), StoreError> {
        self.db
            .exec("DELETE FROM files WHERE id = $1", vals![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a file whose object was not found under its key, unless a rename of it is under
    /// way (its object may be under the new key already, the store not yet told); whether it
    /// was forgotten.
    pub fn forget_missing_file(&mut self, id: i64) -> Result<bool, StoreError> {
        self.db
            .exec(
                "DELETE FROM files WHERE id = $1
                 AND NOT EXISTS (SELECT 1 FROM moves WHERE file = $1 AND done_at IS NULL)",
                vals![id],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }
}

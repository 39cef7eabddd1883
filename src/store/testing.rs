//! Stores for unit tests, on the engine the environment chooses.

use super::db::{Postgres, Sql};
use super::Store;

/// Where a unit test's store lives, to open it again: a temporary directory for SQLite, or a
/// schema of its own on the PostgreSQL server `TG_INGEST_TEST_STORE_URL` names (so the same
/// suite runs on both engines).
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    url: Option<String>,
}

impl TestDb {
    /// Opens the test's store again.
    pub(crate) fn open(&self) -> Store {
        match &self.url {
            Some(url) => Store::connect(url).unwrap(),
            None => Store::open(&self.dir.path().join("state.db")).unwrap(),
        }
    }
}

/// A fresh store for a unit test, on the engine the environment chooses.
pub(crate) fn test_store() -> (Store, TestDb) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("TG_INGEST_TEST_STORE_URL").ok().map(|base| {
        let schema = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = Postgres::connect(&base).unwrap();
        admin.batch(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{schema}")
    });
    let db = TestDb { dir, url };
    (db.open(), db)
}

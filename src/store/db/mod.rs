//! The store's two engines behind one small SQL interface: SQLite (embedded in the data
//! directory, the default) and PostgreSQL (`store.url`, shared by replicas).
//!
//! Statements are written once, with `$1`-style parameters (turned into SQLite's `?1`), in the
//! SQL both engines read: `ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`,
//! `COUNT(*) FILTER (WHERE …)`. Values cross as [`Val`] (integers, reals, text, NULL), whatever
//! the engine's own integer width, so a module reads a row the same way on both.
//!
//! PostgreSQL is reached with `tokio-postgres`. Its connection is driven on a thread of its own
//! (a current-thread tokio runtime); the store, which is synchronous by design, waits for each
//! answer with a plain executor, the way it waits for SQLite's disk I/O.

use std::error::Error as StdError;

mod listen;
mod pg_connect;
mod postgres;
mod sqlite;

pub use self::listen::{listen, Listener};
pub use self::postgres::{PgLimits, Postgres};
pub use self::sqlite::Sqlite;

/// A value going into or coming out of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// Any integer (stored as BIGINT in PostgreSQL).
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
}

macro_rules! int_val {
    ($($t:ty),*) => {$(
        impl From<$t> for Val {
            fn from(v: $t) -> Self {
                Val::Int(v as i64)
            }
        }
    )*};
}
int_val!(i64, i32, u32, u8, usize, u64);

impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::Int(i64::from(v))
    }
}

impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}

impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(v.clone())
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// Parameters of a statement: `vals![a, b]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::db::Val::from($v)),*][..]
    };
}
pub(crate) use vals;

/// A failed statement.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite's error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error (or a lost connection).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A column did not hold what the caller read.
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        /// Column index.
        column: usize,
        /// What was read.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// The data directory could not be made.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message is in the source of a `db error`.
        let detail = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => {
                // With its causes (a TLS handshake names why it failed there).
                let mut detail = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    detail = format!("{detail}: {c}");
                    cause = c.source();
                }
                detail
            }
        };
        DbError::Postgres(detail)
    }
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn at(&self, column: usize) -> &Val {
        self.0.get(column).unwrap_or(&Val::Null)
    }

    fn wrong(&self, column: usize, expected: &'static str) -> DbError {
        DbError::Type {
            column,
            expected,
            found: format!("{:?}", self.at(column)),
        }
    }

    /// An integer column that may be NULL.
    pub fn opt_i64(&self, column: usize) -> Result<Option<i64>, DbError> {
        match self.at(column) {
            Val::Null => Ok(None),
            Val::Int(v) => Ok(Some(*v)),
            _ => Err(self.wrong(column, "an integer")),
        }
    }

    /// An integer column.
    pub fn i64(&self, column: usize) -> Result<i64, DbError> {
        self.opt_i64(column)?
            .ok_or_else(|| self.wrong(column, "an integer"))
    }

    /// A small non-negative integer column (attempts, counts).
    pub fn u32(&self, column: usize) -> Result<u32, DbError> {
        u32::try_from(self.i64(column)?).map_err(|_| self.wrong(column, "a u32"))
    }

    /// A non-negative integer column (a count).
    pub fn u64(&self, column: usize) -> Result<u64, DbError> {
        u64::try_from(self.i64(column)?).map_err(|_| self.wrong(column, "a u64"))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, column: usize) -> Result<Option<String>, DbError> {
        match self.at(column) {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(column, "text")),
        }
    }

    /// A text column.
    pub fn text(&self, column: usize) -> Result<String, DbError> {
        self.opt_text(column)?
            .ok_or_else(|| self.wrong(column, "text"))
    }
}

/// Which engine runs the statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the data directory.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection to either engine.
pub trait Sql {
    /// Runs a statement; answers the rows it changed.
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, DbError>;
    /// Runs a query; answers its rows.
    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError>;
    /// Runs statements separated by `;`, without parameters or results.
    fn batch(&self, sql: &str) -> Result<(), DbError>;
    /// The engine.
    fn engine(&self) -> Engine;

    /// The first row, if any.
    fn first(&self, sql: &str, params: &[Val]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Whether the query answers a row.
    fn exists(&self, sql: &str, params: &[Val]) -> Result<bool, DbError> {
        Ok(!self.query(sql, params)?.is_empty())
    }

    /// Runs `work` in one transaction: committed when it succeeds, rolled back when it fails,
    /// when its commit fails, and when it panics (a guard rolls back as the panic unwinds, so a
    /// contained panic never leaves the connection inside a half-done transaction).
    fn transaction<T>(&self, work: impl FnOnce(&Self) -> Result<T, DbError>) -> Result<T, DbError>
    where
        Self: Sized,
    {
        self.batch(match self.engine() {
            // Take the write lock at once, so two writers never deadlock on an upgrade.
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        })?;
        let mut open = RollbackGuard {
            db: self,
            armed: true,
        };
        let value = work(self)?;
        self.batch("COMMIT")?;
        open.armed = false;
        Ok(value)
    }
}

/// Rolls an open transaction back when dropped armed: on an error return, a failed commit or
/// a panic of the transaction's work.
struct RollbackGuard<'a, S: Sql> {
    db: &'a S,
    armed: bool,
}

impl<S: Sql> Drop for RollbackGuard<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.db.batch("ROLLBACK") {
                log::warn!("store: rolling back a failed transaction: {e}");
            }
        }
    }
}

//! PostgreSQL through tokio-postgres: values converted, each call bounded by a deadline, a
//! lost connection opened again by the next statement.

use std::collections::HashMap;
use std::error::Error as StdError;

use super::pg_connect::connect_live;
use super::{DbError, Engine, Row, Sql, Val};

impl tokio_postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn StdError + Sync + Send>> {
        use tokio_postgres::types::{IsNull, Type};
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Val::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be sent as {ty}").into()),
            },
            Val::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A live PostgreSQL connection.
pub(super) struct Live {
    pub(super) client: std::sync::Arc<tokio_postgres::Client>,
    /// The runtime of the thread driving the connection: every call runs there, under a
    /// deadline, so a connection that stops answering never blocks the store.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) statements: HashMap<String, tokio_postgres::Statement>,
    /// The thread driving the connection; it ends when the client is dropped (the connection
    /// closes), so it is never joined.
    pub(super) _driver: std::thread::JoinHandle<()>,
}

/// How calls to PostgreSQL are bounded, so a connection that silently stops answering (a NAT
/// or firewall dropping it without a reset) is noticed and replaced, never waited on forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgLimits {
    /// The server's `statement_timeout`; the client gives each call this plus a margin, after
    /// which the connection is dropped and opened again.
    pub statement_timeout: std::time::Duration,
    /// TCP keepalive: idle time before the first probe; probes follow at a third of it, and
    /// three unanswered ones end the connection.
    pub keepalive_idle: std::time::Duration,
    /// How long sent data may stay unacknowledged before the kernel ends the connection
    /// (`TCP_USER_TIMEOUT`).
    pub tcp_user_timeout: std::time::Duration,
}

impl Default for PgLimits {
    fn default() -> Self {
        Self {
            statement_timeout: std::time::Duration::from_secs(15),
            keepalive_idle: std::time::Duration::from_secs(10),
            tcp_user_timeout: std::time::Duration::from_secs(20),
        }
    }
}

impl PgLimits {
    /// The bounds the store settings ask for.
    pub fn from_settings(store: &crate::config::StoreSettings) -> Self {
        Self {
            statement_timeout: std::time::Duration::from_secs(store.statement_timeout_secs),
            keepalive_idle: std::time::Duration::from_secs(store.tcp_keepalive_secs),
            tcp_user_timeout: std::time::Duration::from_secs(store.tcp_user_timeout_secs),
        }
    }

    /// The client's deadline of one call: the server's timeout, and a margin for the answer.
    pub fn call_deadline(&self) -> std::time::Duration {
        self.statement_timeout + std::time::Duration::from_secs(5)
    }
}

/// PostgreSQL through tokio-postgres. A connection that was lost (the server restarted, the
/// network broke) is opened again by the next statement; the statement that found it lost
/// fails, and its caller's retry goes through the new connection. Every call has a deadline
/// ([`PgLimits`]): a call past it fails, and its connection is dropped and never used again.
pub struct Postgres {
    url: String,
    limits: PgLimits,
    live: std::cell::RefCell<Option<Live>>,
    in_transaction: std::cell::Cell<bool>,
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/db`), driving the connection on a
    /// thread of its own.
    pub fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, PgLimits::default())
    }

    /// As [`Postgres::connect`], with the given bounds on every call.
    pub fn connect_with(url: &str, limits: PgLimits) -> Result<Self, DbError> {
        let live = connect_live(url, &limits)?;
        Ok(Self {
            url: url.to_string(),
            limits,
            live: std::cell::RefCell::new(Some(live)),
            in_transaction: std::cell::Cell::new(false),
        })
    }

    /// Whether the connection is gone (the server restarted, the network broke) and not yet
    /// opened again.
    pub fn is_closed(&self) -> bool {
        self.live
            .borrow()
            .as_ref()
            .is_none_or(|l| l.client.is_closed())
    }

    /// The live connection, opened again first when it was lost, unless a transaction was
    /// under way on the lost one: the server rolled it back, and its remaining statements
    /// must fail rather than run outside it.
    fn live(&self) -> Result<std::cell::RefMut<'_, Live>, DbError> {
        let mut live = self.live.borrow_mut();
        if live.as_ref().is_none_or(|l| l.client.is_closed()) {
            *live = None;
            if self.in_transaction.get() {
                return Err(DbError::Postgres(
                    "the connection was lost during a transaction, which was rolled back".into(),
                ));
            }
            *live = Some(connect_live(&self.url, &self.limits)?);
            log::info!("PostgreSQL: connected again");
        }
        std::cell::RefMut::filter_map(live, Option::as_mut)
            .map_err(|_| DbError::Postgres("no connection".into()))
    }

    /// Runs `call` on the connection's own runtime and waits for its answer at most the call
    /// deadline. Past it, the connection is dropped (its transaction, if any, is over) and the
    /// call fails; the next statement opens a new connection.
    fn bounded<T, F>(&self, runtime: &tokio::runtime::Handle, call: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let deadline = self.limits.call_deadline();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(tokio::time::timeout(deadline, call).await);
        });
        // A little longer than the task's own deadline: the task answers first while its
        // runtime runs; only a runtime that is gone leaves it to this wait.
        match rx.recv_timeout(deadline + std::time::Duration::from_secs(1)) {
            Ok(Ok(answer)) => answer.map_err(DbError::from),
            Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                *self.live.borrow_mut() = None;
                log::warn!(
                    "PostgreSQL: no answer within {} s; the connection is dropped",
                    deadline.as_secs()
                );
                Err(DbError::Postgres(format!(
                    "no answer within {} s: the connection is dropped and opened again",
                    deadline.as_secs()
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                *self.live.borrow_mut() = None;
                Err(DbError::Postgres("the connection was lost".into()))
            }
        }
    }

    /// Runs `f` on a live connection with `sql` prepared, each under the call deadline.
    fn with<T, F, Fut>(&self, sql: &str, params: &[Val], f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(
            std::sync::Arc<tokio_postgres::Client>,
            tokio_postgres::Statement,
            Vec<Val>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let (client, cached, runtime) = {
            let l = self.live()?;
            (
                l.client.clone(),
                l.statements.get(sql).cloned(),
                l.runtime.clone(),
            )
        };
        let stmt = match cached {
            Some(stmt) => stmt,
            None => {
                let (c, text) = (client.clone(), sql.to_string());
                let stmt = self.bounded(&runtime, async move { c.prepare(&text).await })?;
                if let Some(l) = self.live.borrow_mut().as_mut() {
                    l.statements.insert(sql.to_string(), stmt.clone());
                }
                stmt
            }
        };
        self.bounded(&runtime, f(client, stmt, params.to_vec()))
    }
}

fn params_of(params: &[Val]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

fn pg_value(row: &tokio_postgres::Row, i: usize) -> Result<Val, DbError> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_();
    let value = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Val::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Val::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Val::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Val::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Val::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Val::Real(v.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            row.try_get::<_, Option<String>>(i)?.map(Val::Text)
        }
        _ => {
            return Err(DbError::Type {
                column: i,
                expected: "an integer, real or text column",
                found: ty.to_string(),
            })
        }
    };
    Ok(value.unwrap_or(Val::Null))
}

impl Sql for Postgres {
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        self.with(sql, params, |client, stmt, params| async move {
            client.execute(&stmt, &params_of(&params)).await
        })
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let rows = self.with(sql, params, |client, stmt, params| async move {
            client.query(&stmt, &params_of(&params)).await
        })?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| pg_value(row, i))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        let ends = matches!(sql, "COMMIT" | "ROLLBACK");
        if sql == "ROLLBACK" && self.is_closed() {
            // The server rolled the transaction back when the connection went.
            self.in_transaction.set(false);
            return Ok(());
        }
        let done = self
            .live()
            .map(|l| (l.client.clone(), l.runtime.clone()))
            .and_then(|(client, runtime)| {
                let sql = sql.to_string();
                self.bounded(&runtime, async move { client.batch_execute(&sql).await })
            });
        if sql == "BEGIN" && done.is_ok() {
            self.in_transaction.set(true);
        } else if ends {
            self.in_transaction.set(false);
        }
        done
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }
}

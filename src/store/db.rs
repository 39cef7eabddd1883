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

use std::collections::HashMap;
use std::error::Error as StdError;

use rusqlite::types::{ToSqlOutput, ValueRef};

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

/// `$1` → `?1`: SQLite numbers its parameters with `?`.
fn sqlite_params(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('$') {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out.into()
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(v) => ValueRef::Integer(*v),
            Val::Real(v) => ValueRef::Real(*v),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// SQLite through rusqlite.
pub struct Sqlite(pub rusqlite::Connection);

impl Sql for Sqlite {
    fn exec(&self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_params(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_params(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(v) => Val::Int(v),
                    ValueRef::Real(v) => Val::Real(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Val::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
}

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
struct Live {
    client: std::sync::Arc<tokio_postgres::Client>,
    /// The runtime of the thread driving the connection: every call runs there, under a
    /// deadline, so a connection that stops answering never blocks the store.
    runtime: tokio::runtime::Handle,
    statements: HashMap<String, tokio_postgres::Statement>,
    /// The thread driving the connection; it ends when the client is dropped (the connection
    /// closes), so it is never joined.
    _driver: std::thread::JoinHandle<()>,
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

/// How to reach the server: the URL for the driver, and with `sslmode=require` (or `verify-ca`,
/// `verify-full`) the TLS set-up that verifies the server's certificate.
struct Target {
    url: String,
    tls: Option<rustls::ClientConfig>,
}

/// Reads the TLS parameters of a store URL, as libpq names them: `sslmode` (`disable`,
/// `allow`, `prefer`: no TLS; `require`, `verify-ca`, `verify-full`: TLS, and the server's
/// certificate and name are always verified) and `sslrootcert` (a PEM file of the certificates
/// to trust instead of the public roots). Errors never quote the URL (it may hold a password).
fn target(url: &str) -> Result<Target, DbError> {
    let bad = |why: String| DbError::Postgres(format!("store.url: {why}"));
    if !url.contains("sslmode=") && !url.contains("sslrootcert=") {
        return Ok(Target {
            url: url.to_string(),
            tls: None,
        });
    }
    let mut parsed =
        url::Url::parse(url).map_err(|e| bad(format!("not a postgres:// URL ({e})")))?;
    let (mut mode, mut root, mut rest) = (None, None, Vec::new());
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root = Some(value.into_owned()),
            _ => rest.push((key.into_owned(), value.into_owned())),
        }
    }
    let (driver_mode, tls) = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") if root.is_none() => {
            (mode.as_deref().map(|m| if m == "allow" { "prefer" } else { m }), false)
        }
        None | Some("require" | "verify-ca" | "verify-full") => (Some("require"), true),
        Some(other) => {
            return Err(bad(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full{}",
                if root.is_some() { " (sslrootcert needs require or verify-*)" } else { "" }
            )))
        }
    };
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (key, value) in &rest {
            query.append_pair(key, value);
        }
        if let Some(mode) = driver_mode {
            query.append_pair("sslmode", mode);
        }
    }
    let tls = if tls {
        Some(tls_config(root.as_deref()).map_err(bad)?)
    } else {
        None
    };
    Ok(Target {
        url: parsed.to_string(),
        tls,
    })
}

/// Verifies the server against the certificates in `root` (PEM), else the public roots.
fn tls_config(root: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in it"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The driver's settings: the URL's, with the statement timeout, TCP keepalives and
/// `TCP_USER_TIMEOUT` of `limits`.
fn config(url: &str, limits: &PgLimits) -> Result<tokio_postgres::Config, DbError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DbError::Postgres(format!("store.url: {e}")))?;
    // A session whose client went silent inside a transaction ends after the same time, so
    // its locks never hold the other replicas up for long.
    let statement_ms = limits.statement_timeout.as_millis();
    let ours = format!(
        "-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={statement_ms}"
    );
    let options = match config.get_options() {
        Some(own) if !own.is_empty() => format!("{own} {ours}"),
        _ => ours,
    };
    config
        .options(options)
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(limits.keepalive_idle)
        .keepalives_interval((limits.keepalive_idle / 3).max(std::time::Duration::from_secs(1)))
        .keepalives_retries(3)
        .tcp_user_timeout(limits.tcp_user_timeout);
    Ok(config)
}

/// The answer of a connection attempt: the client and the runtime driving it.
type Connected = Result<(tokio_postgres::Client, tokio::runtime::Handle), DbError>;

/// Connects through `tls`, hands the client over `tx`, then drives the connection until it ends.
async fn drive<T>(config: tokio_postgres::Config, tls: T, tx: std::sync::mpsc::Sender<Connected>)
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls));
    match connecting.await {
        Ok(Ok((client, connection))) => {
            let _ = tx.send(Ok((client, tokio::runtime::Handle::current())));
            if let Err(e) = connection.await {
                log::warn!("PostgreSQL connection ended: {e}");
            }
        }
        Ok(Err(e)) => {
            let _ = tx.send(Err(DbError::from(e)));
        }
        Err(_) => {
            let _ = tx.send(Err(DbError::Postgres(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))));
        }
    }
}

fn connect_live(url: &str, limits: &PgLimits) -> Result<Live, DbError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = target(url)?;
    let config = config(&target.url, limits)?;
    let driver = std::thread::Builder::new()
        .name("tg-ingest-postgres".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(DbError::Io(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                match target.tls {
                    Some(tls) => {
                        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                        drive(config, tls, tx).await
                    }
                    None => drive(config, tokio_postgres::NoTls, tx).await,
                }
            });
        })?;
    let (client, runtime) = rx
        .recv()
        .map_err(|_| DbError::Postgres("the connection thread ended".into()))??;
    Ok(Live {
        client: std::sync::Arc::new(client),
        runtime,
        statements: HashMap::new(),
        _driver: driver,
    })
}

/// How long opening a connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Listens for notifications on a channel of a PostgreSQL server, on a thread of its own;
/// stops when dropped.
pub struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Calls `notified` for each notification on `channel` of the server at `url`, and once each
/// time listening starts (notifications sent while the connection was down are lost, so the
/// caller looks for itself). A connection that ends is opened again, after 1 s and up to
/// 30 s while it keeps failing; its TCP keepalives are those of `limits`.
pub fn listen(
    url: &str,
    limits: PgLimits,
    channel: &'static str,
    notified: impl Fn() + Send + 'static,
) -> Result<Listener, DbError> {
    let target = target(url)?;
    let config = config(&target.url, &limits)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tg-ingest-listen".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("PostgreSQL notifications: no runtime ({e})");
                    return;
                }
            };
            runtime.block_on(async move {
                let work = async {
                    let mut pause = std::time::Duration::from_secs(1);
                    loop {
                        let ended = match &target.tls {
                            Some(tls) => {
                                let tls =
                                    tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone());
                                listen_once(&config, tls, channel, &notified).await
                            }
                            None => {
                                listen_once(&config, tokio_postgres::NoTls, channel, &notified)
                                    .await
                            }
                        };
                        match ended {
                            Ok(true) => pause = std::time::Duration::from_secs(1),
                            Ok(false) => {}
                            Err(e) => log::warn!(
                                "PostgreSQL notifications: {e}; listening again in {} s",
                                pause.as_secs()
                            ),
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(30));
                    }
                };
                tokio::select! {
                    () = work => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(Listener { stop: Some(stop) })
}

/// One connection listening on `channel` until it ends; answers whether listening started.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    notified: &impl Fn(),
) -> Result<bool, DbError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    use futures_util::StreamExt;
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| {
            DbError::Postgres(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })??;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {channel}");
    let start = client.batch_execute(&sql);
    tokio::pin!(start);
    let mut listening = false;
    loop {
        tokio::select! {
            started = &mut start, if !listening => {
                started?;
                listening = true;
                notified();
            }
            message = messages.next() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => notified(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(listening),
            },
        }
    }
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

//! `[store]`: the durable store (SQLite in `data_dir`, or PostgreSQL shared by replicas); and
//! its checks.

use serde::Deserialize;

use super::{invalid, S3Settings, Secret, SettingsError};

/// The durable store's engine.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    /// Empty: SQLite in `data_dir`; `postgres://…`: a PostgreSQL server. A secret (it may hold a
    /// password): never logged.
    pub url: Secret,
    /// How long a replica's lease on polling lasts without renewal, in seconds.
    pub lease_secs: u64,
    /// This replica's name in leases; empty: `<host>-<pid>-<random>`.
    pub replica_id: String,
    /// PostgreSQL: the server's `statement_timeout`; the client waits this plus 5 s for any
    /// answer, then drops the connection and opens another.
    pub statement_timeout_secs: u64,
    /// PostgreSQL: idle seconds before TCP keepalive probes start.
    pub tcp_keepalive_secs: u64,
    /// PostgreSQL: seconds sent data may stay unacknowledged before the connection is ended.
    pub tcp_user_timeout_secs: u64,
}

impl StoreSettings {
    /// This replica's name: `replica_id`, or one made of the host name, the process id and a
    /// random part (unique across restarts).
    pub fn replica_name(&self) -> String {
        if !self.replica_id.is_empty() {
            return self.replica_id.clone();
        }
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let host = if ok {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            "replica".to_string()
        };
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    }

    /// Whether the store is a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }
}

/// Checks the store section (replicas on PostgreSQL need an S3 server they all reach).
pub(super) fn validate(store: &StoreSettings, s3: &S3Settings) -> Result<(), SettingsError> {
    if !store.is_postgres() {
        return Ok(());
    }
    let url = store.url.expose();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return invalid(
            "store.url",
            "must be empty (SQLite in data_dir) or a postgres:// URL",
        );
    }
    if !(3..=300).contains(&store.lease_secs) {
        return invalid("store.lease_secs", "must be between 3 and 300");
    }
    for (key, value) in [
        ("store.statement_timeout_secs", store.statement_timeout_secs),
        ("store.tcp_keepalive_secs", store.tcp_keepalive_secs),
        ("store.tcp_user_timeout_secs", store.tcp_user_timeout_secs),
    ] {
        if !(1..=600).contains(&value) {
            return invalid(key, "must be between 1 and 600");
        }
    }
    if s3.endpoint.is_empty() {
        return invalid(
            "s3.endpoint",
            "must name an S3 server when store.url is PostgreSQL: the embedded S3 server keeps its files on this machine's disk, which replicas cannot share",
        );
    }
    Ok(())
}

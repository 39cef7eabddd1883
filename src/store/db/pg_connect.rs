//! Opening a PostgreSQL connection: the URL's TLS parameters as libpq reads them, the limits
//! of [`PgLimits`], and the thread that drives the connection.

use std::collections::HashMap;

use super::postgres::{Live, PgLimits};
use super::DbError;

/// How to reach the server: the URL for the driver, and with `sslmode=require` (or `verify-ca`,
/// `verify-full`) the TLS set-up that verifies the server's certificate.
pub(super) struct Target {
    pub(super) url: String,
    pub(super) tls: Option<rustls::ClientConfig>,
}

/// Reads the TLS parameters of a store URL, as libpq names them: `sslmode` (`disable`,
/// `allow`, `prefer`: no TLS; `require`, `verify-ca`, `verify-full`: TLS, and the server's
/// certificate and name are always verified) and `sslrootcert` (a PEM file of the certificates
/// to trust instead of the public roots). Errors never quote the URL (it may hold a password).
pub(super) fn target(url: &str) -> Result<Target, DbError> {
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
pub(super) fn config(url: &str, limits: &PgLimits) -> Result<tokio_postgres::Config, DbError> {
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
pub(super) type Connected = Result<(tokio_postgres::Client, tokio::runtime::Handle), DbError>;

/// Connects through `tls`, hands the client over `tx`, then drives the connection until it ends.
pub(super) async fn drive<T>(
    config: tokio_postgres::Config,
    tls: T,
    tx: std::sync::mpsc::Sender<Connected>,
) where
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

pub(super) fn connect_live(url: &str, limits: &PgLimits) -> Result<Live, DbError> {
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
pub(super) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

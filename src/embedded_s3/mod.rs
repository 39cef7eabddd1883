//! The embedded S3-compatible server (s3s-fs over a local directory), started when no S3
//! endpoint is configured so the service runs with only a bot token. Tests use it too.
//!
//! May import: `util`, `obs`, `config`, `clients`.

pub mod fs;

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::sync::oneshot;

/// A running embedded S3 server; it stops when dropped.
pub struct EmbeddedS3 {
    /// Address it listens on.
    pub addr: SocketAddr,
    /// `http://ip:port`, for S3 clients.
    pub endpoint: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Held while serving: one server per directory (two would clean up, and reuse the names
    /// of, each other's temporary files).
    _lock: std::fs::File,
}

/// The secret of the embedded server that earlier versions shipped as a default: public, so
/// never accepted on an address other machines can reach.
pub const PUBLIC_SECRET: &str = "tg-ingest-local-secret";

/// Where an embedded server's secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `s3.embedded.secret_key`.
    Settings,
    /// The secret file in the data directory (generated on the first start).
    File,
}

/// The embedded server's secret: the configured one, else the one in `file`, generated (32
/// random letters and digits, readable by the owner only) when the file does not exist yet.
/// The secret is registered with the log scrubber.
pub fn resolve_secret(configured: &str, file: &Path) -> std::io::Result<(String, SecretSource)> {
    use rand::distributions::{Alphanumeric, DistString};
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (secret, source) = if !configured.is_empty() {
        (configured.to_string(), SecretSource::Settings)
    } else {
        match std::fs::read_to_string(file) {
            Ok(s) if !s.trim().is_empty() => (s.trim().to_string(), SecretSource::File),
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is empty",
                    file.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let secret = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file)?;
                out.write_all(secret.as_bytes())?;
                out.sync_all()?;
                (secret, SecretSource::File)
            }
            Err(e) => return Err(e),
        }
    };
    crate::obs::logging::redact(&secret);
    Ok((secret, source))
}

/// Refuses to serve on an address other machines can reach with the public secret.
pub fn check_exposure(listen: &str, secret: &str) -> Result<(), EmbeddedS3Error> {
    let loopback = listen
        .parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| listen.starts_with("localhost:"));
    if loopback || (secret != PUBLIC_SECRET && secret.len() >= 16) {
        return Ok(());
    }
    Err(EmbeddedS3Error::Exposed {
        listen: listen.to_string(),
    })
}

/// Why the embedded server could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedS3Error {
    /// The data directory could not be used.
    #[error("embedded S3: cannot use data directory {dir}: {source}")]
    DataDir {
        /// The directory.
        dir: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process serves the same directory.
    #[error("embedded S3: another process serves {dir} (a running tg-ingest?)")]
    Busy {
        /// The directory.
        dir: String,
    },
    /// A reachable address with a weak or public secret.
    #[error("embedded S3: refusing to listen on {listen}, an address other machines can reach, with the public or a short secret; set s3.embedded.secret_key to 16 or more characters, or leave it empty to have one generated")]
    Exposed {
        /// The address from settings.
        listen: String,
    },
    /// The listen address could not be bound.
    #[error("embedded S3: cannot listen on {listen}: {source}")]
    Listen {
        /// The address from settings.
        listen: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl EmbeddedS3 {
    /// Starts a server over `root` on `listen` (e.g. `127.0.0.1:0`) that accepts only requests
    /// signed (SigV4) with the given credentials.
    pub fn start(
        root: &Path,
        listen: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, EmbeddedS3Error> {
        let data_dir_err = |source| EmbeddedS3Error::DataDir {
            dir: root.display().to_string(),
            source,
        };
        std::fs::create_dir_all(root).map_err(data_dir_err)?;
        check_exposure(listen, secret_key)?;
        let lock = lock_dir(root).map_err(|e| match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => EmbeddedS3Error::Busy {
                dir: root.display().to_string(),
            },
            _ => data_dir_err(e),
        })?;
        let fs = crate::embedded_s3::fs::EmbeddedFs::new(root).map_err(data_dir_err)?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key.to_string()));
        let service = builder.build();

        let (listener, addr) = bind(listen)?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-s3".into())
            .spawn(move || serve(listener, service, rx))
            .map_err(|source| EmbeddedS3Error::Listen {
                listen: listen.to_string(),
                source,
            })?;
        Ok(Self {
            addr,
            endpoint: format!("http://{addr}"),
            shutdown: Some(tx),
            thread: Some(thread),
            _lock: lock,
        })
    }
}

/// Binds `listen`, non-blocking, and answers the address it got.
fn bind(listen: &str) -> Result<(std::net::TcpListener, SocketAddr), EmbeddedS3Error> {
    let failed = |source| EmbeddedS3Error::Listen {
        listen: listen.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
}

/// The server's thread: a runtime of its own serving connections until `rx` fires.
fn serve(
    listener: std::net::TcpListener,
    service: s3s::service::S3Service,
    mut rx: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("embedded-s3-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("embedded S3: cannot start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("embedded S3: cannot listen: {e}");
                return;
            }
        };
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        log::warn!("embedded S3: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut rx => break,
            };
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    log::debug!("embedded S3: connection ended with an error: {e}");
                }
            });
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Takes the exclusive lock of the directory `root` (on `<root>.lock`, beside it).
fn lock_dir(root: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.with_extension("lock"))?;
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_generated_once_kept_private_and_settings_win() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3-secret");
        let (first, source) = resolve_secret("", &file).unwrap();
        assert_eq!(source, SecretSource::File);
        assert!(first.len() >= 32 && first.chars().all(|c| c.is_ascii_alphanumeric()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the owner only");
        assert_eq!(
            resolve_secret("", &file).unwrap().0,
            first,
            "kept across starts"
        );
        assert_eq!(
            resolve_secret("configured-secret-1", &file).unwrap(),
            ("configured-secret-1".to_string(), SecretSource::Settings)
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            resolve_secret("", &other.path().join("s3-secret"))
                .unwrap()
                .0,
            first,
            "each installation has its own"
        );
        assert_eq!(
            crate::obs::logging::scrub(&format!("secret={first}")),
            "secret=[redacted]"
        );
    }

    #[test]
    fn a_reachable_address_needs_a_strong_secret() {
        assert!(check_exposure("127.0.0.1:9000", PUBLIC_SECRET).is_ok());
        assert!(check_exposure("[::1]:9000", PUBLIC_SECRET).is_ok());
        assert!(check_exposure("localhost:9000", "short").is_ok());
        for weak in [PUBLIC_SECRET, "short"] {
            assert!(matches!(
                check_exposure("0.0.0.0:9000", weak),
                Err(EmbeddedS3Error::Exposed { .. })
            ));
        }
        assert!(check_exposure("0.0.0.0:9000", "a-generated-32-character-secret!").is_ok());
    }

    #[test]
    fn one_server_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s3");
        let first = EmbeddedS3::start(&root, "127.0.0.1:0", "k", "lock-test-secret").unwrap();
        assert!(matches!(
            EmbeddedS3::start(&root, "127.0.0.1:0", "k", "lock-test-secret"),
            Err(EmbeddedS3Error::Busy { .. })
        ));
        drop(first);
        assert!(EmbeddedS3::start(&root, "127.0.0.1:0", "k", "lock-test-secret").is_ok());
    }
}

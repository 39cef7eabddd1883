//! The embedded S3-compatible server (s3s-fs over a local directory), started when no S3
//! endpoint is configured so the service runs with only a bot token. Tests use it too.

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
        let fs = crate::embedded_fs::EmbeddedFs::new(root).map_err(data_dir_err)?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key.to_string()));
        let service = builder.build();

        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| EmbeddedS3Error::Listen {
                listen: listen.to_string(),
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| EmbeddedS3Error::Listen {
                listen: listen.to_string(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmbeddedS3Error::Listen {
                listen: listen.to_string(),
                source,
            })?;
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-s3".into())
            .spawn(move || {
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
            })
            .map_err(|source| EmbeddedS3Error::Listen {
                listen: listen.to_string(),
                source,
            })?;
        Ok(Self {
            addr,
            endpoint: format!("http://{addr}"),
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
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

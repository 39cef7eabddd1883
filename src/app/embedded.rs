//! The S3 target from the settings: a configured endpoint, or the embedded server started here
//! (or, for `tg-ingest etl`, the running service's one).

use super::StartupError;
use crate::clients::s3::S3Target;
use crate::config::Settings;
use crate::embedded_s3::{EmbeddedS3, EmbeddedS3Error};

/// Who asks for the S3 target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Embedded {
    /// The service: it runs the embedded server on `s3.embedded.listen`.
    Serve,
    /// `tg-ingest etl`: it uses the running service's embedded server when there is one
    /// (never a second server over the same directory), else one of its own on a free port.
    ServeOrJoin,
}

/// The S3 target from settings, starting the embedded server when no endpoint is configured.
pub(super) async fn storage_target(
    settings: &mut Settings,
    mode: Embedded,
) -> Result<(S3Target, Option<EmbeddedS3>), StartupError> {
    if !settings.s3.endpoint.is_empty() {
        return Ok((
            S3Target::from_settings(&settings.s3, &settings.s3.endpoint),
            None,
        ));
    }
    let e = settings.s3.embedded.clone();
    let dir = settings.embedded_s3_dir();
    let secret_file = settings.embedded_secret_file();
    let (secret, source) = crate::embedded_s3::resolve_secret(e.secret_key.expose(), &secret_file)
        .map_err(|source| EmbeddedS3Error::DataDir {
            dir: secret_file.display().to_string(),
            source,
        })?;
    let listen = match mode {
        Embedded::Serve => e.listen.clone(),
        Embedded::ServeOrJoin => "127.0.0.1:0".to_string(),
    };
    let (endpoint, server) = match EmbeddedS3::start(&dir, &listen, &e.access_key, &secret) {
        Ok(server) => (server.endpoint.clone(), Some(server)),
        Err(EmbeddedS3Error::Busy { .. }) if mode == Embedded::ServeOrJoin => {
            let running = running_server_address(&e.listen).ok_or_else(|| {
                StartupError::EmbeddedS3(EmbeddedS3Error::Busy {
                    dir: format!(
                        "{} on a port chosen at start-up; give s3.embedded.listen a fixed port",
                        dir.display()
                    ),
                })
            })?;
            log::info!("using the running service's embedded S3 server at {running}");
            (format!("http://{running}"), None)
        }
        Err(err) => return Err(err.into()),
    };
    settings.s3.max_key_bytes = settings
        .s3
        .max_key_bytes
        .min(embedded_key_limit(&settings.s3.bucket));
    settings.s3.path_style = true;
    settings.s3.access_key = crate::Secret::new(e.access_key.clone());
    settings.s3.secret_key = crate::Secret::new(secret);
    let target = S3Target::from_settings(&settings.s3, &endpoint);
    target.ensure_bucket().await?;
    if server.is_some() {
        let secret = match source {
            crate::embedded_s3::SecretSource::Settings => {
                "as set in s3.embedded.secret_key".to_string()
            }
            crate::embedded_s3::SecretSource::File => {
                format!("in {}", secret_file.display())
            }
        };
        log::info!(
            "embedded S3 server at {endpoint} over {}; bucket `{}`, region `{}`, access key `{}`, secret key {secret}",
            dir.display(),
            settings.s3.bucket,
            settings.s3.region,
            e.access_key
        );
    }
    Ok((target, server))
}

/// Where a running service's embedded server can be reached from this machine: its listen
/// address, with a wildcard address replaced by loopback (none when its port was chosen at
/// start-up).
fn running_server_address(listen: &str) -> Option<std::net::SocketAddr> {
    let mut addr: std::net::SocketAddr = listen.parse().ok().or_else(|| {
        listen
            .strip_prefix("localhost:")
            .and_then(|p| format!("127.0.0.1:{p}").parse().ok())
    })?;
    if addr.port() == 0 {
        return None;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// Longest key the embedded server can store: it keeps each object as one file (name at most
/// 255 bytes) and its metadata in a file named after the base64 of bucket and key plus about
/// 74 bytes of fixed text.
pub fn embedded_key_limit(bucket: &str) -> usize {
    let bucket_b64 = bucket.len().div_ceil(3) * 4;
    255usize.saturating_sub(74 + bucket_b64) * 3 / 4
}

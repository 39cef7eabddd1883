//! Downloading a file: from the Bot API's file URL, or from disk below the local Bot API
//! server's root.

use std::path::Path;

use bytes::BytesMut;
use futures_util::stream::StreamExt;
use serde::de::IgnoredAny;

use super::{parse_envelope, ByteStream, TelegramClient};
use crate::clients::telegram::error::TelegramError;

/// Chunk size when reading a file from local disk.
const LOCAL_READ_CHUNK: usize = 1024 * 1024;

impl TelegramClient {
    /// Streams the bytes of a file sent in `chat_id`, with the length the source announces.
    /// On a local Bot API server an absolute `file_path` is read from disk; otherwise it is
    /// fetched from `{api_url}/file/bot<token>/<file_path>`.
    pub async fn download(&self, chat_id: i64, file_path: &str) -> Result<Download, TelegramError> {
        self.held(chat_id, self.fetch(file_path)).await
    }

    async fn fetch(&self, file_path: &str) -> Result<Download, TelegramError> {
        const METHOD: &str = "download";
        if self.local_bot_api && Path::new(file_path).is_absolute() {
            return local_file_stream(&self.local_files_root, Path::new(file_path)).await;
        }
        let url = format!(
            "{}/file/bot{}/{}",
            self.api_url,
            self.token.expose(),
            file_path.trim_start_matches('/')
        );
        let mut response = self
            .http
            .get(url)
            .timeout(self.download_timeout)
            .send()
            .await
            .map_err(|e| self.network(METHOD, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.body().limit(64 * 1024).await.unwrap_or_default();
            return Err(match parse_envelope::<IgnoredAny>(METHOD, status, &body) {
                Err(err @ (TelegramError::Api { .. } | TelegramError::RetryAfter { .. })) => err,
                _ => TelegramError::Api {
                    method: METHOD,
                    code: status,
                    description: "file download failed".into(),
                },
            });
        }
        let length = response
            .headers()
            .get(awc::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let token = self.token.clone();
        let bytes = response
            .map(move |chunk| {
                chunk.map_err(|e| TelegramError::Network {
                    method: METHOD,
                    detail: e.to_string().replace(token.expose(), "[redacted]"),
                })
            })
            .boxed_local();
        Ok(Download { bytes, length })
    }
}

/// A file being downloaded.
pub struct Download {
    /// Its bytes.
    pub bytes: ByteStream,
    /// The length announced by the source (`Content-Length`, or the local file's size).
    pub length: Option<u64>,
}

/// Opens a file a local Bot API server named, if it may be read: it lies under `root` (no `..`),
/// no component below `root` is a symbolic link (the last is opened with `O_NOFOLLOW`), and it
/// is a regular file.
pub(super) fn open_local_file(root: &Path, path: &Path) -> Result<std::fs::File, TelegramError> {
    use std::os::unix::fs::OpenOptionsExt;
    let refused = |detail: String| TelegramError::LocalFileRefused { detail };
    let shown = path.display();
    let below = path
        .strip_prefix(root)
        .ok()
        .filter(|rel| {
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .filter(|rel| !rel.as_os_str().is_empty())
        .ok_or_else(|| {
            refused(format!(
                "{shown} is not under telegram.local_files_root ({})",
                root.display()
            ))
        })?;
    let mut at = root.to_path_buf();
    for part in below.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refused(format!("{} is a symbolic link", at.display())))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(TelegramError::Network {
                    method: "download",
                    detail: format!("local file {shown}: {e}"),
                })
            }
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| refused(format!("{shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refused(format!("{shown}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(refused(format!("{shown} is not a regular file")));
    }
    Ok(file)
}

/// Reads a local file in chunks without holding it in memory.
async fn local_file_stream(root: &Path, path: &Path) -> Result<Download, TelegramError> {
    use tokio::io::AsyncReadExt;
    let io_err = |e: std::io::Error| TelegramError::Network {
        method: "download",
        detail: format!("local file: {e}"),
    };
    let (root, owned) = (root.to_path_buf(), path.to_path_buf());
    let file = tokio::task::spawn_blocking(move || open_local_file(&root, &owned))
        .await
        .map_err(|e| io_err(std::io::Error::other(e.to_string())))??;
    let file = tokio::fs::File::from_std(file);
    let length = file.metadata().await.map_err(io_err)?.len();
    let stream = futures_util::stream::try_unfold(file, move |mut file| async move {
        let mut buf = BytesMut::zeroed(LOCAL_READ_CHUNK);
        let n = file.read(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((buf.freeze(), file)))
    });
    Ok(Download {
        bytes: stream.boxed_local(),
        length: Some(length),
    })
}

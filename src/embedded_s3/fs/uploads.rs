//! Multipart uploads as S3 answers for them: `ListMultipartUploads` from s3s-fs's upload
//! files, and 404 NoSuchUpload for an upload that does not exist.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::EmbeddedFs;

/// Whether s3s-fs has the upload `upload_id` open (its upload file exists).
fn upload_exists(root: &Path, upload_id: &str) -> bool {
    uuid_like(upload_id) && root.join(format!(".upload-{upload_id}.json")).is_file()
}

/// Whether `id` looks like the UUIDs s3s-fs gives uploads (so it never names another file).
fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// 404 NoSuchUpload unless the upload exists.
pub(super) fn known_upload(root: &Path, upload_id: &str) -> S3Result<()> {
    if upload_exists(root, upload_id) {
        Ok(())
    } else {
        Err(s3_error!(NoSuchUpload))
    }
}

/// The multipart uploads open in `bucket` under `prefix`, as `(key, upload id)` in key order:
/// s3s-fs keeps a metadata file per upload, named after the bucket, the key and the upload.
fn open_uploads(root: &Path, bucket: &str, prefix: &str) -> std::io::Result<Vec<(String, String)>> {
    let head = format!(".bucket-{}.object-", URL_SAFE_NO_PAD.encode(bucket));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let name = entry?.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&head)) else {
            continue;
        };
        let Some(rest) = rest.strip_suffix(".metadata.json") else {
            continue;
        };
        let Some((key, upload_id)) = rest.split_once(".upload-") else {
            continue;
        };
        let Some(key) = URL_SAFE_NO_PAD
            .decode(key)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
        else {
            continue;
        };
        if key.starts_with(prefix) && upload_exists(root, upload_id) {
            found.push((key, upload_id.to_string()));
        }
    }
    found.sort();
    Ok(found)
}

impl EmbeddedFs {
    /// `ListMultipartUploads`, in one page.
    pub(super) async fn list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        if !self.root.join(&input.bucket).is_dir() {
            return Err(s3_error!(NoSuchBucket));
        }
        let prefix = input.prefix.clone().unwrap_or_default();
        let (root, bucket) = (self.root.clone(), input.bucket.clone());
        let found = tokio::task::spawn_blocking(move || open_uploads(&root, &bucket, &prefix))
            .await
            .map_err(|e| s3_error!(InternalError, "listing uploads: {e}"))?
            .map_err(|e| s3_error!(InternalError, "listing uploads: {e}"))?;
        let uploads = found
            .into_iter()
            .map(|(key, upload_id)| MultipartUpload {
                key: Some(key),
                upload_id: Some(upload_id),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let output = ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            max_uploads: input.max_uploads,
            uploads: (!uploads.is_empty()).then_some(uploads),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }
}

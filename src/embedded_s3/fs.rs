//! The embedded server's storage: s3s-fs, with a listing of its own.
//!
//! s3s-fs answers `ListObjectsV2` by walking the whole bucket for every page and leaves out
//! ETags. The archive lists one day (`<prefix>/context_date=.../`) of a bucket that grows by a
//! day every day, and the ETL needs the ETags to trust local copies, so listings without a
//! delimiter are answered here: only the folder the prefix names is walked, and each returned
//! object carries the ETag s3s-fs recorded when it was written.
//!
//! s3s-fs writes an object to a temporary file and renames it into place without syncing
//! either, so a power cut after its answer could lose an object the bot already reported saved.
//! Every write that creates an object (`PutObject`, `CompleteMultipartUpload`, `CopyObject`) is
//! therefore followed here by an fsync of the object, its metadata files and every directory
//! from the object's up to the root, before the answer goes out; a failed sync fails the
//! request.
//!
//! s3s-fs does not list multipart uploads and answers a part for an upload that was aborted
//! with 403 AccessDenied; here `ListMultipartUploads` is answered from its upload files, and a
//! request naming an upload that does not exist gets 404 NoSuchUpload, as S3 answers, so an
//! uploader tells a lost upload from revoked credentials. Every other operation is s3s-fs's
//! own.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;

/// s3s-fs with a scoped, ETag-carrying `ListObjectsV2`.
pub struct EmbeddedFs {
    inner: FileSystem,
    root: PathBuf,
}

impl EmbeddedFs {
    /// The storage over `root`, which must exist.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        let inner = FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(Self { inner, root })
    }

    /// `ListObjectsV2`: without a delimiter, of the prefix's folder only, with ETags; anything
    /// else is s3s-fs's own.
    async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let dir = prefix_dir(&prefix);
        let (false, Some(dir)) = (req.input.delimiter.is_some(), dir) else {
            return self.inner.list_objects_v2(req).await;
        };
        let input = req.input;
        if !self.root.join(&input.bucket).is_dir() {
            return Err(s3_error!(NoSuchBucket));
        }
        let after = match (
            input.continuation_token.as_deref(),
            input.start_after.as_deref(),
        ) {
            (Some(t), Some(s)) => Some(t.max(s).to_string()),
            (t, s) => t.or(s).map(str::to_string),
        };
        let max_keys = input.max_keys.unwrap_or(1000).max(0);
        let take = usize::try_from(max_keys).unwrap_or(0);
        let (root, bucket) = (self.root.clone(), input.bucket.clone());
        let (contents, next) = tokio::task::spawn_blocking(move || {
            list_page(&root, &bucket, &dir, &prefix, after.as_deref(), take)
        })
        .await
        .map_err(|e| s3_error!(InternalError, "listing: {e}"))?
        .map_err(|e| s3_error!(InternalError, "listing: {e}"))?;
        let output = ListObjectsV2Output {
            key_count: i32::try_from(contents.len()).ok(),
            max_keys: Some(max_keys),
            is_truncated: Some(next.is_some()),
            contents: (!contents.is_empty()).then_some(contents),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            encoding_type: input.encoding_type,
            name: Some(input.bucket),
            prefix: input.prefix,
            start_after: input.start_after,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }
}

/// Syncs an object s3s-fs just wrote (under `root`), its metadata files and its directories.
fn sync_stored(root: &Path, bucket: &str, key: &str) -> std::io::Result<()> {
    fail::fail_point!("embedded_s3.sync", |only| match only {
        Some(b) if b != bucket => Ok(()),
        _ => Err(std::io::Error::other("injected sync failure")),
    });
    let object = root.join(bucket).join(key);
    std::fs::File::open(&object)?.sync_all()?;
    for kind in ["internal", "metadata"] {
        let name = format!(
            ".bucket-{}.object-{}.{kind}.json",
            URL_SAFE_NO_PAD.encode(bucket),
            URL_SAFE_NO_PAD.encode(key)
        );
        match std::fs::File::open(root.join(name)) {
            Ok(file) => file.sync_all()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut dir = object.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root)) {
        std::fs::File::open(d)?.sync_all()?;
        dir = d.parent();
    }
    Ok(())
}

/// Test hook: with the `embedded_s3.deny` failpoint set to a bucket name, writes to that bucket
/// are refused with 403 AccessDenied, as a real server does for revoked credentials.
fn denied(bucket: &str) -> S3Result<()> {
    // Without the failpoints feature the macro below is empty.
    let _ = bucket;
    fail::fail_point!("embedded_s3.deny", |only| match only {
        Some(b) if b != bucket => Ok(()),
        _ => Err(s3_error!(AccessDenied, "injected: access denied")),
    });
    Ok(())
}

/// Test hook: with the `embedded_s3.abort` failpoint set to a bucket name, aborts of uploads in
/// that bucket are answered 503, as a server that is still recovering does.
fn unavailable_abort(bucket: &str) -> S3Result<()> {
    let _ = bucket;
    fail::fail_point!("embedded_s3.abort", |only| match only {
        Some(b) if b != bucket => Ok(()),
        _ => Err(s3_error!(ServiceUnavailable, "injected: abort unavailable")),
    });
    Ok(())
}

/// Test hook: with the `embedded_s3.create_lost` failpoint set to a bucket name, a multipart
/// upload is created in that bucket but answered 500, as when the answer is lost on its way.
fn lost_answer(bucket: &str) -> S3Result<()> {
    let _ = bucket;
    fail::fail_point!("embedded_s3.create_lost", |only| match only {
        Some(b) if b != bucket => Ok(()),
        _ => Err(s3_error!(InternalError, "injected: the answer was lost")),
    });
    Ok(())
}

impl EmbeddedFs {
    /// Runs a write through s3s-fs, then makes what it stored durable before answering.
    async fn durable<T>(
        &self,
        bucket: &str,
        key: &str,
        answer: S3Result<S3Response<T>>,
    ) -> S3Result<S3Response<T>> {
        let answer = answer?;
        let (root, bucket, key) = (self.root.clone(), bucket.to_string(), key.to_string());
        tokio::task::spawn_blocking(move || sync_stored(&root, &bucket, &key))
            .await
            .map_err(|e| s3_error!(InternalError, "syncing the object: {e}"))?
            .map_err(|e| {
                log::error!("embedded S3: cannot sync a stored object to disk: {e}");
                s3_error!(InternalError, "syncing the object: {e}")
            })?;
        Ok(answer)
    }
}

/// Whether s3s-fs has the upload `upload_id` open (its upload file exists).
fn upload_exists(root: &Path, upload_id: &str) -> bool {
    uuid_like(upload_id) && root.join(format!(".upload-{upload_id}.json")).is_file()
}

/// Whether `id` looks like the UUIDs s3s-fs gives uploads (so it never names another file).
fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// 404 NoSuchUpload unless the upload exists.
fn known_upload(root: &Path, upload_id: &str) -> S3Result<()> {
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
    async fn list_uploads(
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

/// The ETag s3s-fs recorded for an object under `root`, if any.
fn recorded_etag(root: &Path, bucket: &str, key: &str) -> Option<String> {
    let name = format!(
        ".bucket-{}.object-{}.internal.json",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(name)).ok()?).ok()?;
    info.get("e_tag")?.as_str().map(str::to_string)
}

/// Up to `take` objects of `bucket` under `prefix` after the key `after`, in key order, and
/// the key to continue after when more follow. Only the folder `dir` is walked; the objects
/// are described (size, time, ETag) on two threads, as that is most of the work.
fn list_page(
    root: &Path,
    bucket: &str,
    dir: &Path,
    prefix: &str,
    after: Option<&str>,
    take: usize,
) -> std::io::Result<(Vec<Object>, Option<String>)> {
    let bucket_root = root.join(bucket);
    let mut found = walk(&bucket_root, &bucket_root.join(dir), prefix)?;
    if let Some(after) = after {
        found.retain(|(key, _)| key.as_str() > after);
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let is_truncated = found.len() > take;
    found.truncate(take);
    let next = is_truncated
        .then(|| found.last().map(|(key, _)| key.clone()))
        .flatten();
    let describe = |part: &[(String, PathBuf)]| -> Vec<Object> {
        part.iter()
            .filter_map(|(key, path)| {
                // A file deleted while listing is left out.
                let meta = std::fs::metadata(path).ok()?;
                Some(Object {
                    e_tag: recorded_etag(root, bucket, key).map(ETag::Strong),
                    last_modified: meta.modified().ok().map(Timestamp::from),
                    size: i64::try_from(meta.len()).ok(),
                    key: Some(key.clone()),
                    ..Default::default()
                })
            })
            .collect()
    };
    let (first, second) = found.split_at(found.len() / 2);
    let objects = std::thread::scope(|scope| {
        let other = scope.spawn(|| describe(second));
        let mut objects = describe(first);
        let rest = other
            .join()
            .map_err(|_| std::io::Error::other("describing the listed objects failed"))?;
        objects.extend(rest);
        Ok::<_, std::io::Error>(objects)
    })?;
    Ok((objects, next))
}

/// The folder a prefix names inside the bucket (`a/b/c` → `a/b`), or `None` when the prefix
/// has parts that are not plain names.
fn prefix_dir(prefix: &str) -> Option<PathBuf> {
    let dir = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    let plain = |part: &str| !matches!(part, "" | "." | "..") && !part.contains('\\');
    (dir.is_empty() || dir.split('/').all(plain)).then(|| PathBuf::from(dir))
}

/// Every file under `dir`, as keys relative to `bucket_root`, that starts with `prefix`.
fn walk(bucket_root: &Path, dir: &Path, prefix: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                queue.push(path);
                continue;
            }
            let Ok(relative) = path.strip_prefix(bucket_root) else {
                continue;
            };
            let Some(key) = relative
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join("/"))
            else {
                continue;
            };
            if key.starts_with(prefix) {
                found.push((key, path));
            }
        }
    }
    Ok(found)
}

macro_rules! embedded_s3_impl {
    ($($op:ident($input:ty) -> $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for EmbeddedFs {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$op(req).await
                }
            )*

            async fn list_objects_v2(
                &self,
                req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                self.list_v2(req).await
            }

            async fn put_object(
                &self,
                req: S3Request<PutObjectInput>,
            ) -> S3Result<S3Response<PutObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                denied(&bucket)?;
                let answer = self.inner.put_object(req).await;
                self.durable(&bucket, &key, answer).await
            }

            async fn list_multipart_uploads(
                &self,
                req: S3Request<ListMultipartUploadsInput>,
            ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
                self.list_uploads(req).await
            }

            async fn create_multipart_upload(
                &self,
                req: S3Request<CreateMultipartUploadInput>,
            ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
                let bucket = req.input.bucket.clone();
                let answer = self.inner.create_multipart_upload(req).await?;
                lost_answer(&bucket)?;
                Ok(answer)
            }

            async fn upload_part(
                &self,
                req: S3Request<UploadPartInput>,
            ) -> S3Result<S3Response<UploadPartOutput>> {
                known_upload(&self.root, &req.input.upload_id)?;
                self.inner.upload_part(req).await
            }

            async fn upload_part_copy(
                &self,
                req: S3Request<UploadPartCopyInput>,
            ) -> S3Result<S3Response<UploadPartCopyOutput>> {
                known_upload(&self.root, &req.input.upload_id)?;
                self.inner.upload_part_copy(req).await
            }

            async fn list_parts(
                &self,
                req: S3Request<ListPartsInput>,
            ) -> S3Result<S3Response<ListPartsOutput>> {
                known_upload(&self.root, &req.input.upload_id)?;
                self.inner.list_parts(req).await
            }

            async fn abort_multipart_upload(
                &self,
                req: S3Request<AbortMultipartUploadInput>,
            ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
                unavailable_abort(&req.input.bucket)?;
                known_upload(&self.root, &req.input.upload_id)?;
                self.inner.abort_multipart_upload(req).await
            }

            async fn complete_multipart_upload(
                &self,
                req: S3Request<CompleteMultipartUploadInput>,
            ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
                known_upload(&self.root, &req.input.upload_id)?;
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                denied(&bucket)?;
                let answer = self.inner.complete_multipart_upload(req).await;
                self.durable(&bucket, &key, answer).await
            }

            async fn copy_object(
                &self,
                req: S3Request<CopyObjectInput>,
            ) -> S3Result<S3Response<CopyObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let answer = self.inner.copy_object(req).await;
                self.durable(&bucket, &key, answer).await
            }
        }
    };
}

embedded_s3_impl! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    get_object(GetObjectInput) -> GetObjectOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    head_object(HeadObjectInput) -> HeadObjectOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
}

#[cfg(test)]
mod tests;

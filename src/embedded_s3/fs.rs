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

mod listing;
mod uploads;

#[cfg(test)]
use self::listing::{list_page, prefix_dir, walk};
use self::uploads::known_upload;

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

//! The S3 boundary: a bucket handle built from settings, the start-up check and typed errors.

pub mod objects;
mod sigv4;

use std::time::Duration;

use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};

use crate::config::{trim_url, S3Settings};

/// Where and as whom to reach S3.
#[derive(Clone)]
pub struct S3Target {
    /// Endpoint URL.
    pub endpoint: String,
    /// SigV4 region.
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Access key id.
    pub access_key: crate::Secret,
    /// Secret access key.
    pub secret_key: crate::Secret,
    /// Path-style addressing.
    pub path_style: bool,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Target {
    /// The target described by settings for an endpoint that is already known.
    pub fn from_settings(s: &S3Settings, endpoint: &str) -> Self {
        Self {
            endpoint: trim_url(endpoint).to_string(),
            region: s.region.clone(),
            bucket: s.bucket.clone(),
            access_key: s.access_key.clone(),
            secret_key: s.secret_key.clone(),
            path_style: s.path_style,
            request_timeout: Duration::from_secs(s.request_timeout_secs),
        }
    }

    /// The same target for another bucket.
    pub fn with_bucket(&self, bucket: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            ..self.clone()
        }
    }

    /// A rust-s3 bucket handle for this target.
    pub fn bucket(&self) -> Result<Box<Bucket>, StorageError> {
        let region = self.region();
        let creds = self.credentials()?;
        let bucket = Bucket::new(&self.bucket, region, creds).map_err(|e| self.config_error(e))?;
        let bucket = if self.path_style {
            bucket.with_path_style()
        } else {
            bucket
        };
        bucket
            .with_request_timeout(self.request_timeout)
            .map_err(|e| self.config_error(e))
    }

    fn region(&self) -> Region {
        Region::Custom {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        }
    }

    fn credentials(&self) -> Result<Credentials, StorageError> {
        Credentials::new(
            Some(self.access_key.expose()),
            Some(self.secret_key.expose()),
            None,
            None,
            None,
        )
        .map_err(|e| StorageError::Config {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        })
    }

    fn config_error(&self, e: S3Error) -> StorageError {
        StorageError::Config {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        }
    }

    /// Checks that the bucket exists and the credentials may use it (a HEAD on the bucket).
    pub async fn check_bucket(&self) -> Result<(), StorageError> {
        let bucket = self.bucket()?;
        match bucket.head_object("/").await {
            Ok((_, status)) if (200..300).contains(&status) => Ok(()),
            Ok((_, 404)) | Err(S3Error::HttpFailWithBody(404, _)) => {
                Err(StorageError::NoSuchBucket {
                    bucket: self.bucket.clone(),
                    endpoint: self.endpoint.clone(),
                })
            }
            Ok((_, status)) | Err(S3Error::HttpFailWithBody(status, _)) => {
                Err(StorageError::Denied {
                    bucket: self.bucket.clone(),
                    endpoint: self.endpoint.clone(),
                    status,
                })
            }
            Err(e) => Err(StorageError::Unreachable {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// Creates the bucket unless it exists (used for the embedded server and in tests).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        match self.check_bucket().await {
            Err(StorageError::NoSuchBucket { .. }) => {}
            other => return other,
        }
        let created = if self.path_style {
            Bucket::create_with_path_style(
                &self.bucket,
                self.region(),
                self.credentials()?,
                BucketConfiguration::default(),
            )
            .await
        } else {
            Bucket::create(
                &self.bucket,
                self.region(),
                self.credentials()?,
                BucketConfiguration::default(),
            )
            .await
        };
        match created {
            Ok(r) if r.success() => Ok(()),
            Ok(r) => Err(StorageError::Request {
                op: "create bucket",
                key: self.bucket.clone(),
                status: Some(r.response_code),
                transport: false,
                detail: r.response_text,
            }),
            Err(e) => Err(StorageError::from_s3("create bucket", &self.bucket, e)),
        }
    }
}

/// A failed S3 operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist.
    #[error("S3 bucket `{bucket}` does not exist at {endpoint}")]
    NoSuchBucket {
        /// Bucket name.
        bucket: String,
        /// Endpoint.
        endpoint: String,
    },
    /// The credentials may not use the bucket.
    #[error("S3 at {endpoint} refused access to bucket `{bucket}` (HTTP {status}); check s3.access_key and s3.secret_key")]
    Denied {
        /// Bucket name.
        bucket: String,
        /// Endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
    },
    /// The server could not be reached.
    #[error("S3 endpoint {endpoint} is unreachable: {detail}")]
    Unreachable {
        /// Endpoint.
        endpoint: String,
        /// The cause.
        detail: String,
    },
    /// The settings do not make a usable client.
    #[error("S3 settings for {endpoint} are unusable: {detail}")]
    Config {
        /// Endpoint.
        endpoint: String,
        /// The cause.
        detail: String,
    },
    /// One request failed.
    #[error("S3 {op} of `{key}` failed: {detail}")]
    Request {
        /// What was attempted.
        op: &'static str,
        /// Object key.
        key: String,
        /// HTTP status, if a response came.
        status: Option<u16>,
        /// Whether the request failed on its way (connection, timeout, body stream) rather than
        /// in building it or reading its answer; only such failures are retried without a status.
        transport: bool,
        /// The cause.
        detail: String,
    },
}

impl StorageError {
    /// Wraps a rust-s3 error of one operation.
    pub fn from_s3(op: &'static str, key: &str, e: S3Error) -> Self {
        let status = match &e {
            S3Error::HttpFailWithBody(status, _) => Some(*status),
            _ => None,
        };
        let transport = matches!(e, S3Error::Reqwest(_) | S3Error::Io(_) | S3Error::HttpFail);
        Self::Request {
            op,
            key: key.to_string(),
            status,
            transport,
            detail: e.to_string(),
        }
    }

    /// Whether trying again later may succeed: network trouble, 5xx, throttling. A request
    /// that failed before it was sent or whose answer made no sense is a fault of this one
    /// item and is not retried.
    pub fn is_retryable(&self) -> bool {
        if self.is_lost_upload() {
            // The attempt starts over with a new multipart upload.
            return true;
        }
        match self {
            Self::Unreachable { .. } => true,
            Self::Request {
                status: Some(s), ..
            } => *s >= 500 || *s == 429 || *s == 408,
            Self::Request { transport, .. } => *transport,
            _ => false,
        }
    }

    /// Whether a multipart upload (or copy) disappeared under its parts: `NoSuchUpload`, as a
    /// server answers when the upload was aborted by someone else or expired. Nothing is wrong
    /// with the file: the attempt is started again.
    pub fn is_lost_upload(&self) -> bool {
        match self {
            Self::Request {
                op,
                status: Some(404),
                detail,
                ..
            } => {
                detail.contains("NoSuchUpload")
                    || (matches!(
                        *op,
                        "upload part"
                            | "upload part copy"
                            | "complete multipart upload"
                            | "complete multipart copy"
                    ) && !detail.contains("NoSuchBucket"))
            }
            _ => false,
        }
    }

    /// Whether S3 refused the credentials or the permission (401, 403): wrong settings, not a
    /// bad item. A sink that meets this pauses and keeps its data until an operator fixes it;
    /// at start-up it fails the start at once.
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Self::Request {
                status: Some(401 | 403),
                ..
            }
        )
    }
}

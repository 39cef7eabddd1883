//! `[s3]`: where documents are stored (an S3 server, or the embedded one); and its checks.

use serde::Deserialize;

use super::{invalid, is_http_url, Secret, SettingsError};

/// Settings of the S3 storage.
#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    /// Endpoint URL; empty means the embedded server.
    pub endpoint: String,
    /// SigV4 region.
    pub region: String,
    /// Bucket for documents.
    pub bucket: String,
    /// Access key id.
    pub access_key: Secret,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style addressing.
    pub path_style: bool,
    /// Multipart part size in MiB.
    pub part_size_mib: usize,
    /// Parts of one upload in flight at once.
    pub parts_in_flight: usize,
    /// Timeout of one S3 request, in seconds.
    pub request_timeout_secs: u64,
    /// Longest object key in bytes.
    pub max_key_bytes: usize,
    /// Attempts of the start-up bucket check while S3 is unreachable.
    pub startup_attempts: u32,
    /// How long an upload is retried, in seconds.
    pub retry_for_secs: u64,
    /// Documents uploaded at the same time; more wait their turn.
    pub max_concurrent_uploads: usize,
    /// Largest object a rename copies with one `CopyObject`, in MiB; larger ones are copied
    /// in parts (`UploadPartCopy`).
    pub single_copy_max_mib: u64,
    /// The embedded server used when `endpoint` is empty.
    pub embedded: EmbeddedS3Settings,
}

impl S3Settings {
    /// Multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size_mib * 1024 * 1024
    }
}

/// Settings of the embedded S3 server.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddedS3Settings {
    /// Listen address, loopback by default.
    pub listen: String,
    /// Access key of the embedded server.
    pub access_key: String,
    /// Secret key of the embedded server.
    pub secret_key: Secret,
}

/// Checks the S3 section.
pub(super) fn validate(s3: &S3Settings) -> Result<(), SettingsError> {
    if !(1..=256).contains(&s3.max_concurrent_uploads) {
        return invalid("s3.max_concurrent_uploads", "must be between 1 and 256");
    }
    if !(5..=5120).contains(&s3.single_copy_max_mib) {
        return invalid(
            "s3.single_copy_max_mib",
            "must be between 5 and 5120 (S3 copies at most 5 GiB in one request)",
        );
    }
    if !s3.endpoint.is_empty() && !is_http_url(&s3.endpoint) {
        return invalid(
            "s3.endpoint",
            "must be empty or start with http:// or https://",
        );
    }
    if s3.bucket.len() < 3 || s3.bucket.len() > 63 {
        return invalid("s3.bucket", "must be 3 to 63 characters long");
    }
    if !(5..=512).contains(&s3.part_size_mib) {
        return invalid("s3.part_size_mib", "must be between 5 and 512");
    }
    if !(1..=16).contains(&s3.parts_in_flight) {
        return invalid("s3.parts_in_flight", "must be between 1 and 16");
    }
    if !(16..=1024).contains(&s3.max_key_bytes) {
        return invalid("s3.max_key_bytes", "must be between 16 and 1024");
    }
    Ok(())
}

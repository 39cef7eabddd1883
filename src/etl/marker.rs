//! The `_SUCCESS` marker of a compacted day and what it lets a later pass check: the marker
//! records how many raw objects the run read and a digest of their keys and ETags, so a day
//! whose raw objects changed in the bucket (another writer, an import, a restore) or whose
//! output was deleted is found by comparing the marker with a fresh listing.

use s3::Bucket;
use sha2::{Digest, Sha256};

use super::source::{list_day, Listed};
use super::{day_prefix, parquet_key};
use crate::clients::s3::StorageError;
use crate::util::clock::Day;

/// The day's `_SUCCESS` marker.
pub fn marker_key(prefix: &str, day: Day) -> String {
    format!("{}_SUCCESS", day_prefix(prefix, day))
}

/// What a pass reads back from a marker (other fields are ignored, missing ones are `None`:
/// markers written by older versions have no digest).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Marker {
    /// Raw objects the run read.
    pub source_objects: u64,
    /// Digest of their keys and ETags ([`digest`]).
    #[serde(default)]
    pub raw_digest: Option<String>,
    /// The Parquet object, if the run wrote rows.
    #[serde(default)]
    pub parquet_key: Option<String>,
}

/// SHA-256 (hex) of the listed objects' keys and ETags, in key order: equal digests mean the
/// same objects with the same contents.
pub fn digest(listed: &[Listed]) -> String {
    let mut hash = Sha256::new();
    for object in listed {
        hash.update(object.key.as_bytes());
        hash.update([0]);
        hash.update(object.etag.as_deref().unwrap_or("").as_bytes());
        hash.update([b'\n']);
    }
    format!("{:x}", hash.finalize())
}

fn is_missing(e: &s3::error::S3Error) -> bool {
    matches!(e, s3::error::S3Error::HttpFailWithBody(404, _))
}

/// The day's marker; `None` when there is none (or it is not a marker this service wrote).
pub async fn read_marker(
    enriched: &Bucket,
    prefix: &str,
    day: Day,
) -> Result<Option<Marker>, StorageError> {
    let key = marker_key(prefix, day);
    match enriched.get_object(&key).await {
        Ok(r) if r.status_code() == 200 => Ok(serde_json::from_slice(r.as_slice()).ok()),
        Ok(r) if r.status_code() == 404 => Ok(None),
        Ok(r) => Err(StorageError::Request {
            op: "get",
            key,
            status: Some(r.status_code()),
            transport: false,
            detail: String::from_utf8_lossy(r.as_slice()).into_owned(),
        }),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(StorageError::from_s3("get", &key, e)),
    }
}

/// Whether `key` exists in `bucket`.
pub async fn exists(bucket: &Bucket, key: &str) -> Result<bool, StorageError> {
    match bucket.head_object(key).await {
        Ok((_, status)) => Ok(status == 200),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(StorageError::from_s3("head", key, e)),
    }
}

/// Why the day's output no longer matches the raw bucket, or `None` when it does: its Parquet
/// file is gone, or the raw objects differ from those the marker records.
pub async fn differs(
    raw: &Bucket,
    enriched: &Bucket,
    prefix: &str,
    day: Day,
    marker: &Marker,
    page_keys: usize,
) -> Result<Option<String>, StorageError> {
    if let Some(key) = &marker.parquet_key {
        if *key == parquet_key(prefix, day) && !exists(enriched, key).await? {
            return Ok(Some("its Parquet file is missing".into()));
        }
    }
    let listed = list_day(raw, &day_prefix(prefix, day), page_keys).await?;
    let now = digest(&listed);
    if marker.raw_digest.as_deref() == Some(now.as_str()) {
        return Ok(None);
    }
    Ok(Some(match marker.raw_digest {
        None => "its marker predates raw digests".to_string(),
        Some(_) => format!(
            "its raw objects differ from those its marker records ({} then, {} now)",
            marker.source_objects,
            listed.len()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, etag: &str) -> Listed {
        Listed {
            key: key.into(),
            etag: Some(etag.into()),
        }
    }

    #[test]
    fn the_digest_changes_with_any_key_or_etag() {
        let a = [listed("d/1.json", "aa"), listed("d/2.json", "bb")];
        let base = digest(&a);
        assert_eq!(base, digest(&a.clone()));
        assert_ne!(
            base,
            digest(&[listed("d/1.json", "aa"), listed("d/2.json", "bc")])
        );
        assert_ne!(base, digest(&a[..1]));
        assert_ne!(
            base,
            digest(&[listed("d/1.json", "aa"), listed("d/3.json", "bb")])
        );
        // A key cannot run into its ETag.
        assert_ne!(digest(&[listed("ab", "c")]), digest(&[listed("a", "bc")]));
    }

    #[test]
    fn markers_of_older_versions_read_without_a_digest() {
        let old: Marker = serde_json::from_str(
            r#"{"day":"2026-11-21","source_objects":3,"rows":3,"parquet_key":null}"#,
        )
        .unwrap();
        assert_eq!(old.raw_digest, None);
        assert_eq!(old.source_objects, 3);
    }
}

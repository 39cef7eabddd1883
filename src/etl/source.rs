//! Where the ETL reads a day's raw objects from.
//!
//! The bucket listing is the truth: it says which objects the day has. Each object's body is
//! then taken from the local copy the archive kept in the store when that copy's MD5 equals the
//! object's ETag (so it is byte for byte what S3 holds), and fetched from S3 otherwise: no copy,
//! a changed object, or an ETag that is not an MD5 (multipart uploads, some server-side
//! encryption). Fetches run a few at a time; bodies come out in listing order.

use std::collections::HashMap;

use actix::Recipient;
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use s3::Bucket;

use crate::clients::s3::StorageError;
use crate::domain::archive::ARCHIVE_OUTBOX;
use crate::domain::segment::is_segment;
use crate::util::clock::Day;

/// Objects fetched from the raw bucket at once.
const FETCH_CONCURRENCY: usize = 64;
/// Listed objects whose local copies are asked for at once.
pub const CHUNK: usize = 2048;

/// One object of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Object key.
    pub key: String,
    /// The ETag as listed, without quotes.
    pub etag: Option<String>,
}

/// Where a body was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The archive's local copy, which matched the listed ETag.
    LocalCopy,
    /// The raw bucket; there was no usable copy.
    Fetched,
    /// The raw bucket, because the local copy differed from the object.
    FetchedOverStaleCopy,
}

/// A body and where it came from.
pub struct Body {
    /// The object.
    pub key: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Where it was read from.
    pub origin: Origin,
}

/// Keys of the day's raw objects (per-message JSON and segments), sorted (that is, by message
/// time of each object's first update), following continuation
/// tokens with pages of `page_keys` (servers cap it; AWS at 1,000).
pub async fn list_day(
    raw: &Bucket,
    day_prefix: &str,
    page_keys: usize,
) -> Result<Vec<Listed>, StorageError> {
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let (page, _) = raw
            .list_page(day_prefix.to_string(), None, token, None, Some(page_keys))
            .await
            .map_err(|e| StorageError::from_s3("list", day_prefix, e))?;
        listed.extend(
            page.contents
                .into_iter()
                .filter(|o| o.key.ends_with(".json") || is_segment(&o.key))
                .map(|o| Listed {
                    key: o.key,
                    etag: o.e_tag.map(|t| t.trim_matches('"').to_ascii_lowercase()),
                }),
        );
        token = page.next_continuation_token.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    listed.dedup_by(|a, b| a.key == b.key);
    Ok(listed)
}

/// Whether `body` is the object the listing describes by `etag`.
pub fn matches_etag(body: &[u8], etag: Option<&str>) -> bool {
    etag.is_some_and(|t| t.len() == 32 && format!("{:x}", md5::compute(body)) == t)
}

/// Reads the bodies of `listed`, in order.
pub struct DaySource<'a> {
    /// The raw bucket.
    pub raw: &'a Bucket,
    /// The store's kept copies, if any.
    pub local: Option<&'a Recipient<ReadOutboxPayloads>>,
    /// The day, for log lines.
    pub day: Day,
}

impl DaySource<'_> {
    /// The local copies of the objects from `first` to `last`; none if the store cannot say.
    async fn copies(&self, first: &str, last: &str) -> HashMap<String, String> {
        let Some(local) = self.local else {
            return HashMap::new();
        };
        let ask = ReadOutboxPayloads {
            kind: ARCHIVE_OUTBOX,
            first: first.to_string(),
            last: last.to_string(),
        };
        match local.send(ask).await {
            Ok(Ok(copies)) => copies.into_iter().collect(),
            Ok(Err(e)) => {
                log::warn!(
                    "ETL {}: local copies unreadable ({e}); reading from S3",
                    self.day
                );
                HashMap::new()
            }
            Err(e) => {
                log::warn!("ETL {}: store unavailable ({e}); reading from S3", self.day);
                HashMap::new()
            }
        }
    }

    /// The bodies of one chunk of the listing, in order.
    pub async fn chunk<'s>(
        &'s self,
        chunk: &'s [Listed],
    ) -> impl Stream<Item = Result<Body, StorageError>> + 's {
        let mut copies = match (chunk.first(), chunk.last()) {
            (Some(first), Some(last)) => self.copies(&first.key, &last.key).await,
            _ => HashMap::new(),
        };
        let raw = self.raw;
        stream::iter(chunk)
            .map(move |obj| {
                let copy = copies.remove(&obj.key);
                let had_copy = copy.is_some();
                let copy = copy.filter(|c| matches_etag(c.as_bytes(), obj.etag.as_deref()));
                async move {
                    if let Some(copy) = copy {
                        return Ok(Body {
                            key: obj.key.clone(),
                            bytes: Bytes::from(copy),
                            origin: Origin::LocalCopy,
                        });
                    }
                    let response = raw
                        .get_object(&obj.key)
                        .await
                        .map_err(|e| StorageError::from_s3("get", &obj.key, e))?;
                    Ok(Body {
                        key: obj.key.clone(),
                        bytes: response.bytes().clone(),
                        origin: if had_copy {
                            Origin::FetchedOverStaleCopy
                        } else {
                            Origin::Fetched
                        },
                    })
                }
            })
            .buffered(FETCH_CONCURRENCY)
    }
}

/// Asked of the store by the ETL: The kept payloads of an outbox with keys in `first..=last`, in key order.
#[derive(actix::Message)]
#[rtype(result = "Result<Vec<(String, String)>, std::sync::Arc<crate::store::StoreError>>")]
pub struct ReadOutboxPayloads {
    /// Outbox name.
    pub kind: &'static str,
    /// Smallest key.
    pub first: String,
    /// Largest key.
    pub last: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_md5_etag_of_the_same_bytes_matches() {
        let body = br#"{"update_id":1}"#;
        let md5 = format!("{:x}", md5::compute(body));
        assert!(matches_etag(body, Some(&md5)));
        assert!(!matches_etag(br#"{"update_id":2}"#, Some(&md5)));
        assert!(!matches_etag(body, None));
        assert!(
            !matches_etag(body, Some(&format!("{}-2", &md5[..30]))),
            "a multipart ETag is not an MD5"
        );
    }
}

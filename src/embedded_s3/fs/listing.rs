//! `ListObjectsV2` without a delimiter: only the prefix's folder walked, every object with the
//! ETag s3s-fs recorded.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

use super::EmbeddedFs;

impl EmbeddedFs {
    /// `ListObjectsV2`: without a delimiter, of the prefix's folder only, with ETags; anything
    /// else is s3s-fs's own.
    pub(super) async fn list_v2(
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
pub(super) fn list_page(
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
pub(super) fn prefix_dir(prefix: &str) -> Option<PathBuf> {
    let dir = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    let plain = |part: &str| !matches!(part, "" | "." | "..") && !part.contains('\\');
    (dir.is_empty() || dir.split('/').all(plain)).then(|| PathBuf::from(dir))
}

/// Every file under `dir`, as keys relative to `bucket_root`, that starts with `prefix`.
pub(super) fn walk(
    bucket_root: &Path,
    dir: &Path,
    prefix: &str,
) -> std::io::Result<Vec<(String, PathBuf)>> {
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

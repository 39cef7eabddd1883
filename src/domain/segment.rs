//! Segments: the raw layout that packs many archived messages into one object. A segment holds
//! the raw updates of one chat and one day as newline-delimited JSON, compressed; its members
//! are fixed in the store before it is written, and its name and bytes follow from them alone,
//! so writing it again after a crash writes the same object.

use std::io::Write;

use serde::Deserialize;

use crate::config::SegmentCompression;

/// One queued raw update, as a segment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// Its outbox id (increasing in the order updates were queued).
    pub id: i64,
    /// Its raw key, `<prefix>/context_date=YYYY-MM-DD/<YYYYmmddHHMMSS>_<update_id>.json`.
    pub key: &'a str,
    /// The raw update.
    pub payload: &'a str,
}

/// The file name ending of a segment compressed with `compression`.
pub fn extension(compression: SegmentCompression) -> &'static str {
    match compression {
        SegmentCompression::Zstd => ".ndjson.zst",
        SegmentCompression::Gzip => ".ndjson.gz",
    }
}

/// Whether a raw key names a segment.
pub fn is_segment(key: &str) -> bool {
    key.ends_with(".ndjson.zst") || key.ends_with(".ndjson.gz")
}

/// The chat of a raw update, read without parsing the rest of it.
pub fn chat_of(payload: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Chat {
        id: i64,
    }
    #[derive(Deserialize)]
    struct Message {
        chat: Chat,
    }
    #[derive(Deserialize)]
    struct Update {
        message: Option<Message>,
        edited_message: Option<Message>,
        channel_post: Option<Message>,
        edited_channel_post: Option<Message>,
    }
    let u: Update = serde_json::from_str(payload).ok()?;
    [
        u.message,
        u.edited_message,
        u.channel_post,
        u.edited_channel_post,
    ]
    .into_iter()
    .flatten()
    .map(|m| m.chat.id)
    .next()
}

/// The day folder of a raw key (up to and including its last `/`).
pub fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

/// `<day folder><YYYYmmddHHMMSS of the first>_segment_<chat>_<first id>-<last id><extension>`:
/// sorted by time like the per-message names, and unique because outbox ids are.
pub fn segment_key(members: &[Member], chat: i64, compression: SegmentCompression) -> String {
    let first = members.first().expect("a segment has members");
    let last = members.last().expect("a segment has members");
    let name = &first.key[folder_of(first.key).len()..];
    let time = name.split('_').next().unwrap_or(name);
    format!(
        "{}{time}_segment_{chat}_{}-{}{}",
        folder_of(first.key),
        first.id,
        last.id,
        extension(compression)
    )
}

/// The segment's bytes: each member's update on one line, in id order, compressed. The same
/// members always give the same bytes.
pub fn segment_bytes(
    members: &[Member],
    compression: SegmentCompression,
) -> std::io::Result<Vec<u8>> {
    let mut lines = Vec::with_capacity(members.iter().map(|m| m.payload.len() + 1).sum());
    for m in members {
        // A newline can only be whitespace between JSON tokens (strings escape theirs).
        lines.extend(
            m.payload
                .bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        lines.push(b'\n');
    }
    match compression {
        SegmentCompression::Zstd => zstd::bulk::compress(&lines, 3),
        SegmentCompression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(lines.len() / 4),
                flate2::Compression::new(6),
            );
            gz.write_all(&lines)?;
            gz.finish()
        }
    }
}

/// The lines of a segment's bytes (as [`segment_bytes`] wrote them), decompressed; the
/// compression is told by the key's ending.
pub fn segment_lines(key: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len() * 6);
    if key.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    } else {
        zstd::stream::read::Decoder::new(bytes)?.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// Splits `members` (one chat and day, in id order) into segments of at most `max_bytes` of
/// lines each (a single larger update makes a segment of its own). The last part is returned
/// apart: it is sealed only when it is old enough.
pub fn split_by_size<'m, 'a>(
    members: &'m [Member<'a>],
    max_bytes: usize,
) -> (Vec<&'m [Member<'a>]>, &'m [Member<'a>]) {
    let mut full = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in members.iter().enumerate() {
        let size = m.payload.len() + 1;
        if bytes + size > max_bytes && i > start {
            full.push(&members[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
        if bytes >= max_bytes {
            full.push(&members[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    (full, &members[start..])
}

#[cfg(test)]
mod tests;

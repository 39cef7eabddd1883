//! The segments layout: queued updates are grouped by day and chat, sealed into segments in the
//! store (when a group reaches `archive.segment.max_bytes`, or its oldest update has waited
//! `archive.segment.max_secs`), then each sealed segment is written as one object and its
//! members are marked delivered. A segment sealed but not yet marked (a crash, an S3 outage,
//! another replica that stopped) is written again from the same members: the same key with the
//! same bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::{failed, Sink};
use crate::actors::store::{
    DaysTouched, OutboxDelivered, PendingOutbox, SealSegment, SegmentMembers,
};
use crate::config::SegmentSettings;
use crate::domain::archive::ARCHIVE_OUTBOX;
use crate::domain::segment::{
    chat_of, folder_of, segment_bytes, segment_key, split_by_size, Member,
};
use crate::store::OutboxItem;

/// Queued updates looked at per round.
const SCAN: usize = 20_000;

/// Seals and writes segments until nothing is ready or S3 fails.
pub(super) async fn drain(sink: &Sink) -> Result<(), String> {
    let settings = sink.segments.as_ref().expect("the segments layout");
    loop {
        let items = sink
            .store
            .send(PendingOutbox {
                kind: ARCHIVE_OUTBOX,
                limit: SCAN,
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut ready: BTreeSet<String> = items.iter().filter_map(|i| i.segment.clone()).collect();
        ready.extend(seal_ready(sink, settings, &items).await?);
        if ready.is_empty() {
            return Ok(());
        }
        for segment in ready {
            write(sink, settings, &segment).await?;
        }
    }
}

/// Seals the unsealed items that make full segments, or whose group waited long enough;
/// answers the segments sealed.
async fn seal_ready(
    sink: &Sink,
    settings: &SegmentSettings,
    items: &[OutboxItem],
) -> Result<Vec<String>, String> {
    let now = crate::util::clock::now_millis() / 1000;
    let mut groups: BTreeMap<(&str, i64), Vec<Member>> = BTreeMap::new();
    for item in items.iter().filter(|i| i.segment.is_none()) {
        // An update without a chat (none is queued today) still gets a segment: chat 0.
        let chat = chat_of(&item.payload).unwrap_or(0);
        let member = Member {
            id: item.id,
            key: &item.key,
            payload: &item.payload,
        };
        groups
            .entry((folder_of(&item.key), chat))
            .or_default()
            .push(member);
    }
    let created: BTreeMap<i64, i64> = items.iter().map(|i| (i.id, i.created_at)).collect();
    let mut sealed = Vec::new();
    for ((_, chat), members) in &groups {
        let (mut parts, rest) = split_by_size(members, settings.max_bytes);
        let waited = rest
            .first()
            .is_some_and(|m| now - created[&m.id] >= settings.max_secs as i64);
        if waited {
            parts.push(rest);
        }
        for part in parts {
            let key = segment_key(part, *chat, settings.compression);
            let seal = SealSegment {
                kind: ARCHIVE_OUTBOX,
                ids: part.iter().map(|m| m.id).collect(),
                segment: key.clone(),
            };
            let n = sink.store.send(seal).await.map_err(|e| e.to_string())?;
            if n.map_err(|e| e.to_string())? > 0 {
                sealed.push(key);
            }
        }
    }
    Ok(sealed)
}

/// Writes one sealed segment from its members and marks them delivered.
async fn write(sink: &Sink, settings: &SegmentSettings, segment: &str) -> Result<(), String> {
    let ask = SegmentMembers {
        kind: ARCHIVE_OUTBOX,
        segment: segment.to_string(),
    };
    let items = sink
        .store
        .send(ask)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if items.is_empty() {
        return Ok(()); // written already (by this process or another replica)
    }
    let members: Vec<Member> = items
        .iter()
        .map(|i| Member {
            id: i.id,
            key: &i.key,
            payload: &i.payload,
        })
        .collect();
    let bytes = segment_bytes(&members, settings.compression)
        .map_err(|e| format!("compressing {segment}: {e}"))?;
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    sink.pace.turn().await;
    let put = sink
        .bucket
        .put_object_with_content_type(segment, &bytes, "application/x-ndjson")
        .await
        .map_err(|e| crate::clients::s3::StorageError::from_s3("put", segment, e));
    if let Err(e) = put {
        return match failed(&sink.store, &ids, segment, &e) {
            true => Err(e.to_string()),
            false => Ok(()),
        };
    }
    fail::fail_point!("archive.segment_written", |_| Err(
        "failpoint: segment written, not yet recorded".to_string()
    ));
    log::debug!(
        "archive: segment {segment} stored ({} updates, {} bytes)",
        ids.len(),
        bytes.len()
    );
    sink.store.do_send(DaysTouched(vec![segment.to_string()]));
    sink.store.do_send(OutboxDelivered {
        ids,
        keep_payload: false,
    });
    Ok(())
}

//! `ArchiveActor`: writes the raw objects queued in the durable `archive` outbox to the raw
//! bucket. An S3 outage only delays them: failed writes stay in the outbox and are retried
//! with capped backoff; a write S3 refuses for good (a 4xx other than 408/429) becomes a dead
//! letter with its error.
//!
//! In the messages layout each queued update is one object. In the segments layout
//! ([`segments`]) the updates of one chat and day are sealed into segments and each segment is
//! one object. Either way the PUTs to the raw bucket keep to `archive.max_puts_per_sec`.
//!
//! Delivered objects of the messages layout keep their JSON in the store for
//! `archive.local_copy_days`, so the ETL can read a day locally (checked against the listing's
//! ETag) instead of fetching every object back; older items are forgotten every hour.

mod segments;

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::{self, StreamExt};
use s3::Bucket;

use super::store::DaysTouched;
use super::store::{ForgetDelivered, OutboxDelivered, OutboxFailed, PendingOutbox, StoreActor};
use crate::clients::s3::StorageError;
use crate::config::{ArchiveLayout, ArchiveSettings, SegmentSettings};
use crate::domain::archive::ARCHIVE_OUTBOX;
use crate::util::backoff::Backoff;
use crate::util::pace::Pace;

/// New raw objects are waiting.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushArchive;

/// Objects read from the outbox per round.
const BATCH: usize = 256;
/// Objects written at once.
const CONCURRENCY: usize = 32;
/// How often delivered items past their keeping time are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(3600);
/// Delivered items forgotten per store message.
const FORGET_CHUNK: usize = 1_000;

/// The raw bucket, the store, and how objects are written.
struct Sink {
    bucket: Bucket,
    store: Addr<StoreActor>,
    /// Whether delivered payloads stay readable for the ETL (messages layout).
    keep: bool,
    /// Segments, in the segments layout.
    segments: Option<SegmentSettings>,
    pace: Pace,
}

/// The raw-bucket writer.
pub struct ArchiveActor {
    sink: Rc<Sink>,
    backoff: Backoff,
    draining: bool,
    paused_until: Option<Instant>,
    keep_copies_days: u32,
}

impl ArchiveActor {
    /// A writer into `bucket` in the layout of `settings`; in the messages layout it keeps
    /// local copies of delivered objects for `archive.local_copy_days` days (0: none).
    pub fn new(bucket: Box<Bucket>, store: Addr<StoreActor>, settings: &ArchiveSettings) -> Self {
        let segments =
            (settings.layout == ArchiveLayout::Segments).then(|| settings.segment.clone());
        let keep_copies_days = if segments.is_some() {
            0
        } else {
            settings.local_copy_days
        };
        Self {
            sink: Rc::new(Sink {
                bucket: *bucket,
                store,
                keep: keep_copies_days > 0,
                segments,
                pace: Pace::new(settings.max_puts_per_sec),
            }),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            draining: false,
            paused_until: None,
            keep_copies_days,
        }
    }

    /// Forgets delivered items past their keeping time, a chunk per store message so the store
    /// serves the other actors in between.
    fn forget_old(&mut self, ctx: &mut Context<Self>) {
        let store = self.sink.store.clone();
        let age_secs = i64::from(self.keep_copies_days) * 86_400;
        let days = self.keep_copies_days;
        ctx.spawn(
            async move {
                let mut total = 0;
                loop {
                    let chunk = ForgetDelivered {
                        kind: ARCHIVE_OUTBOX,
                        age_secs,
                        limit: FORGET_CHUNK,
                    };
                    match store.send(chunk).await {
                        Ok(Ok(n)) => {
                            total += n;
                            if n < FORGET_CHUNK {
                                break;
                            }
                        }
                        Ok(Err(e)) => {
                            log::warn!("archive: cannot forget old delivered objects: {e}");
                            break;
                        }
                        Err(e) => {
                            log::warn!("archive: store unavailable: {e}");
                            break;
                        }
                    }
                }
                if total > 0 {
                    log::info!("archive: forgot {total} delivered objects older than {days} days");
                }
            }
            .into_actor(self),
        );
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.draining = true;
        fail::fail_point!("archive.drain");
        let sink = self.sink.clone();
        ctx.spawn(
            async move {
                match sink.segments.is_some() {
                    true => segments::drain(&sink).await,
                    false => drain(&sink).await,
                }
            }
            .into_actor(self)
            .map(|result, act, ctx| {
                act.draining = false;
                match result {
                    Ok(()) => act.backoff.reset(),
                    Err(e) => {
                        let wait = act.backoff.next_delay();
                        log::warn!("archive: {e}; retrying in {:.1} s", wait.as_secs_f64());
                        act.paused_until = Some(Instant::now() + wait);
                        ctx.run_later(wait, |act, ctx| {
                            act.paused_until = None;
                            act.drain(ctx);
                        });
                    }
                }
            }),
        );
    }
}

/// Writes rounds of pending objects until none is left or S3 fails.
async fn drain(sink: &Sink) -> Result<(), String> {
    let (bucket, store, keep) = (&sink.bucket, &sink.store, sink.keep);
    loop {
        let items = store
            .send(PendingOutbox {
                kind: ARCHIVE_OUTBOX,
                limit: BATCH,
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if items.is_empty() {
            return Ok(());
        }
        let results: Vec<_> = stream::iter(items.iter())
            .map(|item| async move {
                sink.pace.turn().await;
                let r = bucket
                    .put_object_with_content_type(
                        &item.key,
                        item.payload.as_bytes(),
                        "application/json",
                    )
                    .await
                    .map_err(|e| StorageError::from_s3("put", &item.key, e));
                (item, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut delivered = Vec::new();
        let mut failure = None;
        for (item, result) in results {
            match result {
                Ok(_) => delivered.push(item.id),
                Err(e) => {
                    if failed(store, &[item.id], &item.key, &e) {
                        failure = Some(e.to_string());
                    }
                }
            }
        }
        if !delivered.is_empty() {
            log::debug!("archive: {} raw objects stored", delivered.len());
            let keys = items
                .iter()
                .filter(|i| delivered.contains(&i.id))
                .map(|i| i.key.clone())
                .collect();
            store.do_send(DaysTouched(keys));
            store.do_send(OutboxDelivered {
                ids: delivered,
                keep_payload: keep,
            });
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

/// Records a failed PUT of `key` for the outbox items `ids`: kept for a retry when S3 may take
/// it later (answers `true`), moved to the dead letters when S3 refuses it for good.
fn failed(store: &Addr<StoreActor>, ids: &[i64], key: &str, e: &StorageError) -> bool {
    let retry = e.is_retryable() || e.is_denied();
    if e.is_denied() {
        log::error!(
            "archive: S3 refuses the configured credentials or permission ({e}); raw objects are kept and delivery pauses: fix the s3 settings or the bucket policy"
        );
    } else if !retry {
        log::error!("archive: S3 refuses {key} for good ({e}); moved to the dead letters");
    }
    for id in ids {
        store.do_send(OutboxFailed {
            id: *id,
            reason: e.to_string(),
            dead: !retry,
        });
    }
    retry
}

impl Supervised for ArchiveActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The drain in flight was dropped; its items are still pending in the outbox.
        self.draining = false;
        self.paused_until = None;
    }
}

impl Actor for ArchiveActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.drain(ctx));
        ctx.run_interval(FORGET_EVERY, |act, ctx| act.forget_old(ctx));
        self.forget_old(ctx);
        self.drain(ctx);
    }
}

impl Handler<FlushArchive> for ArchiveActor {
    type Result = ();

    fn handle(&mut self, _: FlushArchive, ctx: &mut Context<Self>) {
        // Segments gather updates: the drain every second looks at them as a whole, instead
        // of once for every update queued.
        if self.sink.segments.is_none() {
            self.drain(ctx);
        }
    }
}

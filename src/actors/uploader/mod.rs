//! `S3UploaderActor`: streams a file from Telegram into S3 and streams progress back.
//!
//! Each upload is one or more attempts of a [`Transfer`]. A failed attempt is retried after the
//! wait Telegram asked for (`retry_after`) or a capped backoff, and the user is told: the
//! progress message says what failed, which attempt it was and when the next try is. Failures
//! on Telegram's side (getFile, the download, a wrong byte count) have their own budget
//! (`telegram.download_retry_for_secs`), S3 failures theirs (`s3.retry_for_secs`); permanent
//! answers (400, 404, "file is too big") end the upload at once.

pub mod ledger;
mod messages;
pub mod transfer;
mod verify;

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use s3::Bucket;

use super::store::StoreActor;
use crate::actors::uploader::ledger::Ledger;
use crate::actors::uploader::transfer::Transfer;
use crate::clients::s3::S3Target;
use crate::clients::telegram::TelegramClient;
use crate::clients::vk::VkClient;
use crate::config::{S3Settings, TelegramSettings};
use crate::obs::metrics::Metrics;
use crate::store::UploadOwner;
use crate::util::backoff::Backoff;

pub use self::messages::{ProgressState, Upload, UploadError, UploadProgress, UploadReport};

/// The uploader; one per service, running uploads concurrently.
pub struct S3UploaderActor {
    telegram: Rc<TelegramClient>,
    /// The VK client, when the VK bot runs.
    vk: Option<Rc<VkClient>>,
    bucket: Rc<Bucket>,
    store: Addr<StoreActor>,
    target: S3Target,
    part_size: usize,
    parts_in_flight: usize,
    storage_retry_for: Duration,
    download_retry_for: Duration,
    /// One permit per upload running; `s3.max_concurrent_uploads` of them.
    slots: Rc<tokio::sync::Semaphore>,
    /// Timeout of a whole download from VK.
    download_timeout: Duration,
    /// Client of the presigned server-side copy requests.
    copy_http: reqwest::Client,
    /// Largest object copied with one `CopyObject`.
    single_copy_max: u64,
    metrics: Arc<Metrics>,
    /// Whose multipart uploads this uploader opens: the replica, and this process's start.
    owner: UploadOwner,
    /// Starts of this uploader in this process (its restarts); part of its incarnation.
    generation: u32,
    /// Whether a sweep of uploads to abort is running.
    sweeping: Rc<std::cell::Cell<bool>>,
}

/// How often the uploads that must be aborted (failed aborts, leftovers of other starts and of
/// replicas whose heartbeat ran out) are looked for and aborted.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl S3UploaderActor {
    /// An uploader writing to `bucket` on `target`'s server, recording open multipart uploads
    /// in `store`.
    pub fn new(
        telegram: TelegramClient,
        (target, bucket): (S3Target, Box<Bucket>),
        store: Addr<StoreActor>,
        settings: (&TelegramSettings, &S3Settings),
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tg, s3) = settings;
        Self {
            telegram: Rc::new(telegram),
            vk: None,
            bucket: Rc::from(bucket),
            target,
            store,
            part_size: s3.part_size(),
            parts_in_flight: s3.parts_in_flight,
            storage_retry_for: Duration::from_secs(s3.retry_for_secs),
            download_retry_for: Duration::from_secs(tg.download_retry_for_secs),
            slots: Rc::new(tokio::sync::Semaphore::new(
                s3.max_concurrent_uploads.max(1),
            )),
            copy_http: reqwest::Client::builder()
                .timeout(crate::clients::s3::objects::copy_timeout(
                    Duration::from_secs(s3.request_timeout_secs),
                ))
                .build()
                .unwrap_or_default(),
            single_copy_max: s3.single_copy_max_mib * 1024 * 1024,
            download_timeout: Duration::from_secs(tg.download_timeout_secs),
            metrics,
            owner: UploadOwner {
                replica: "local".into(),
                incarnation: format!("{:016x}", rand::random::<u64>()),
            },
            generation: 0,
            sweeping: Rc::default(),
        }
    }

    /// Records its multipart uploads as `owner`'s (the replica's name and a string unique to
    /// this start of the process).
    pub fn owned_by(mut self, owner: UploadOwner) -> Self {
        self.owner = owner;
        self
    }

    /// The ledger of this uploader's multipart uploads: the replica, and this start of this
    /// uploader (a restarted uploader is another incarnation, so the uploads it dropped are
    /// leftovers to abort).
    pub fn ledger(&self) -> Ledger {
        Ledger {
            store: self.store.clone(),
            owner: UploadOwner {
                replica: self.owner.replica.clone(),
                incarnation: format!("{}.{}", self.owner.incarnation, self.generation),
            },
        }
    }

    /// Aborts what must be aborted now, unless a sweep is running already.
    fn sweep(&self, ctx: &mut Context<Self>) {
        if self.sweeping.replace(true) {
            return;
        }
        let (ledger, target, sweeping) =
            (self.ledger(), self.target.clone(), self.sweeping.clone());
        ctx.spawn(
            async move {
                match crate::actors::uploader::ledger::sweep(&ledger, &target, false).await {
                    Ok((0, 0)) => {}
                    Ok((aborted, 0)) => log::info!("aborted {aborted} leftover multipart uploads"),
                    Ok((aborted, left)) => log::warn!(
                        "aborted {aborted} leftover multipart uploads; {left} could not be aborted and are tried again in {} s",
                        SWEEP_EVERY.as_secs()
                    ),
                    Err(e) => log::warn!("could not look for multipart uploads to abort: {e}"),
                }
                sweeping.set(false);
            }
            .into_actor(self),
        );
    }

    /// Downloads VK documents with `vk` too.
    pub fn with_vk(mut self, vk: VkClient) -> Self {
        self.vk = Some(Rc::new(vk));
        self
    }

    /// The documents bucket.
    pub(super) fn bucket(&self) -> Rc<Bucket> {
        self.bucket.clone()
    }

    /// The client of server-side copies.
    pub(super) fn copy_http(&self) -> reqwest::Client {
        self.copy_http.clone()
    }

    /// Counters.
    pub(super) fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// How long S3 failures are retried.
    pub(super) fn storage_retry_for(&self) -> Duration {
        self.storage_retry_for
    }

    /// The largest single copy and the part size of multipart copies.
    pub(super) fn copy_limits(&self) -> (u64, u64) {
        (self.single_copy_max, self.part_size as u64)
    }
}

impl Actor for S3UploaderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sweeping.set(false);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep(ctx));
    }
}

impl Supervised for S3UploaderActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        // Every upload in flight was dropped: their senders retry them. This start is another
        // incarnation, so the multipart uploads they left open are aborted now.
        self.generation += 1;
        self.sweeping.set(false);
        self.sweep(ctx);
    }
}

/// When each kind of failure first happened in one upload, to apply its own budget.
#[derive(Default)]
struct Budgets {
    telegram: Option<Instant>,
    storage: Option<Instant>,
}

impl Budgets {
    /// Whether `e` may be retried: it is retryable and its kind's budget is not spent. A
    /// refusal of our S3 credentials has no budget: the file waits until the settings are fixed.
    fn allows(&mut self, e: &UploadError, telegram: Duration, storage: Duration) -> bool {
        if e.is_denied() {
            self.storage = None;
            return true;
        }
        let (since, budget) = match e {
            UploadError::Telegram(_) | UploadError::Vk(_) => (&mut self.telegram, telegram),
            _ => (&mut self.storage, storage),
        };
        e.is_retryable() && since.get_or_insert_with(Instant::now).elapsed() < budget
    }
}

impl Handler<Upload> for S3UploaderActor {
    type Result = ResponseFuture<Result<UploadReport, UploadError>>;

    fn handle(&mut self, msg: Upload, _: &mut Context<Self>) -> Self::Result {
        fail::fail_point!("uploader.upload");
        let transfer = Transfer {
            telegram: self.telegram.clone(),
            vk: self.vk.clone(),
            download_timeout: self.download_timeout,
            bucket: self.bucket.clone(),
            ledger: self.ledger(),
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
        };
        let metrics = self.metrics.clone();
        let (download_for, storage_for) = (self.download_retry_for, self.storage_retry_for);
        let slots = self.slots.clone();
        Box::pin(async move {
            // Memory is bounded by the uploads running, not by the documents waiting.
            let _slot = slots.acquire().await;
            let started = Instant::now();
            log::info!(
                "chat_id={} upload started: key={:?} expected_bytes={}",
                msg.chat_id,
                msg.key,
                msg.expected_size
                    .map_or("unknown".into(), |s| s.to_string())
            );
            let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
            let mut budgets = Budgets::default();
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                match transfer.run(&msg, started).await {
                    Err(e) if budgets.allows(&e, download_for, storage_for) => {
                        Metrics::incr(&metrics.upload_retries);
                        let (api, method) = match &e {
                            UploadError::Telegram(_) => ("telegram", "download"),
                            UploadError::Vk(_) => ("vk", "download"),
                            _ => ("s3", "upload"),
                        };
                        metrics.api_retry(api, method);
                        if e.retry_after().is_some() {
                            metrics.api_rate_limited(api, method);
                        }
                        let delay = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                        if e.is_denied() {
                            log::error!(
                                "chat_id={} upload of {:?}: S3 refuses the configured credentials or permission ({e}); the upload is kept and tried again in {:.1} s: fix s3.access_key / s3.secret_key or the bucket policy",
                                msg.chat_id,
                                msg.key,
                                delay.as_secs_f64()
                            );
                        } else {
                            log::warn!(
                                "chat_id={} upload of {:?}: attempt {attempt} failed: {e}; retrying in {:.1} s",
                                msg.chat_id,
                                msg.key,
                                delay.as_secs_f64()
                            );
                        }
                        msg.progress.do_send(UploadProgress {
                            ticket: msg.ticket,
                            state: ProgressState::Retrying {
                                attempt,
                                reason: e.user_text(),
                                next_in: delay,
                            },
                        });
                        actix_rt::time::sleep(delay).await;
                    }
                    other => break other,
                }
            };
            report(&metrics, &msg, &result);
            result
        })
    }
}

fn report(metrics: &Metrics, msg: &Upload, result: &Result<UploadReport, UploadError>) {
    match result {
        Ok(r) => {
            Metrics::incr(&metrics.uploads_completed);
            metrics.families.upload_duration.observe(r.seconds);
            metrics.bytes_uploaded.fetch_add(r.bytes, Ordering::Relaxed);
            if r.multipart {
                Metrics::incr(&metrics.multipart_uploads);
                metrics
                    .parts_uploaded
                    .fetch_add(u64::from(r.parts), Ordering::Relaxed);
            }
            log::info!(
                "chat_id={} upload finished: key={:?} bytes={} parts={} sha256={} seconds={:.2} rate={:.1} MB/s",
                msg.chat_id,
                r.key,
                r.bytes,
                r.parts,
                r.sha256,
                r.seconds,
                r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
            );
        }
        Err(e) => {
            Metrics::incr(&metrics.uploads_failed);
            log::error!(
                "chat_id={} upload failed: key={:?}: {e}",
                msg.chat_id,
                msg.key
            );
        }
    }
}

#[cfg(test)]
mod tests;

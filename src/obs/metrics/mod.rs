//! Counters the actors update and tests, benchmarks, logs and `/metrics` read.
//!
//! [`Metrics`] holds plain atomic counters (read by tests and logs) and the labelled families
//! and histograms of [`Families`]. [`Metrics::encode`] renders both, with the store's gauges,
//! in the OpenMetrics text format Prometheus scrapes, every name starting with `tg_ingest_`.
//! No label names a chat or a person: labels are kinds, methods, outcomes and actors.

mod exposition;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Process-wide counters; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Updates handed to the worker pool.
    pub updates_dispatched: AtomicU64,
    /// Updates whose handling finished (successfully or with a handled error).
    pub updates_handled: AtomicU64,
    /// Updates whose handling returned an error.
    pub handler_errors: AtomicU64,
    /// Updates moved to the poison list.
    pub updates_poisoned: AtomicU64,
    /// Journaled updates replayed at start-up.
    pub updates_replayed: AtomicU64,
    /// Panics caught while handling an update.
    pub worker_panics: AtomicU64,
    /// Worker restarts by the supervisor.
    pub worker_restarts: AtomicU64,
    /// Documents stored in S3.
    pub uploads_completed: AtomicU64,
    /// Uploads that failed.
    pub uploads_failed: AtomicU64,
    /// Bytes stored in S3 by completed uploads.
    pub bytes_uploaded: AtomicU64,
    /// Actors (other than workers) restarted after a panic.
    pub actor_restarts: AtomicU64,
    /// Upload attempts that failed and were retried.
    pub upload_retries: AtomicU64,
    /// Uploads that used S3 multipart upload.
    pub multipart_uploads: AtomicU64,
    /// Multipart parts stored.
    pub parts_uploaded: AtomicU64,
    /// Successful Airtable requests.
    pub airtable_requests: AtomicU64,
    /// Rows written to Airtable.
    pub airtable_rows: AtomicU64,
    /// Rows moved to the Airtable dead letters.
    pub airtable_dead_letters: AtomicU64,
    /// Server-side copies made (renames).
    pub objects_copied: AtomicU64,
    /// `UploadPartCopy` parts of multipart copies.
    pub copy_parts: AtomicU64,
    /// Object checks, copies and deletions tried again after an S3 failure.
    pub object_retries: AtomicU64,
    /// Unix time (ms) of the last successful `getUpdates`; 0 before the first.
    pub telegram_intake_ok_ms: AtomicU64,
    /// Unix time (ms) of the last successful VK long poll; 0 before the first.
    pub vk_intake_ok_ms: AtomicU64,
    /// Unix time (ms) an intake success was last written to the store, per source
    /// (Telegram, VK).
    pub intake_noted_ms: [AtomicU64; 2],
    /// Set while this replica is a standby: another holds the poller lease (replicas only).
    pub standby: std::sync::atomic::AtomicBool,
    /// Webhook deliveries refused for a wrong or missing secret.
    pub webhook_unauthorized: AtomicU64,
    /// Claim rounds run (replicas on a shared store).
    pub claim_rounds: AtomicU64,
    /// Labelled counters, gauges and histograms.
    pub families: Families,
}

/// Labels of updates received: where from and what kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Received {
    /// `telegram_polling`, `telegram_webhook` or `vk`.
    pub source: &'static str,
    /// The update's kind (`message`, `callback_query`, `vk_message_new`, ...).
    pub kind: &'static str,
}

/// Labels of updates handled: what kind and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Handled {
    /// The update's kind.
    pub kind: &'static str,
    /// `ok`, `failed` (a final error), `retried` (an attempt failed) or `poisoned`.
    pub outcome: &'static str,
}

/// Labels naming an update's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The update's kind.
    pub kind: &'static str,
}

/// Labels of calls to an outside API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiMethod {
    /// `telegram`, `vk`, `s3` or `airtable`.
    pub api: &'static str,
    /// The method (`sendMessage`, `messages.send`, `upload`, ...).
    pub method: &'static str,
}

/// Labels naming an actor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorName {
    /// The actor's type.
    pub actor: &'static str,
}

/// Labels of HTTP answers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    /// The HTTP status code, or `network` when none came.
    pub status: String,
}

/// Labels naming an outbox.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outbox {
    /// The outbox (`airtable`, `archive`).
    pub outbox: String,
}

/// Labels of an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn handling_histogram() -> Histogram {
    // 5 ms to about 82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn upload_histogram() -> Histogram {
    // 50 ms to about 14 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// The labelled metrics, and the gauges read from the store at each scrape.
#[derive(Debug)]
pub struct Families {
    /// Updates received, by source and kind.
    pub received: Family<Received, Counter>,
    /// Updates handled, by kind and outcome.
    pub handled: Family<Handled, Counter>,
    /// Time from the start of an update's handling to its end, by kind.
    pub handling: Histograms<Kind>,
    /// Time of each document upload (download, checks and storing).
    pub upload_duration: Histogram,
    /// Calls to an outside API tried again, by API and method.
    pub api_retries: Family<ApiMethod, Counter>,
    /// Answers asking to slow down (HTTP 429, VK's flood control), by API and method.
    pub api_rate_limited: Family<ApiMethod, Counter>,
    /// Actors restarted by their supervisor, by actor.
    pub actor_restarts: Family<ActorName, Counter>,
    /// Airtable requests by HTTP status.
    pub airtable_requests: Family<Status, Counter>,
    /// Webhook deliveries answered, by HTTP status.
    pub webhook_deliveries: Family<Status, Counter>,
    /// ETL runs by outcome.
    pub etl_runs: Family<Outcome, Counter>,
    /// Unix time of the last successful ETL run.
    pub etl_last_success: Gauge,
    /// Rows written by the last successful ETL run.
    pub etl_last_rows: Gauge,
    /// Updates in the journal (read from the store at each scrape).
    pub journal: Gauge,
    /// Updates on the poison list (read from the store at each scrape).
    pub poison: Gauge,
    /// Items waiting in each outbox (read from the store at each scrape).
    pub outbox_pending: Family<Outbox, Gauge>,
    /// Dead letters of each outbox (read from the store at each scrape).
    pub dead_letters: Family<Outbox, Gauge>,
}

impl Default for Families {
    fn default() -> Self {
        Self {
            received: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(handling_histogram),
            upload_duration: upload_histogram(),
            api_retries: Family::default(),
            api_rate_limited: Family::default(),
            actor_restarts: Family::default(),
            airtable_requests: Family::default(),
            webhook_deliveries: Family::default(),
            etl_runs: Family::default(),
            etl_last_success: Gauge::default(),
            etl_last_rows: Gauge::default(),
            journal: Gauge::default(),
            poison: Gauge::default(),
            outbox_pending: Family::default(),
            dead_letters: Family::default(),
        }
    }
}

/// What the store says at a scrape.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// Updates journaled and unfinished.
    pub journal: u64,
    /// Updates on the poison list.
    pub poison: u64,
    /// Per outbox: (name, pending, dead letters).
    pub outboxes: Vec<(String, u64, u64)>,
    /// Unix time (ms) of the last compaction recorded, if any.
    pub last_etl_ms: Option<i64>,
}

impl Metrics {
    /// Records "now" in a timestamp field.
    pub fn stamp(field: &AtomicU64) {
        field.store(
            crate::util::clock::now_millis().max(0) as u64,
            Ordering::Relaxed,
        );
    }

    /// Whether an intake success should be written to the store now: at most once per
    /// `every` for each `last` field (which this updates).
    pub fn note_due(last: &AtomicU64, every: Duration) -> bool {
        let now = crate::util::clock::now_millis().max(0) as u64;
        let prev = last.load(Ordering::Relaxed);
        now.saturating_sub(prev) >= every.as_millis() as u64
            && last
                .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// An update arrived from `source`.
    pub fn received(&self, source: &'static str, kind: &'static str) {
        self.families
            .received
            .get_or_create(&Received { source, kind })
            .inc();
    }

    /// An update's handling ended with `outcome` after `took`.
    pub fn handled(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.families
            .handled
            .get_or_create(&Handled { kind, outcome })
            .inc();
        self.families
            .handling
            .get_or_create(&Kind { kind })
            .observe(took.as_secs_f64());
    }

    /// A call to `api` is tried again.
    pub fn api_retry(&self, api: &'static str, method: &'static str) {
        self.families
            .api_retries
            .get_or_create(&ApiMethod { api, method })
            .inc();
    }

    /// `api` asked to slow down.
    pub fn api_rate_limited(&self, api: &'static str, method: &'static str) {
        self.families
            .api_rate_limited
            .get_or_create(&ApiMethod { api, method })
            .inc();
    }

    /// An actor was restarted.
    pub fn actor_restarted(&self, actor: &'static str) {
        Self::incr(&self.actor_restarts);
        self.families
            .actor_restarts
            .get_or_create(&ActorName { actor })
            .inc();
    }

    /// Airtable answered `status` (none: the request got no answer).
    pub fn airtable_answered(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "network".to_string(), |s| s.to_string());
        self.families
            .airtable_requests
            .get_or_create(&Status { status })
            .inc();
    }

    /// A webhook delivery was answered with `status`.
    pub fn webhook_answered(&self, status: u16) {
        self.families
            .webhook_deliveries
            .get_or_create(&Status {
                status: status.to_string(),
            })
            .inc();
    }

    /// An ETL run ended; a successful one wrote `rows`.
    pub fn etl_finished(&self, rows: Option<u64>) {
        let outcome = if rows.is_some() { "ok" } else { "failed" };
        self.families
            .etl_runs
            .get_or_create(&Outcome { outcome })
            .inc();
        if let Some(rows) = rows {
            let now = crate::util::clock::now_millis() / 1000;
            self.families.etl_last_success.set(now);
            self.families.etl_last_rows.set(rows as i64);
        }
    }
}

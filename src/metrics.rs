//! Counters the actors update and tests, benchmarks and logs read.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl Metrics {
    /// Records "now" in a timestamp field.
    pub fn stamp(field: &AtomicU64) {
        field.store(crate::clock::now_millis().max(0) as u64, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

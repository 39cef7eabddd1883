//! The OpenMetrics text of [`Metrics`]: its families, the store's gauges and the plain
//! counters, every name starting with `tg_ingest_`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::{Families, Metrics, Outbox, Outcome, StoreGauges};

impl Metrics {
    /// The OpenMetrics text of every metric, with the store's gauges as `store` says.
    pub fn encode(self: &Arc<Self>, store: Option<&StoreGauges>) -> String {
        let f = &self.families;
        if let Some(store) = store {
            f.journal.set(store.journal as i64);
            f.poison.set(store.poison as i64);
            for (name, pending, dead) in &store.outboxes {
                let outbox = Outbox {
                    outbox: name.clone(),
                };
                f.outbox_pending.get_or_create(&outbox).set(*pending as i64);
                f.dead_letters.get_or_create(&outbox).set(*dead as i64);
            }
            if let Some(at) = store.last_etl_ms {
                if f.etl_last_success.get() < at / 1000 {
                    f.etl_last_success.set(at / 1000);
                }
            }
        }
        let mut r = Registry::with_prefix("tg_ingest");
        register_activity(&mut r, f);
        register_state(&mut r, f);
        r.register_collector(Box::new(Counters(self.clone())));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &r);
        text
    }
}

/// The families of what happened: updates, uploads, API calls, restarts, deliveries, ETL runs.
fn register_activity(r: &mut Registry, f: &Families) {
    r.register(
        "updates_received",
        "Updates received, by source and kind",
        f.received.clone(),
    );
    r.register(
        "updates_handled",
        "Updates whose handling ended, by kind and outcome (ok, failed, retried, poisoned)",
        f.handled.clone(),
    );
    r.register_with_unit(
        "update_handling",
        "Time to handle one update, by kind",
        Unit::Seconds,
        f.handling.clone(),
    );
    r.register_with_unit(
        "upload_duration",
        "Time to store one document (download, checks and upload)",
        Unit::Seconds,
        f.upload_duration.clone(),
    );
    r.register(
        "api_retries",
        "Calls to an outside API tried again, by API and method",
        f.api_retries.clone(),
    );
    r.register(
        "api_rate_limited",
        "Answers asking to slow down (HTTP 429, VK flood control), by API and method",
        f.api_rate_limited.clone(),
    );
    r.register(
        "actor_restarts",
        "Actors restarted by their supervisor, by actor",
        f.actor_restarts.clone(),
    );
    r.register(
        "airtable_requests",
        "Airtable requests by HTTP status",
        f.airtable_requests.clone(),
    );
    r.register(
        "webhook_deliveries",
        "Telegram webhook deliveries answered, by HTTP status",
        f.webhook_deliveries.clone(),
    );
    r.register("etl_runs", "ETL runs by outcome", f.etl_runs.clone());
    r.register_with_unit(
        "etl_last_success_timestamp",
        "Unix time of the last successful ETL run",
        Unit::Seconds,
        f.etl_last_success.clone(),
    );
    r.register(
        "etl_last_rows",
        "Rows written by the last successful ETL run",
        f.etl_last_rows.clone(),
    );
}

/// The families of what is waiting: the journal, the poison list and the outboxes.
fn register_state(r: &mut Registry, f: &Families) {
    r.register(
        "journal_updates",
        "Updates journaled and not yet finished",
        f.journal.clone(),
    );
    r.register(
        "poison_updates",
        "Updates on the poison list",
        f.poison.clone(),
    );
    r.register(
        "outbox_pending",
        "Items waiting in each outbox",
        f.outbox_pending.clone(),
    );
    r.register(
        "outbox_dead_letters",
        "Dead letters of each outbox",
        f.dead_letters.clone(),
    );
}

/// The plain counters of [`Metrics`], read at each scrape.
/// The plain counters of [`Metrics`], read at each scrape.
#[derive(Debug)]
struct Counters(Arc<Metrics>);

impl Counters {
    fn counter(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: &AtomicU64,
    ) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(Metrics::get(value));
        let metric = encoder.encode_descriptor(name, help, unit, counter.metric_type())?;
        counter.encode(metric)
    }
}

impl Collector for Counters {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        {
            let counter = ConstCounter::new(0u64);
            let mut metric = e.encode_descriptor(
                "uploads",
                "Document uploads ended, by outcome",
                None,
                counter.metric_type(),
            )?;
            for (outcome, value) in [("ok", &m.uploads_completed), ("failed", &m.uploads_failed)] {
                ConstCounter::new(Metrics::get(value))
                    .encode(metric.encode_family(&Outcome { outcome })?)?;
            }
        }
        for (name, help, unit, value) in upload_counters(m).into_iter().chain(other_counters(m)) {
            Self::counter(&mut e, name, help, unit, value)?;
        }
        let standby = m.standby.load(Ordering::Relaxed);
        let gauge = ConstGauge::new(i64::from(standby));
        let metric = e.encode_descriptor(
            "poller_standby",
            "1 while another replica holds the poller lease (replicas on a shared store)",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}

/// The plain counters: name, help, unit and value.
type Plain<'a> = (
    &'static str,
    &'static str,
    Option<&'static Unit>,
    &'a AtomicU64,
);

/// The plain counters of uploads: name, help, unit and value.
fn upload_counters(m: &Metrics) -> [Plain<'_>; 6] {
    [
        (
            "uploaded",
            "Bytes stored by completed uploads",
            Some(&Unit::Bytes),
            &m.bytes_uploaded,
        ),
        (
            "upload_retries",
            "Upload attempts that failed and were tried again",
            None,
            &m.upload_retries,
        ),
        (
            "multipart_uploads",
            "Uploads stored with S3 multipart upload",
            None,
            &m.multipart_uploads,
        ),
        (
            "parts_uploaded",
            "Multipart parts stored",
            None,
            &m.parts_uploaded,
        ),
        (
            "updates_replayed",
            "Journaled updates replayed at start-up",
            None,
            &m.updates_replayed,
        ),
        (
            "worker_panics",
            "Panics caught while handling an update",
            None,
            &m.worker_panics,
        ),
    ]
}

/// The other plain counters: name, help, unit and value.
fn other_counters(m: &Metrics) -> [Plain<'_>; 7] {
    [
        (
            "airtable_rows",
            "Rows written to Airtable",
            None,
            &m.airtable_rows,
        ),
        (
            "airtable_dead_letters",
            "Rows moved to the Airtable dead letters",
            None,
            &m.airtable_dead_letters,
        ),
        (
            "objects_copied",
            "Server-side copies made by renames",
            None,
            &m.objects_copied,
        ),
        (
            "copy_parts",
            "UploadPartCopy parts of multipart copies",
            None,
            &m.copy_parts,
        ),
        (
            "object_retries",
            "Object checks, copies and deletions tried again after an S3 failure",
            None,
            &m.object_retries,
        ),
        (
            "webhook_unauthorized",
            "Webhook deliveries refused for a wrong or missing secret",
            None,
            &m.webhook_unauthorized,
        ),
        (
            "claim_rounds",
            "Rounds in which this replica looked for chats to claim and updates to hand over (replicas on a shared store)",
            None,
            &m.claim_rounds,
        ),
    ]
}

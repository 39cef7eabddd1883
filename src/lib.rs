//! # tg-ingest
//!
//! Turns what happens in Telegram (and VK) into durable data: documents streamed into S3,
//! go-button presses as Airtable rows, archived group chats as raw JSON and daily Parquet.
//!
//! ## Layers, lowest first (a module imports only from its own layer and those above it in
//! this list; the modules of one layer form no circle; `tests/layers.rs` checks both)
//!
//! - [`util`]: clock and retry delays; nothing of the product.
//! - [`obs`]: log format and secret scrubber, metrics.
//! - [`config`]: typed, layered settings; the only reader of environment variables.
//! - [`clients`]: Telegram Bot API (with its outgoing rate limits), VK API, S3 (with object
//!   operations), Airtable.
//! - [`embedded_s3`]: the in-process S3 server used when no endpoint is configured.
//! - [`domain`]: the journal's update type and the allowlists, key naming, the go button's
//!   data, archive naming, the neutral chat vocabulary.
//! - [`store`]: the durable store on SQLite or PostgreSQL (journal, claims, leases, outboxes,
//!   files, renames, days).
//! - [`etl`]: the daily Parquet compaction of the archive.
//! - [`actors`]: the actix actors, talking only by typed messages: `ClaimActor` (replicas),
//!   the `WorkerPool` of supervised `WorkerActor`s, `S3UploaderActor` (streams files into S3,
//!   progress back to the worker), `AirtableActor`, `ArchiveActor`, `EtlSchedulerActor`,
//!   `StoreActor`.
//! - [`intake`]: `PollerActor` (`getUpdates`) and `VkPollerActor`; `/healthz`, `/readyz`,
//!   `/metrics` and the Telegram webhook.
//! - [`conversation`]: the documents conversation, written once for every platform.
//! - [`bot`]: the router from an update to its capability (documents, go button, archive),
//!   and the Telegram and VK adapters of the chat vocabulary.
//! - [`app`]: start-up checks, wiring of the actors, shutdown; shared by the binary and tests.
//! - [`cli`]: the command line (the service, `post-button`, `etl`, admin commands).
//!
//! ```text
//! Telegram/VK ─▶ intake (poller, webhook) ─▶ journal (store) ─▶ claims ─▶ WorkerPool
//!   WorkerActor ─▶ bot ─▶ conversation ─▶ S3UploaderActor ─▶ S3   (progress ─▶ worker)
//!                      ├▶ go button ─▶ outbox ─▶ AirtableActor ─▶ Airtable
//!                      └▶ archive ─▶ outbox ─▶ ArchiveActor ─▶ raw bucket ─▶ ETL ─▶ Parquet
//! ```

pub mod actors;
pub mod app;
pub mod bot;
pub mod cli;
pub mod clients;
pub mod config;
pub mod conversation;
pub mod domain;
pub mod embedded_s3;
pub mod etl;
pub mod intake;
pub mod obs;
pub mod store;
pub mod util;

pub use config::{Secret, Settings};

/// Makes `ring` the process's TLS crypto provider (several are linked in). Idempotent.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

//! # tg-ingest
//!
//! Turns what happens in Telegram into durable data.
//!
//! ## Layout
//!
//! - [`settings`]: typed, layered settings; the only reader of environment variables.
//! - [`telegram`]: the Bot API client (`awc`), its object types and typed errors.
//! - [`storage`]: the S3 target (rust-s3), the bucket check and typed errors.
//! - [`embedded_s3`], [`embedded_fs`]: the in-process S3 server used when no endpoint is
//!   configured, and its storage (s3s-fs with a day-scoped listing that carries ETags).
//! - [`actors`]: the actors, which talk only by typed messages; each runs under a supervisor
//!   (`actors::guard` for the poller, uploader, store, Airtable, archive and ETL scheduler, which
//!   also contains panics; actix's `Supervisor` for the workers, which catch their own):
//!   - `PollerActor` calls `getUpdates` (the only caller) and sends each update as
//!     `Dispatch` to the `WorkerPool`, moving its offset only after the pool accepted it;
//!   - `VkPollerActor` is the VK intake (Bots Long Poll API): it journals each batch of
//!     events (as [`inbound::IncomingUpdate`]s under ids of their own) before it saves the
//!     long-poll `ts`, then dispatches them to the same pool;
//!   - `WorkerPool` routes each update by chat to one of its supervised `WorkerActor`s
//!     (`HandleUpdate`); one chat's updates are handled in order, chats in parallel;
//!   - `WorkerActor` runs the business logic (an [`actors::worker::UpdateHandler`], here the
//!     [`bot::Bot`] router); for a document the conversation sends `Upload` to the
//!     `S3UploaderActor`, and for a rename or a file list `CopyObject`, `DeleteObject` and
//!     `ObjectsExist` (`actors::objects`);
//!   - `S3UploaderActor` streams the file from Telegram into S3 (each attempt a
//!     [`transfer::Transfer`]: byte counts verified, SHA-256 stored, open multipart uploads
//!     recorded in the store) and sends `UploadProgress` (bytes, or a retry notice) back to the
//!     worker's `Recipient`, which edits the user's progress message.
//! - [`bot`]: the router that hands each Telegram update to its capability: the documents
//!   conversation, the go button (`bot::go`), archiving (`bot::archive`).
//! - [`chat`]: the neutral chat vocabulary (events, buttons, the `ChatPort` the conversation
//!   answers through); [`telegram::chat`] is the Telegram adapter.
//! - [`conversation`]: the documents conversation, written once for every platform: greeting,
//!   documents with numbered names when a name is someone else's, rename, `/files`, `/help`.
//! - [`objects`]: server-side object operations (HEAD, copy in one request or in parts, delete).
//! - [`button`], [`airtable`]: the go button and the Airtable client (`AirtableActor` drains
//!   the durable outbox of rows).
//! - [`archive`], [`etl`]: raw JSON per archived message (`ArchiveActor` drains its outbox into
//!   the raw bucket, keeping local copies for a while) and the daily Parquet ETL
//!   (`EtlSchedulerActor`, or `tg-ingest etl`), which reads those copies when their MD5 matches
//!   the listed ETag (`ReadOutboxPayloads` to the `StoreActor`) and fetches the rest. The
//!   archive reports the days it stored objects for (`DaysTouched`); the scheduler compacts a
//!   day only when nothing for it is on its way (`DayPending`) and again when it is stale.
//! - [`store`]: the durable store (journal, state, outboxes, open multipart uploads, saved
//!   files and their owners, pending renames and moves, archive days), owned by `StoreActor`,
//!   on SQLite or PostgreSQL through one SQL interface (`store::db`; PostgreSQL's schema in
//!   `store::pg_schema`).
//! - [`ratelimit`]: the process-wide limiter of outgoing Telegram calls (rates per chat, group
//!   and overall, and the holds Telegram asks for with `retry_after`).
//! - [`logging`]: the log scrubber and the text or JSON line format.
//! - [`keys`]: S3 key naming and sanitising.
//! - [`app`]: start-up checks and wiring, shared by the binary and the tests.
//! - [`http`]: `/healthz`, `/readyz` and `/metrics` on `http.listen`; in webhook mode also the
//!   [`webhook`] intake, which journals each delivery (`JournalBatch`) before answering 200 and
//!   then sends it as `Dispatch` to the same pool.
//! - [`inbound`]: what the journal holds, an update of either platform.
//! - [`vk`]: the VK API client (Bots Long Poll sessions, `messages.send` with `random_id`,
//!   edits, press answers, document downloads) under one shared pace of 20 calls per second.
//! - [`backoff`], [`metrics`]: retry delays, and the counters and histograms `/metrics`
//!   renders (prometheus-client).

pub mod actors;
pub mod airtable;
pub mod app;
pub mod archive;
pub mod backoff;
pub mod bot;
pub mod button;
pub mod chat;
pub mod clock;
pub mod conversation;
pub mod embedded_fs;
pub mod embedded_s3;
pub mod etl;
pub mod http;
pub mod inbound;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod objects;
pub mod ratelimit;
pub mod settings;
pub mod storage;
pub mod store;
pub mod telegram;
pub mod transfer;
pub mod vk;
pub mod webhook;

pub use settings::{Secret, Settings};

/// Makes `ring` the process's TLS crypto provider (several are linked in). Idempotent.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

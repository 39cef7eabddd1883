//! Requests of the intakes: VK's journal ids and long-poll `ts`, what the status command and
//! readiness read, and deliveries refused before the journal.

use std::sync::Arc;

use actix::prelude::*;

use super::StoreActor;
use crate::store::{Store, StoreError};

store_request!(
    /// The journal ids of VK events, by `event_id` (the VK intake).
    VkIds(pub Vec<String>) -> Vec<i64>,
    |s, m| s.vk_ids(&m.0)
);

store_request!(
    /// The long-poll `ts` the VK intake resumes from.
    VkTs() -> Option<String>,
    |s, _m| s.vk_ts()
);

store_request!(
    /// Saves the long-poll `ts` after a journaled batch.
    SetVkTs(pub String) -> (),
    |s, m| s.set_vk_ts(&m.0)
);

store_request!(
    /// A summary of the journal, poison list, outboxes and ETL (metrics).
    ReadStatus() -> crate::store::Status,
    |s, _m| s.status()
);

store_request!(
    /// An intake fetched or received updates successfully (at most every few seconds).
    NoteIntake(pub &'static str) -> (),
    |s, m| s.note_intake(m.0)
);

store_request!(
    /// Keeps a delivered body that is not an update on the poison list; answers its id there.
    PoisonRejected {
        /// The body (cut to a readable prefix).
        pub raw: String,
        /// Why it is not an update.
        pub reason: String,
    } -> i64,
    |s, m| s.poison_rejected(&m.raw, &m.reason)
);

store_request!(
    /// Whether the store can take a write now (readiness).
    ProbeWritable() -> (),
    |s, _m| s.probe_writable()
);

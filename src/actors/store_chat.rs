//! Messages of the `StoreActor` for the conversation and the VK intake: greetings, the keys of documents and
//! their owners, the file lists, and renames (see [`crate::store::KeyClaim`] and
//! [`crate::store::MoveStart`]). Each answers with the store's result.

use std::sync::Arc;

use actix::prelude::*;

use super::store::StoreActor;
use crate::domain::chat::Person;
use crate::store::{ClaimedKey, FileEntry, KeyClaim, Move, MoveStart, Store, StoreError};

/// Declares a request to the store: the message, its answer and the store call answering it.
macro_rules! store_request {
    ($(#[$doc:meta])* $name:ident ( $($t:tt)* ) -> $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        $(#[$doc])*
        pub struct $name($($t)*);
        store_request!(@impl $name, $answer, |$store, $msg| $call);
    };
    ($(#[$doc:meta])* $name:ident { $($t:tt)* } -> $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        $(#[$doc])*
        pub struct $name { $($t)* }
        store_request!(@impl $name, $answer, |$store, $msg| $call);
    };
    (@impl $name:ident, $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        impl Message for $name {
            type Result = Result<$answer, Arc<StoreError>>;
        }

        impl Handler<$name> for StoreActor {
            type Result = Result<$answer, Arc<StoreError>>;

            fn handle(&mut self, $msg: $name, _: &mut Context<Self>) -> Self::Result {
                let $store: &mut Store = self.store_mut();
                $call.map_err(Arc::new)
            }
        }
    };
}

store_request!(
    /// Whether a person was greeted.
    IsGreeted(pub Person) -> bool,
    |s, m| s.is_greeted(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Remembers that a person was greeted.
    SetGreeted(pub Person) -> (),
    |s, m| s.set_greeted(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// The message that acknowledged an event, if one was sent.
    AckOf(pub String) -> Option<i64>,
    |s, m| s.ack_of(&m.0)
);

store_request!(
    /// Remembers the message that acknowledged an event.
    RecordAck {
        /// The event's reference.
        pub event: String,
        /// The acknowledgement's message.
        pub message_id: i64,
    } -> (),
    |s, m| s.record_ack(&m.event, m.message_id)
);

store_request!(
    /// Gives a document its key.
    ClaimKey(pub KeyClaim) -> ClaimedKey,
    |s, m| s.claim_key(&m.0)
);

store_request!(
    /// The bucket holds an object under a key this event claimed as unknown.
    MarkForeign {
        /// The key.
        pub key: String,
        /// The event that claimed it.
        pub event: String,
    } -> (),
    |s, m| s.mark_foreign(&m.key, &m.event)
);

store_request!(
    /// An event's document was not stored: its claimed key is free again.
    ReleaseClaim(pub String) -> (),
    |s, m| s.release_claim(&m.0)
);

store_request!(
    /// A page of saved files, newest first: a person's, or everyone's for `None`.
    FilesPage {
        /// Whose files.
        pub owner: Option<Person>,
        /// Files skipped.
        pub offset: u64,
        /// Files in the page.
        pub limit: u64,
    } -> (Vec<FileEntry>, u64),
    |s, m| s.files_page(m.owner.as_ref().map(|p| (p.platform.as_str(), p.user)), m.offset, m.limit)
);

store_request!(
    /// A saved file by id.
    FileById(pub i64) -> Option<FileEntry>,
    |s, m| s.file_by_id(m.0)
);

store_request!(
    /// A person's most recently saved file.
    LatestFile(pub Person) -> Option<FileEntry>,
    |s, m| s.latest_file(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Forgets a file whose object is gone from the bucket.
    ForgetFile(pub i64) -> (),
    |s, m| s.forget_file(m.0)
);

store_request!(
    /// Forgets a file whose object a listing did not find, unless a rename of it is under way;
    /// whether it was forgotten.
    ForgetMissingFile(pub i64) -> bool,
    |s, m| s.forget_missing_file(m.0)
);

store_request!(
    /// Whether anything holds a key.
    KeyIsTaken(pub String) -> bool,
    |s, m| s.key_is_taken(&m.0)
);

store_request!(
    /// Remembers that a person wants to rename a file (their next text is its name).
    SetPendingRename {
        /// Who.
        pub person: Person,
        /// Which file.
        pub file: i64,
        /// In which chat.
        pub chat: i64,
    } -> (),
    |s, m| s.set_pending_rename(m.person.platform.as_str(), m.person.user, m.file, m.chat)
);

store_request!(
    /// The file whose new name the bot waits for from a person.
    PendingRename(pub Person) -> Option<FileEntry>,
    |s, m| s.pending_rename(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Ends a person's pending rename; answers whether there was one.
    ClearPendingRename(pub Person) -> bool,
    |s, m| s.clear_pending_rename(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// The move an event began, if any.
    MoveOf(pub String) -> Option<Move>,
    |s, m| s.move_of(&m.0)
);

store_request!(
    /// Begins moving a person's file to a new key.
    BeginMove {
        /// The event asking for it.
        pub event: String,
        /// The person.
        pub person: Person,
        /// The file.
        pub file: i64,
        /// The new key.
        pub to: String,
    } -> MoveStart,
    |s, m| s.begin_move(&m.event, (m.person.platform.as_str(), m.person.user), m.file, &m.to)
);

store_request!(
    /// The object is under its new key and gone from the old one.
    FinishMove(pub String) -> (),
    |s, m| s.finish_move(&m.0)
);

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
    /// Takes or renews a lease; answers its fencing token, or `None` while another holds it.
    TakeLease {
        /// The duty.
        pub name: &'static str,
        /// This replica.
        pub holder: String,
        /// How long it lasts.
        pub ttl_ms: i64,
    } -> Option<i64>,
    |s, m| s.lease_take(m.name, &m.holder, m.ttl_ms)
);

store_request!(
    /// Ends this replica's lease at once.
    ReleaseLease {
        /// The duty.
        pub name: &'static str,
        /// This replica.
        pub holder: String,
    } -> (),
    |s, m| s.lease_release(m.name, &m.holder)
);

store_request!(
    /// Takes the next turn of a request rate shared by every replica; answers the
    /// milliseconds until it.
    RateTurn {
        /// The rate (an API and its account).
        pub name: Arc<str>,
        /// Milliseconds between two turns.
        pub interval_ms: i64,
    } -> i64,
    |s, m| s.rate_turn(&m.name, m.interval_ms)
);

store_request!(
    /// Gives no turn of a shared rate to anyone for a while.
    HoldRate {
        /// The rate.
        pub name: Arc<str>,
        /// For how many milliseconds from now.
        pub ms: i64,
    } -> (),
    |s, m| s.rate_hold(&m.name, m.ms)
);

store_request!(
    /// The lease as the store has it.
    ReadLease(pub &'static str) -> Option<crate::store::LeaseState>,
    |s, m| s.lease(m.0)
);

store_request!(
    /// The offset a poller saved.
    PollerOffset(pub &'static str) -> Option<i64>,
    |s, m| s.poller_offset(m.0)
);

store_request!(
    /// Saves a poller's offset under its lease; answers whether the lease still held.
    SavePollerOffset {
        /// The duty.
        pub name: &'static str,
        /// The offset.
        pub offset: i64,
        /// This replica.
        pub holder: String,
        /// Its lease's token.
        pub token: i64,
    } -> bool,
    |s, m| s.set_poller_offset(m.name, m.offset, (&m.holder, m.token))
);

store_request!(
    /// Whether the store can take a write now (readiness).
    ProbeWritable() -> (),
    |s, _m| s.probe_writable()
);

store_request!(
    /// One round of this replica's chat claims: gives up the chats with nothing left in the
    /// journal, claims up to `want` more, drops rows of updates finished already, and answers
    /// the journaled updates of the chats it holds (`update_id` and chat, at most `limit`, in
    /// order).
    ClaimRound {
        /// This replica.
        pub holder: String,
        /// How long a claim lasts.
        pub ttl_ms: i64,
        /// Most chats to claim now.
        pub want: usize,
        /// Most updates to answer.
        pub limit: usize,
    } -> Vec<(i64, i64)>,
    |s, m| {
        s.release_idle_claims(&m.holder)?;
        s.claim_chats(&m.holder, m.ttl_ms, m.want)?;
        let (work, dropped) = s.claimed_work(&m.holder, m.limit)?;
        if dropped > 0 {
            log::info!("{dropped} updates journaled again after they had finished (a repeated delivery) were dropped");
        }
        Ok(work)
    }
);

store_request!(
    /// Extends this replica's claims (chats and outbox items); answers the chats it holds.
    RenewClaims {
        /// This replica.
        pub holder: String,
        /// How long a claim lasts from now.
        pub ttl_ms: i64,
    } -> Vec<i64>,
    |s, m| s.renew_claims_listed(&m.holder, m.ttl_ms)
);

store_request!(
    /// Takes the claims a former process of this replica left (same name) and charges the
    /// oldest update of each of their chats; answers how many chats.
    AdoptClaims(pub String) -> u64,
    |s, m| s.adopt_claims(&m.0)
);

store_request!(
    /// Gives up every claim of this replica (a clean stop).
    ReleaseClaims(pub String) -> (),
    |s, m| s.release_claims(&m.0)
);

store_request!(
    /// The journaled updates among these ids, in order.
    JournalEntries(pub Vec<i64>) -> Vec<crate::store::JournalEntry>,
    |s, m| s.journal_entries(&m.0)
);

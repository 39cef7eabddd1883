//! Requests about leases (the pollers', rate turns) and chat claims: how replicas sharing one
//! store split the work.

use std::sync::Arc;

use actix::prelude::*;

use super::StoreActor;
use crate::store::{Store, StoreError};

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

//! The outboxes: items queued, claimed and delivered, failures, and the kept payloads the ETL
//! reads.

use std::sync::Arc;

use actix::prelude::*;

use super::{logged, StoreActor};
use crate::etl::ReadOutboxPayloads;
use crate::store::{OutboxItem, StoreError};

/// Queues an outbox item; answers whether its key was new.
#[derive(Message)]
#[rtype(result = "Result<bool, Arc<StoreError>>")]
pub struct PutOutbox {
    /// Outbox name.
    pub kind: &'static str,
    /// Idempotency key.
    pub key: String,
    /// JSON payload.
    pub payload: String,
}

/// Pending items of an outbox, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<OutboxItem>, Arc<StoreError>>")]
pub struct PendingOutbox {
    /// Outbox name.
    pub kind: &'static str,
    /// Most items to return.
    pub limit: usize,
}

/// Items were delivered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OutboxDelivered {
    /// Item ids.
    pub ids: Vec<i64>,
    /// Whether their payloads stay readable (see [`ReadOutboxPayloads`]).
    pub keep_payload: bool,
}

/// Deletes up to `limit` items of an outbox delivered more than `age_secs` ago; answers how many
/// (send again while a whole chunk went).
#[derive(Message)]
#[rtype(result = "Result<usize, Arc<StoreError>>")]
pub struct ForgetDelivered {
    /// Outbox name.
    pub kind: &'static str,
    /// Age in seconds.
    pub age_secs: i64,
    /// Most items deleted by this message.
    pub limit: usize,
}

/// An item's delivery failed; `dead` moves it to the dead letters.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OutboxFailed {
    /// Item id.
    pub id: i64,
    /// Why.
    pub reason: String,
    /// Whether it will never be retried.
    pub dead: bool,
}

impl Handler<PutOutbox> for StoreActor {
    type Result = Result<bool, Arc<StoreError>>;

    fn handle(&mut self, msg: PutOutbox, _: &mut Context<Self>) -> Self::Result {
        self.store
            .outbox_put(msg.kind, &msg.key, &msg.payload)
            .map_err(Arc::new)
    }
}

impl Handler<PendingOutbox> for StoreActor {
    type Result = Result<Vec<OutboxItem>, Arc<StoreError>>;

    fn handle(&mut self, msg: PendingOutbox, _: &mut Context<Self>) -> Self::Result {
        match &self.claimant {
            Some((holder, ttl_ms)) => {
                self.store
                    .outbox_claim(msg.kind, msg.limit, (holder.as_str(), *ttl_ms))
            }
            None => self.store.outbox_pending(msg.kind, msg.limit),
        }
        .map_err(Arc::new)
    }
}

impl Handler<OutboxDelivered> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: OutboxDelivered, _: &mut Context<Self>) {
        logged(
            "cannot mark outbox items delivered",
            self.store.outbox_delivered(&msg.ids, msg.keep_payload),
        );
    }
}

impl Handler<ReadOutboxPayloads> for StoreActor {
    type Result = Result<Vec<(String, String)>, Arc<StoreError>>;

    fn handle(&mut self, msg: ReadOutboxPayloads, _: &mut Context<Self>) -> Self::Result {
        self.store
            .outbox_payloads(msg.kind, &msg.first, &msg.last)
            .map_err(Arc::new)
    }
}

impl Handler<ForgetDelivered> for StoreActor {
    type Result = Result<usize, Arc<StoreError>>;

    fn handle(&mut self, msg: ForgetDelivered, _: &mut Context<Self>) -> Self::Result {
        self.store
            .outbox_forget_delivered(msg.kind, msg.age_secs, msg.limit)
            .map_err(Arc::new)
    }
}

impl Handler<OutboxFailed> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: OutboxFailed, _: &mut Context<Self>) {
        logged(
            "cannot record an outbox failure",
            self.store.outbox_failed(msg.id, &msg.reason, msg.dead),
        );
    }
}

/// Seals pending items of an outbox into a segment; answers how many were sealed.
#[derive(Message)]
#[rtype(result = "Result<usize, Arc<StoreError>>")]
pub struct SealSegment {
    /// Outbox name.
    pub kind: &'static str,
    /// Item ids, in order.
    pub ids: Vec<i64>,
    /// The segment's key.
    pub segment: String,
}

/// The members of a segment, in id order; none once any of them was delivered.
#[derive(Message)]
#[rtype(result = "Result<Vec<OutboxItem>, Arc<StoreError>>")]
pub struct SegmentMembers {
    /// Outbox name.
    pub kind: &'static str,
    /// The segment's key.
    pub segment: String,
}

impl Handler<SealSegment> for StoreActor {
    type Result = Result<usize, Arc<StoreError>>;

    fn handle(&mut self, msg: SealSegment, _: &mut Context<Self>) -> Self::Result {
        self.store
            .outbox_seal(msg.kind, &msg.ids, &msg.segment)
            .map_err(Arc::new)
    }
}

impl Handler<SegmentMembers> for StoreActor {
    type Result = Result<Vec<OutboxItem>, Arc<StoreError>>;

    fn handle(&mut self, msg: SegmentMembers, _: &mut Context<Self>) -> Self::Result {
        self.store
            .outbox_segment(msg.kind, &msg.segment)
            .map_err(Arc::new)
    }
}

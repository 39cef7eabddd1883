//! `StoreActor`: the only owner of the durable [`Store`]. It runs on its own arbiter, so its
//! blocking SQLite calls never stall the other actors.

use crate::etl::ReadOutboxPayloads;
use std::sync::Arc;

use actix::prelude::*;

use crate::domain::inbound::IncomingUpdate;
use crate::store::{JournalEntry, OutboxItem, Store, StoreError};

/// Journals a batch; answers with the updates that were new (not journaled or finished before).
#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<IncomingUpdate>>, Arc<StoreError>>")]
pub struct JournalBatch(pub Vec<Arc<IncomingUpdate>>);

/// An update's handling finished; it leaves the journal.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished(pub i64);

/// An update's handling failed once more; it stays journaled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttemptFailed(pub i64);

/// An update failed too often; it is moved to the poison list.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MoveToPoison {
    /// The update.
    pub update_id: i64,
    /// Why.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

/// A page of the journal left by the previous run, for replay: the updates after `after`
/// (`None` for the first page, which also charges each chat's oldest entry one more attempt).
#[derive(Message)]
#[rtype(result = "Result<Vec<JournalEntry>, Arc<StoreError>>")]
pub struct TakeReplay {
    /// The last update of the previous page.
    pub after: Option<i64>,
    /// Most updates in the page.
    pub limit: usize,
}

/// Sizes of the journal and the poison list.
#[derive(Message)]
#[rtype(result = "Result<(u64, u64), Arc<StoreError>>")]
pub struct StoreStats;

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

/// The store's actor.
pub struct StoreActor {
    store: Store,
    /// Updates reported finished and not yet written: written together a moment later, in
    /// one transaction, so a busy store (PostgreSQL above all) spends one commit on many.
    finished: Vec<i64>,
    /// With replicas on one store: this replica's name and how long its claims last. Outbox
    /// items are then claimed one by one before delivery, so two replicas never send the same.
    claimant: Option<(String, i64)>,
}

/// How long finished updates wait to be written together.
const FINISH_BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// How long finished updates wait after the store failed to write them.
const FINISH_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl StoreActor {
    /// Wraps an opened store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            finished: Vec::new(),
            claimant: None,
        }
    }

    /// Claims outbox items for `holder` (for `ttl_ms`, renewed by [`RenewClaims`]) before
    /// handing them out for delivery.
    ///
    /// [`RenewClaims`]: super::store_chat::RenewClaims
    pub fn claiming(mut self, holder: String, ttl_ms: i64) -> Self {
        self.claimant = Some((holder, ttl_ms));
        self
    }

    /// Writes the finished updates waiting; answers whether they are written. When the store
    /// fails (PostgreSQL restarting), they are kept for the next try: an update finished but
    /// left in the journal would be handled again.
    fn write_finished(&mut self) -> bool {
        if self.finished.is_empty() {
            return true;
        }
        match self.store.finish(&self.finished) {
            Ok(()) => {
                self.finished.clear();
                true
            }
            Err(e) => {
                log::error!(
                    "cannot mark {} updates finished ({e}); trying again in {} ms",
                    self.finished.len(),
                    FINISH_RETRY.as_millis()
                );
                false
            }
        }
    }

    /// Writes the finished updates now, and again later until they are written.
    fn flush_finished(&mut self, ctx: &mut Context<Self>) {
        if !self.write_finished() {
            ctx.run_later(FINISH_RETRY, |act, ctx| act.flush_finished(ctx));
        }
    }

    /// The store, for handlers declared beside other actors' messages.
    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        let _ = self.write_finished();
    }

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(std::time::Duration::from_secs(3600), |act, _| {
            match act.store.prune_done() {
                Ok(0) => {}
                Ok(n) => log::debug!("forgot {n} finished update ids older than a week"),
                Err(e) => log::warn!("cannot forget old finished update ids: {e}"),
            }
        });
    }
}

impl Supervised for StoreActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // A transaction cut short by a panic was rolled back when it was dropped.
        log::warn!("store restarted");
    }
}

fn logged(what: &str, r: Result<(), StoreError>) {
    if let Err(e) = r {
        log::error!("{what}: {e}");
    }
}

impl Handler<JournalBatch> for StoreActor {
    type Result = Result<Vec<Arc<IncomingUpdate>>, Arc<StoreError>>;

    fn handle(&mut self, msg: JournalBatch, _: &mut Context<Self>) -> Self::Result {
        let rows: Vec<_> = msg
            .0
            .iter()
            .map(|u| {
                (
                    u.update_id,
                    u.raw.get(),
                    u.chat_id(),
                    u.update.any_message().map(|m| m.date),
                )
            })
            .collect();
        fail::fail_point!("store.journal");
        let fresh = self.store.journal_dated(&rows).map_err(Arc::new)?;
        let mut fresh = fresh.into_iter().peekable();
        Ok(msg
            .0
            .into_iter()
            .filter(|u| {
                if fresh.peek() == Some(&u.update_id) {
                    fresh.next();
                    true
                } else {
                    false
                }
            })
            .collect())
    }
}

impl Handler<Finished> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        if self.finished.is_empty() {
            ctx.run_later(FINISH_BATCH_WAIT, |act, ctx| act.flush_finished(ctx));
        }
        self.finished.push(msg.0);
    }
}

/// Marks an update finished and writes it (with any waiting) at once; answers whether it is
/// written. With replicas, a chat's next update starts only after this: a replica stopped or
/// paused a moment later leaves no finished update in the journal for another to handle again.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FinishNow(pub i64);

impl Handler<FinishNow> for StoreActor {
    type Result = bool;

    fn handle(&mut self, msg: FinishNow, ctx: &mut Context<Self>) -> bool {
        self.finished.push(msg.0);
        let written = self.write_finished();
        if !written {
            ctx.run_later(FINISH_RETRY, |act, ctx| act.flush_finished(ctx));
        }
        written
    }
}

/// Writes the finished updates waiting for their batch now (a clean stop sends it last).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteFinished;

impl Handler<WriteFinished> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: WriteFinished, _: &mut Context<Self>) {
        let _ = self.write_finished();
    }
}

impl Handler<AttemptFailed> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: AttemptFailed, _: &mut Context<Self>) {
        logged(
            "cannot record a failed attempt",
            self.store.record_attempt(msg.0).map(drop),
        );
    }
}

impl Handler<MoveToPoison> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: MoveToPoison, _: &mut Context<Self>) {
        logged(
            "cannot move an update to the poison list",
            self.store.poison(msg.update_id, &msg.reason, msg.attempts),
        );
    }
}

impl Handler<TakeReplay> for StoreActor {
    type Result = Result<Vec<JournalEntry>, Arc<StoreError>>;

    fn handle(&mut self, msg: TakeReplay, _: &mut Context<Self>) -> Self::Result {
        if msg.after.is_none() {
            self.store.charge_replay().map_err(Arc::new)?;
        }
        self.store
            .journal_page(msg.after.unwrap_or(i64::MIN), msg.limit)
            .map_err(Arc::new)
    }
}

impl Handler<StoreStats> for StoreActor {
    type Result = Result<(u64, u64), Arc<StoreError>>;

    fn handle(&mut self, _: StoreStats, _: &mut Context<Self>) -> Self::Result {
        let journal = self.store.journal_len().map_err(Arc::new)?;
        let poison = self.store.poisoned().map_err(Arc::new)?.len() as u64;
        Ok((journal, poison))
    }
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

//! The journal: batches written, updates finished (batched), attempts, the poison list, the
//! replay at start.

use std::sync::Arc;

use actix::prelude::*;

use super::{logged, StoreActor, FINISH_BATCH_WAIT, FINISH_RETRY};
use crate::domain::archive::archive_only;
use crate::domain::inbound::IncomingUpdate;
use crate::store::{JournalEntry, StoreError};

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

impl Handler<JournalBatch> for StoreActor {
    type Result = Result<Vec<Arc<IncomingUpdate>>, Arc<StoreError>>;

    fn handle(&mut self, msg: JournalBatch, _: &mut Context<Self>) -> Self::Result {
        let only = |u: &IncomingUpdate| {
            self.archive
                .as_ref()
                .and_then(|settings| archive_only(settings, u))
        };
        let (mut rows, mut archived) = (Vec::with_capacity(msg.0.len()), Vec::new());
        for u in &msg.0 {
            match only(u) {
                Some(key) => archived.push((u.update_id, key, u.raw.get())),
                None => rows.push((
                    u.update_id,
                    u.raw.get(),
                    u.chat_id(),
                    u.update.any_message().map(|m| m.date),
                )),
            }
        }
        fail::fail_point!("store.journal");
        let archived: Vec<(i64, &str, &str)> = archived
            .iter()
            .map(|(id, key, raw)| (*id, key.as_str(), *raw))
            .collect();
        let fresh = self
            .store
            .journal_archiving(&rows, &archived)
            .map_err(Arc::new)?;
        if !archived.is_empty() {
            log::debug!(
                "{} archived updates queued for the raw bucket at intake",
                archived.len()
            );
        }
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

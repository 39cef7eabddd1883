//! What follows one attempt at an update: done (it leaves the journal, the chat moves on),
//! failed (retried after a backoff, or moved to the poison list), or left to another replica.

use actix::prelude::*;

use super::{Job, Outcome, WorkerActor};
use crate::actors::store::{AttemptFailed, FinishNow, Finished, MoveToPoison};
use crate::obs::metrics::Metrics;

impl WorkerActor {
    pub(super) fn finished(
        &mut self,
        chat: i64,
        job: Job,
        (result, took): (std::thread::Result<Outcome>, std::time::Duration),
        ctx: &mut Context<Self>,
    ) {
        let update = &job.update;
        let (id, kind) = (update.update_id, update.kind());
        if let Some(fence) = &self.deps.fence {
            fence.in_hand(chat, false);
            // A claimed update that failed after its chat was lost (its effects were held back
            // from then on) is the new holder's: neither finished nor charged an attempt.
            let lost = fence.standing(chat) != crate::actors::fence::Standing::Held;
            if job.journaled && lost && !matches!(result, Ok(Ok(_))) {
                log::warn!(
                    "update_id={id} chat_id={chat}: the chat was taken over while this update was in hand; it is left to the new holder"
                );
                fence.worked(crate::actors::fence::Worked::Left(vec![id]));
                self.busy.remove(&chat);
                self.check_drained();
                self.pump(chat, ctx);
                return;
            }
        }
        let metrics = &self.deps.metrics;
        match result {
            Ok(Ok(action)) => {
                metrics.handled(kind, "ok", took);
                log::info!("update_id={id} chat_id={chat} kind={kind}: {action}");
                self.done(chat, id, job.journaled, ctx);
            }
            Ok(Err(e)) if !e.retryable => {
                Metrics::incr(&metrics.handler_errors);
                metrics.handled(kind, "failed", took);
                log::error!("update_id={id} chat_id={chat} kind={kind}: failed: {e}");
                self.done(chat, id, job.journaled, ctx);
            }
            Ok(Err(e)) => {
                Metrics::incr(&metrics.handler_errors);
                let outcome = if job.attempts + 1 >= self.deps.max_attempts {
                    "poisoned"
                } else {
                    "retried"
                };
                metrics.handled(kind, outcome, took);
                self.failed(chat, job, e.message, ctx);
            }
            Err(panic) => {
                Metrics::incr(&metrics.worker_panics);
                let outcome = if job.attempts + 1 >= self.deps.max_attempts {
                    "poisoned"
                } else {
                    "retried"
                };
                metrics.handled(kind, outcome, took);
                let reason = format!("panicked: {}", panic_message(&*panic));
                log::error!(
                    "worker {} {reason} while handling update_id={id} chat_id={chat}; only this update fails",
                    self.id
                );
                self.failed(chat, job, reason, ctx);
            }
        }
    }

    /// The update is finished: it leaves the journal and the chat moves on. With replicas
    /// (claimed chats), the chat's next update waits until the end is written, so at most the
    /// update in hand can be handled again by a replica that takes the chat over.
    fn done(&mut self, chat: i64, update_id: i64, journaled: bool, ctx: &mut Context<Self>) {
        Metrics::incr(&self.deps.metrics.updates_handled);
        if journaled && self.deps.fence.is_some() {
            let store = self.deps.store.clone();
            ctx.spawn(
                async move { store.send(FinishNow(update_id)).await }
                    .into_actor(self)
                    .map(move |_, act, ctx| {
                        if let Some(fence) = &act.deps.fence {
                            fence.worked(crate::actors::fence::Worked::Done(update_id));
                        }
                        act.busy.remove(&chat);
                        act.check_drained();
                        act.pump(chat, ctx);
                    }),
            );
            return;
        }
        self.deps.store.do_send(Finished(update_id));
        self.busy.remove(&chat);
        self.check_drained();
        self.pump(chat, ctx);
    }

    /// One attempt failed: retry later, or move the update aside after `max_attempts`.
    fn failed(&mut self, chat: i64, mut job: Job, reason: String, ctx: &mut Context<Self>) {
        let id = job.update.update_id;
        job.attempts += 1;
        if job.attempts >= self.deps.max_attempts {
            Metrics::incr(&self.deps.metrics.updates_poisoned);
            log::error!(
                "update_id={id} chat_id={chat} moved to the poison list after {} attempts: {reason}",
                job.attempts
            );
            self.deps.store.do_send(MoveToPoison {
                update_id: id,
                reason,
                attempts: job.attempts,
            });
            if let (Some(fence), true) = (&self.deps.fence, job.journaled) {
                fence.worked(crate::actors::fence::Worked::Done(id));
            }
            self.busy.remove(&chat);
            self.check_drained();
            self.pump(chat, ctx);
            return;
        }
        self.deps.store.do_send(AttemptFailed(id));
        let delay = retry_delay(job.attempts);
        log::warn!(
            "update_id={id} chat_id={chat}: attempt {} of {} failed: {reason}; retrying in {:.1} s",
            job.attempts,
            self.deps.max_attempts,
            delay.as_secs_f64()
        );
        self.busy.insert(chat, job);
        ctx.run_later(delay, move |act, ctx| {
            if let Some(job) = act.busy.remove(&chat) {
                act.enqueue(chat, job, true);
            }
            act.check_drained();
            act.pump(chat, ctx);
        });
    }
}

/// Delay before retrying an update that failed `attempts` times: 1 s doubling, at most 60 s.
pub fn retry_delay(attempts: u32) -> std::time::Duration {
    let secs = 1u64 << attempts.saturating_sub(1).min(6);
    std::time::Duration::from_secs(secs.min(60))
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic".to_string()
    }
}

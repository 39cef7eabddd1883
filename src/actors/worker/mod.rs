//! `WorkerActor`: runs the business logic for the updates routed to it.
//!
//! Updates of one chat are handled one after another, in the order they arrived; updates of
//! different chats run concurrently. An update whose handling finished leaves the journal
//! (`Finished` to the store). One that failed with a retryable error is tried again after a
//! backoff, keeping its chat's order. A panic in a handler is caught and counts as a failed
//! attempt of that update alone: the worker and its other chats go on undisturbed (their
//! uploads keep running, their retry timers stay). After `max_attempts` the update is moved to
//! the poison list so it never blocks its chat. Should the worker itself stop, its supervisor
//! restarts it with its queues intact.

mod outcome;

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};

use super::store::StoreActor;
use super::uploader::UploadProgress;
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;

pub use self::outcome::{panic_message, retry_delay};

/// A journaled update and how often its handling was attempted before.
#[derive(Debug, Clone)]
pub struct Job {
    /// The update.
    pub update: Arc<IncomingUpdate>,
    /// Earlier attempts (failures, panics, replays after a crash).
    pub attempts: u32,
    /// Whether it is in the journal (an update the allowlists refuse is not).
    pub journaled: bool,
}

/// One update for this worker to handle. Answered once the update is queued and the worker's
/// queues hold no more than `queue_limit` updates: a sender that awaits the answer (the poller,
/// the replay) waits while the worker is full, and the journal holds the rest.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleUpdate(pub Job);

/// Stop starting updates; answered when none is in flight any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// What handling an update did, for the log line.
pub type Outcome = Result<String, HandlerError>;

/// A handling failure: retryable ones are tried again later, others end the update.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// What went wrong.
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

impl HandlerError {
    /// A failure worth retrying (an outside service is unavailable).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// The business logic a worker runs. One instance per worker, living on its thread.
pub trait UpdateHandler {
    /// Handles one update; resolves to a short description of what was done.
    fn handle(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> LocalBoxFuture<'static, Outcome>;

    /// Shows upload progress to the user.
    fn on_progress(self: Rc<Self>, progress: UploadProgress) -> LocalBoxFuture<'static, ()>;
}

/// Builds a worker's handler on the worker's own thread.
pub type HandlerFactory = Arc<dyn Fn(usize) -> Rc<dyn UpdateHandler> + Send + Sync>;

/// What a worker needs besides its handler.
#[derive(Clone)]
pub struct WorkerDeps {
    /// The durable store.
    pub store: Addr<StoreActor>,
    /// Attempts before an update is moved to the poison list.
    pub max_attempts: u32,
    /// Updates a worker holds waiting before [`HandleUpdate`] answers only as they leave.
    pub queue_limit: usize,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// With replicas: the chats this replica holds, asked before each update of a claimed
    /// chat (updates of chats it lost are left to their new holder).
    pub fence: Option<Arc<super::fence::ClaimFence>>,
}

/// A worker of the pool.
pub struct WorkerActor {
    id: usize,
    handler: Rc<dyn UpdateHandler>,
    deps: WorkerDeps,
    /// Updates waiting, per chat.
    queues: HashMap<i64, VecDeque<Job>>,
    /// Updates in `queues`, all chats together.
    queued: usize,
    /// Answers of [`HandleUpdate`] held back while the queues are over `queue_limit`.
    held_answers: VecDeque<tokio::sync::oneshot::Sender<()>>,
    /// The update being handled (or waiting for its retry), per chat.
    busy: HashMap<i64, Job>,
    /// Set by [`Drain`]: no new update is started.
    draining: bool,
    drain_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl WorkerActor {
    /// A worker with the given id, handler and dependencies.
    pub fn new(id: usize, handler: Rc<dyn UpdateHandler>, deps: WorkerDeps) -> Self {
        Self {
            id,
            handler,
            deps,
            queues: HashMap::new(),
            queued: 0,
            held_answers: VecDeque::new(),
            busy: HashMap::new(),
            draining: false,
            drain_waiters: Vec::new(),
        }
    }

    /// Queues a job for its chat (at the front: it goes before the chat's waiting updates).
    fn enqueue(&mut self, chat: i64, job: Job, front: bool) {
        let queue = self.queues.entry(chat).or_default();
        if front {
            queue.push_front(job);
        } else {
            queue.push_back(job);
        }
        self.queued += 1;
    }

    /// Starts the next queued update of `chat` unless one is running.
    fn pump(&mut self, chat: i64, ctx: &mut Context<Self>) {
        if self.busy.contains_key(&chat) || self.draining {
            return;
        }
        let Some(queue) = self.queues.get_mut(&chat) else {
            return;
        };
        if let (Some(fence), Some(next)) = (&self.deps.fence, queue.front()) {
            if next.journaled {
                match fence.standing(chat) {
                    super::fence::Standing::Held => {}
                    super::fence::Standing::Unconfirmed => {
                        // Asked again shortly: the next renewal says held or lost.
                        ctx.run_later(FENCE_RECHECK, move |act, ctx| act.pump(chat, ctx));
                        return;
                    }
                    super::fence::Standing::Lost => {
                        let left: Vec<i64> = queue
                            .iter()
                            .filter(|j| j.journaled)
                            .map(|j| j.update.update_id)
                            .collect();
                        let dropped = left.len();
                        fence.worked(super::fence::Worked::Left(left));
                        queue.retain(|j| !j.journaled);
                        if queue.is_empty() {
                            self.queues.remove(&chat);
                        }
                        self.queued -= dropped;
                        log::warn!(
                            "chat_id={chat}: no longer held by this replica; {dropped} queued updates are left to its holder"
                        );
                        self.release_held_answers();
                        self.pump(chat, ctx);
                        return;
                    }
                }
            }
        }
        let Some(job) = queue.pop_front() else {
            self.queues.remove(&chat);
            return;
        };
        if queue.is_empty() {
            self.queues.remove(&chat);
        }
        self.queued -= 1;
        self.release_held_answers();
        if let Some(fence) = &self.deps.fence {
            fence.in_hand(chat, job.journaled);
        }
        self.busy.insert(chat, job.clone());
        let handler = self.handler.clone();
        let progress = ctx.address().recipient();
        let work = {
            let update = job.update.clone();
            async move { handler.handle(update, progress).await }
        };
        let guarded = AssertUnwindSafe(work).catch_unwind();
        let started = std::time::Instant::now();
        ctx.spawn(guarded.into_actor(self).map(move |result, act, ctx| {
            act.finished(chat, job, (result, started.elapsed()), ctx);
        }));
    }

    /// Answers the held-back deliveries while the queues are under their limit.
    fn release_held_answers(&mut self) {
        while self.queued < self.deps.queue_limit {
            match self.held_answers.pop_front() {
                Some(answer) => {
                    let _ = answer.send(());
                }
                None => break,
            }
        }
    }

    fn check_drained(&mut self) {
        if self.draining && self.busy.is_empty() {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// How soon a worker asks again about a chat whose claim is not confirmed.
const FENCE_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let chats: Vec<i64> = self.queues.keys().copied().collect();
        for chat in chats {
            self.pump(chat, ctx);
        }
    }
}

impl Supervised for WorkerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        Metrics::incr(&self.deps.metrics.worker_restarts);
        self.deps
            .metrics
            .families
            .actor_restarts
            .get_or_create(&crate::obs::metrics::ActorName {
                actor: "WorkerActor",
            })
            .inc();
        // Work cut short by the stop goes back to the front of its chat's queue.
        let interrupted: Vec<(i64, Job)> = self.busy.drain().collect();
        for (chat, job) in interrupted {
            self.enqueue(chat, job, true);
        }
        log::warn!("worker {} restarted by its supervisor", self.id);
    }
}

impl Handler<HandleUpdate> for WorkerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: HandleUpdate, ctx: &mut Context<Self>) -> Self::Result {
        let chat = msg.0.update.chat_id().unwrap_or(0);
        self.enqueue(chat, msg.0, false);
        self.pump(chat, ctx);
        if self.queued <= self.deps.queue_limit {
            return Box::pin(async {});
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.held_answers.push_back(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Drain> for WorkerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        self.check_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<UploadProgress> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: UploadProgress, ctx: &mut Context<Self>) {
        let work = AssertUnwindSafe(self.handler.clone().on_progress(msg)).catch_unwind();
        ctx.spawn(
            work.map(|r| {
                if let Err(panic) = r {
                    log::error!("progress display panicked: {}", panic_message(&*panic));
                }
            })
            .into_actor(self),
        );
    }
}
